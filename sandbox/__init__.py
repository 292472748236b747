"""The sandbox gateway: a local emulation of Alipay's mapi gateway that misbehaves on request.

`refund-worker sandbox` (`sandbox.cli`) serves it; `sandbox.client`
drives its control API. Modules: `validation` and `detail_rules` (the
gateway's checks, pure), `protocol` and `shapes` (what goes on the wire,
pure), `faults`, `records`, `accounts`, `ledger`, `reports`, `journal` and
`bookkeeper` (the books, their views and their persistence), `acceptance`
(taking a batch in), `outbox` and `notifier` (notification delivery),
`query` and `external`, `cashier`, `tickets`, `pages` and `seller` (the
password service's pages, for a browser), `service` (the behaviour) and
`control` (its control API), `app` (WSGI), `server` (gunicorn), `keys`,
`clock`, `config` and `partners` (the partners served and their keys).
"""

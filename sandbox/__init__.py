"""The sandbox gateway: a local emulation of Alipay's mapi gateway that misbehaves on request.

`refund-worker sandbox` (`sandbox.cli`) serves it; `sandbox.client`
drives its control API. Modules: `validation` (the gateway's checks, pure),
`protocol` (what goes on the wire, pure), `faults`, `ledger` and `journal`
(the books and their persistence), `notifier` (notification delivery),
`service` (the behaviour), `app` (WSGI), `server` (gunicorn), `keys`, `clock`.
"""

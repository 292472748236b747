"""The sandbox's OpenAPI gateway: `POST /openapi/gateway.do`, beside the mapi one.

It answers the four refund methods of `docs/openapi.md` (`alipay.trade.refund`,
`alipay.trade.fastpay.refund.query`, `alipay.fund.coupon.order.refund`,
`alipay.fund.coupon.operation.query`) for the apps of the partners served, in
the same process as the mapi gateway. Modules:

* `fault_names` -- the `openapi` scope of the fault set (imported by `sandbox.fault_spec`).
* `checks`      -- the gateway's checks of a call: common parameters, app, signature,
  `biz_content` (pure).
* `writer`      -- writing and signing the JSON answers, in varied legal shapes (pure).
* `books`       -- trades, red envelopes, refunds and notifications, and the
  idempotency rules (pure apart from its lock).
* `notices`     -- the coupon refund notifications, delivered by `sandbox.notifier`.
* `gateway`     -- the behaviour: checks, faults, books, answers.
* `control`     -- the control API's OpenAPI part (`/_sandbox/openapi/...`).

The OpenAPI books are kept in memory only: a restart of the sandbox starts them
empty (the mapi books are journaled, these are not).
"""

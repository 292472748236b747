"""The peer: the same job done the straightforward way, to measure the project against.

Not shipped and not a design to copy. It is what a team would write on the same tools
without the project's batching of work (`bench/peer_row.py` runs it beside the sandbox):

- `intake`: one dramatiq actor call per refund.requested message, one database
  transaction per refund (`INSERT ... ON CONFLICT DO NOTHING`), schema-validated with
  `jsonschema` against the same `schemas/refund.requested.v1.json`;
- `batcher`: a timer every 0.5 s cuts every pending refund into batches (one trade per
  batch, up to 1,000 items), one signed gateway request per batch;
- `receiver`: a WSGI app (gunicorn) for Alipay's notifications: signature, `notify_verify`,
  then per refund one transaction and one `refund.completed` published with a synchronous
  publisher confirm.

It speaks the protocol through the project's own `worker.mapi` (signing, the request,
the notification), so the difference measured is the architecture, not the protocol code.
"""

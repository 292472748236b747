"""The bodies of the internal jobs: thin, safe to run twice, one service call each.

- `submit_batch(batch_no)`: submit one batch (`worker.services.submission`) and
  enqueue the batches it was split into;
- `process_notify(kind, form, received_at, partner)`: store, then apply, one verified
  notification (`worker.services.notifications`; kind `openapi`:
  `worker.services.openapi_notifications`);
- `reconcile_batch(batch_no)`: ask the gateway about one batch and apply what it
  proves (`worker.services.reconciler`);
- `submit_openapi_refund(refund_id)`: one OpenAPI refund's next call, a send or a
  query (`worker.services.openapi_submission`).

Declared on the broker by `worker.adapters.dramatiq.jobs` (`BODIES`).
"""

from __future__ import annotations

from datetime import datetime

from worker.adapters.dramatiq import jobs
from worker.entrypoints import runtime

# The notification kind of the receiver's OpenAPI route (`jobs.enqueue_notification`).
OPENAPI_NOTIFY_KIND = "openapi"


def submit_batch(batch_no: str) -> None:
    """Actor body: submit one batch and enqueue any batches it was split into."""
    from worker.services.submission import submit_batch as submit

    rt = runtime.current()
    result = submit(
        rt.db,
        rt.gateway_for,
        rt.merchants,
        batch_no,
        clock=rt.clock,
        lease_seconds=rt.submit_lease_seconds,
    )
    for follow_up in result.follow_ups:
        jobs.enqueue_submit(rt.settings, follow_up)


def process_notify(
    kind: str, form: dict[str, str], received_at: str, partner: str | None = None
) -> None:
    """Actor body: apply one verified notification (authenticated for `partner`)."""
    from worker.services.notifications import process_notification

    rt = runtime.current()
    if kind == OPENAPI_NOTIFY_KIND:
        from worker.services.openapi_notifications import process_openapi_notification

        assert partner is not None, "an OpenAPI notification is queued with its merchant"
        process_openapi_notification(
            rt.db, rt.merchants, form, datetime.fromisoformat(received_at), partner
        )
        return
    process_notification(rt.db, kind, form, datetime.fromisoformat(received_at), partner)


def reconcile_batch(batch_no: str) -> None:
    """Actor body: query one batch at the gateway and apply what the answer proves."""
    from worker.services.reconciler import reconcile_batch as reconcile

    rt = runtime.current()
    reconcile(
        rt.db,
        rt.query_client,
        batch_no,
        clock=rt.clock,
        release_after_seconds=rt.settings.reconcile_release_after_seconds,
    )


def submit_openapi_refund(refund_id: str) -> None:
    """Actor body: make one OpenAPI refund's next call and apply its answer."""
    from worker.services.openapi_submission import submit_openapi_refund as submit

    rt = runtime.current()
    submit(
        rt.db,
        rt.openapi_client,
        rt.merchants,
        refund_id,
        clock=rt.clock,
        notify_url=rt.settings.openapi_notify_url,
        lease_seconds=rt.submit_lease_seconds,
        max_in_flight=rt.settings.openapi_max_in_flight,
    )


BODIES = jobs.ActorBodies(
    submit_batch=submit_batch,
    process_notify=process_notify,
    reconcile_batch=reconcile_batch,
    submit_openapi_refund=submit_openapi_refund,
)

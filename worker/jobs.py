"""Internal jobs on dramatiq (RabbitMQ broker with publisher confirms).

Three actors, all thin and safe to run twice:
- `submit_batch(batch_no)`: submit one batch (`worker.services.submission`);
- `process_notify(kind, form, received_at)`: store, then apply, one verified
  notification (`worker.services.notifications`);
- `reconcile_batch(batch_no)`: ask the gateway about one batch and apply what
  it proves (`worker.services.reconciler`).

Queue names derive from REFUND_EXCHANGE so separate deployments (and test runs)
sharing a broker never mix. Actors are registered on a broker built from the
settings (`make_broker`), never at import time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from worker import runtime
from worker.errors import BusUnavailable
from worker.settings import Settings

log = structlog.get_logger("worker.jobs")

SUBMIT_ACTOR = "submit_batch"
# Retries of process_notify: at the 60 s backoff cap, about nineteen years.
NOTIFY_MAX_RETRIES = 10_000_000
NOTIFY_ACTOR = "process_notify"
RECONCILE_ACTOR = "reconcile_batch"


def queue_prefix(exchange: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", exchange)


def submit_queue(exchange: str) -> str:
    return f"{queue_prefix(exchange)}.submit_batch"


def notify_queue(exchange: str) -> str:
    return f"{queue_prefix(exchange)}.process_notify"


def reconcile_queue(exchange: str) -> str:
    return f"{queue_prefix(exchange)}.reconcile_batch"


def job_queues(exchange: str) -> tuple[str, ...]:
    """Every job queue of a deployment (dramatiq adds `.DQ` and `.XQ` to each)."""
    return (submit_queue(exchange), notify_queue(exchange), reconcile_queue(exchange))


def submit_batch(batch_no: str) -> None:
    """Actor body: submit one batch and enqueue any batches it was split into."""
    from worker.services.submission import submit_batch as submit

    rt = runtime.current()
    result = submit(
        rt.db,
        rt.gateway,
        rt.merchant(),
        batch_no,
        clock=rt.clock,
        lease_seconds=rt.submit_lease_seconds,
    )
    for follow_up in result.follow_ups:
        enqueue_submit(rt.settings, follow_up)


def process_notify(kind: str, form: dict[str, str], received_at: str) -> None:
    """Actor body: apply one verified notification."""
    from worker.services.notifications import process_notification

    rt = runtime.current()
    process_notification(rt.db, kind, form, datetime.fromisoformat(received_at))


def reconcile_batch(batch_no: str) -> None:
    """Actor body: query one batch at the gateway and apply what the answer proves."""
    from worker.services.reconciler import reconcile_batch as reconcile

    rt = runtime.current()
    reconcile(
        rt.db,
        rt.refund_query,
        batch_no,
        clock=rt.clock,
        release_after_seconds=rt.settings.reconcile_release_after_seconds,
    )


def register_actors(broker: RabbitmqBroker, settings: Settings) -> None:
    exchange = settings.refund_exchange
    dramatiq.actor(
        broker=broker,
        actor_name=SUBMIT_ACTOR,
        queue_name=submit_queue(exchange),
        # Re-attempts of a batch are scheduled in PostgreSQL by the sweeper; these
        # retries only cover a crash of the job itself (e.g. the database was down).
        max_retries=5,
        min_backoff=500,
        max_backoff=10_000,
    )(submit_batch)
    dramatiq.actor(
        broker=broker,
        actor_name=NOTIFY_ACTOR,
        queue_name=notify_queue(exchange),
        # The receiver has answered `success`, so Alipay will not send this again: the
        # payload lives only in this queue until it is stored (the first thing the job
        # does), so a database outage is waited out for as long as it lasts, never
        # dead-lettered. Once stored, an error while applying keeps the row for replay.
        max_retries=NOTIFY_MAX_RETRIES,
        min_backoff=200,
        max_backoff=60_000,
    )(process_notify)
    dramatiq.actor(
        broker=broker,
        actor_name=RECONCILE_ACTOR,
        queue_name=reconcile_queue(exchange),
        # A lost or failed job is claimed again by the scheduler's sweep.
        max_retries=3,
        min_backoff=1_000,
        max_backoff=10_000,
    )(reconcile_batch)


def make_broker(settings: Settings, *, with_actors: bool = True) -> RabbitmqBroker:
    broker = RabbitmqBroker(url=settings.amqp_url, confirm_delivery=True)
    if with_actors:
        register_actors(broker, settings)
    return broker


@cache
def _publisher_broker(amqp_url: str) -> RabbitmqBroker:
    # Connections and channels are thread-local inside RabbitmqBroker.
    return RabbitmqBroker(url=amqp_url, confirm_delivery=True)


def _enqueue(settings: Settings, queue_name: str, actor: str, args: tuple[Any, ...]) -> None:
    broker = _publisher_broker(settings.amqp_url)
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_name, actor_name=actor, args=args, kwargs={}, options={}
    )
    try:
        broker.enqueue(message)
    except (dramatiq.errors.ConnectionError, OSError) as exc:
        raise BusUnavailable(f"could not enqueue {actor}: {type(exc).__name__}") from exc


def enqueue_submit(settings: Settings, batch_no: str) -> None:
    """Hand a batch to the submission queue (confirmed by the broker)."""
    _enqueue(settings, submit_queue(settings.refund_exchange), SUBMIT_ACTOR, (batch_no,))


def enqueue_reconcile(settings: Settings, batch_no: str) -> None:
    """Hand a batch to the reconciliation queue (confirmed by the broker)."""
    _enqueue(settings, reconcile_queue(settings.refund_exchange), RECONCILE_ACTOR, (batch_no,))


def enqueue_notification(settings: Settings, kind: str, form: dict[str, str]) -> None:
    """Durably queue a verified notification; returns once the broker confirmed it."""
    received_at = datetime.now(tz=UTC).isoformat()
    _enqueue(
        settings,
        notify_queue(settings.refund_exchange),
        NOTIFY_ACTOR,
        (kind, dict(form), received_at),
    )

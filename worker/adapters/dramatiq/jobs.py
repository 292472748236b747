"""Internal jobs on dramatiq (RabbitMQ broker with publisher confirms).

Three actors, their queues and retry rules: `submit_batch(batch_no)`,
`process_notify(kind, form, received_at[, partner])` and `reconcile_batch(batch_no)`. What
they run lives in `worker.entrypoints.actors` (thin calls into the services);
this adapter only declares them and enqueues their messages.

Queue names derive from REFUND_EXCHANGE so separate deployments (and test runs)
sharing a broker never mix. Actors are registered on a broker built from the
settings (`make_broker`), never at import time. Its consumers beat a heartbeat on
every turn of the consumer threads' loop (why there: `worker.observability.health`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from worker.config.settings import Settings
from worker.domain.errors import BusUnavailable
from worker.observability import health

log = structlog.get_logger("worker.jobs")

SUBMIT_ACTOR = "submit_batch"
# Retries of process_notify: at the 60 s backoff cap, about nineteen years.
NOTIFY_MAX_RETRIES = 10_000_000
NOTIFY_ACTOR = "process_notify"
RECONCILE_ACTOR = "reconcile_batch"
OPENAPI_ACTOR = "submit_openapi_refund"


def queue_prefix(exchange: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", exchange)


def submit_queue(exchange: str) -> str:
    return f"{queue_prefix(exchange)}.submit_batch"


def notify_queue(exchange: str) -> str:
    return f"{queue_prefix(exchange)}.process_notify"


def reconcile_queue(exchange: str) -> str:
    return f"{queue_prefix(exchange)}.reconcile_batch"


def openapi_queue(exchange: str) -> str:
    return f"{queue_prefix(exchange)}.submit_openapi_refund"


def job_queues(exchange: str) -> tuple[str, ...]:
    """Every job queue of a deployment (dramatiq adds `.DQ` and `.XQ` to each)."""
    return (
        submit_queue(exchange),
        notify_queue(exchange),
        reconcile_queue(exchange),
        openapi_queue(exchange),
    )


@dataclass(frozen=True)
class ActorBodies:
    """The functions the actors run (thin entry points into the services)."""

    submit_batch: Callable[[str], None]
    # (kind, form, received_at, partner); messages queued before merchants were recorded
    # carry no partner, so the body's last parameter has a default.
    process_notify: Callable[..., None]
    reconcile_batch: Callable[[str], None]
    submit_openapi_refund: Callable[[str], None] | None = None


def register_actors(broker: RabbitmqBroker, settings: Settings, bodies: ActorBodies) -> None:
    """Declare the three actors, with their queues and retry rules, on `broker`."""
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
    )(bodies.submit_batch)
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
    )(bodies.process_notify)
    dramatiq.actor(
        broker=broker,
        actor_name=RECONCILE_ACTOR,
        queue_name=reconcile_queue(exchange),
        # A lost or failed job is claimed again by the scheduler's sweep.
        max_retries=3,
        min_backoff=1_000,
        max_backoff=10_000,
    )(bodies.reconcile_batch)
    if bodies.submit_openapi_refund is not None:
        dramatiq.actor(
            broker=broker,
            actor_name=OPENAPI_ACTOR,
            queue_name=openapi_queue(exchange),
            # Attempts are scheduled in PostgreSQL and re-driven by the scheduler's sweep;
            # these retries only cover a crash of the job itself.
            max_retries=5,
            min_backoff=500,
            max_backoff=10_000,
        )(bodies.submit_openapi_refund)


class _BeatingConsumer(dramatiq.Consumer):
    """A broker consumer whose every turn (a message, or None once idle) beats `heartbeat`."""

    def __init__(self, consumer: dramatiq.Consumer, heartbeat: health.Heartbeat) -> None:
        self._consumer = consumer
        self._heartbeat = heartbeat

    def __next__(self) -> dramatiq.MessageProxy | None:
        message = next(self._consumer)
        self._heartbeat.beat()
        return message

    def ack(self, message: dramatiq.MessageProxy) -> None:
        self._consumer.ack(message)

    def nack(self, message: dramatiq.MessageProxy) -> None:
        self._consumer.nack(message)

    def requeue(self, messages: Iterable[dramatiq.MessageProxy]) -> None:
        self._consumer.requeue(messages)

    def close(self) -> None:
        self._consumer.close()


class _Broker(RabbitmqBroker):
    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> dramatiq.Consumer:
        """The consumer of a worker's consumer thread, which calls this again every few
        seconds while the broker is away: each call beats as alive but only waiting."""
        heartbeat = health.loop(f"consumer {queue_name}")
        heartbeat.beat(completed=False)
        return _BeatingConsumer(super().consume(queue_name, prefetch, timeout), heartbeat)


def make_broker(settings: Settings, bodies: ActorBodies | None = None) -> RabbitmqBroker:
    """A broker for the settings' AMQP URL, with the actors declared when `bodies` is given."""
    broker = _Broker(url=settings.amqp_url, confirm_delivery=True)
    if bodies is not None:
        register_actors(broker, settings, bodies)
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


def enqueue_openapi(settings: Settings, refund_id: str) -> None:
    """Hand an OpenAPI refund to its submission queue (confirmed by the broker)."""
    _enqueue(settings, openapi_queue(settings.refund_exchange), OPENAPI_ACTOR, (refund_id,))


def enqueue_notification(settings: Settings, kind: str, form: dict[str, str], partner: str) -> None:
    """Durably queue a verified notification, with the partner id of the merchant whose
    key authenticated it; returns once the broker confirmed it."""
    received_at = datetime.now(tz=UTC).isoformat()
    _enqueue(
        settings,
        notify_queue(settings.refund_exchange),
        NOTIFY_ACTOR,
        (kind, dict(form), received_at, partner),
    )

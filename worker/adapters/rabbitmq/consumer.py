"""Consuming the intake queue in micro-batches: nothing acked before its effect is stored.

Services never see pika: `run_consumer` hands them `Delivery` objects in
micro-batches and takes back the ones to dead-letter as `DeadLetter` (the plain types
of `worker.services.ports`). The rules it keeps, and why:

* Nothing is acked before its effect is stored or dead-lettered. The handler commits
  its effects, the dead letters are published and confirmed by the broker, and only then
  is the whole micro-batch acked with one `basic.ack(multiple=True)`. A crash at any
  point leaves the messages unacked, so the broker redelivers them (the handler is
  idempotent).
* A transient failure of the handler (`TransientError`, e.g. `DatabaseUnavailable`)
  never acks and never dead-letters: the micro-batch is retried in process with a
  bounded exponential backoff for `transient_hold` seconds, then nacked with requeue.
  A quorum queue counts every return against its delivery limit (see
  `worker.adapters.rabbitmq.topology`), so a database fail-over of a minute would
  otherwise spend the whole budget and send valid refund requests to the dead-letter
  queue.
* An unexpected exception from the handler is isolated: the batch is retried one
  message at a time and only the message that still fails is dead-lettered (reason
  `handler_error`), so one poison message does not take 499 good ones with it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from worker.adapters.rabbitmq.connection import BusConnection, bus_errors, default_connection_name
from worker.adapters.rabbitmq.publisher import Publisher
from worker.adapters.rabbitmq.topology import QueueType, Topology, intake_queue_arguments
from worker.adapters.rabbitmq.wire import delivery_from
from worker.domain.backoff import backoff_delay
from worker.domain.errors import BusUnavailable, ConfigError, TransientError
from worker.observability import health
from worker.services.ports import DeadLetter, Delivery

# All modules of the adapter log under one name, the one its lines had as a single module.
log = structlog.get_logger("worker.adapters.rabbitmq.bus")

# The consumer wakes up at least this often to notice `stop` while idle.
POLL_SECONDS = 0.2

BatchHandler = Callable[[Sequence[Delivery]], Sequence[DeadLetter]]


class Backoff:
    """The delays of one retry loop: `backoff_delay` spread over its upper half.

    Delay n is in [d/2, d], d = base*2**n capped at `cap` (a cap below the base
    wins), so replicas retrying together drift apart.
    """

    def __init__(self, base: float = 0.2, cap: float = 30.0) -> None:
        if base <= 0 or cap <= 0:
            raise ValueError("backoff needs a positive base and cap")
        self.base = min(base, cap)
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        """The next delay in seconds; grows until `cap`."""
        ceiling = backoff_delay(self.attempt, base=self.base, cap=self.cap)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from `base` (after a success)."""
        self.attempt = 0


@dataclass(frozen=True)
class ConsumerSettings:
    """How `run_consumer` batches, retries and reconnects."""

    prefetch: int = 500
    max_batch: int = 500
    max_wait: float = 0.05
    queue_type: QueueType = "quorum"
    delivery_limit: int = 5
    transient_hold: float = 60.0
    max_backoff: float = 30.0
    connection_name: str = field(default_factory=lambda: default_connection_name("intake"))
    heartbeat: int = 60

    def __post_init__(self) -> None:
        if self.prefetch < 1 or self.max_batch < 1:
            raise ConfigError("prefetch and max_batch must be at least 1")
        if self.max_batch > self.prefetch:
            raise ConfigError(
                f"max_batch ({self.max_batch}) must not exceed prefetch ({self.prefetch}): "
                "the broker never hands out more unacked messages than the prefetch"
            )
        if self.max_wait < 0 or self.transient_hold < 0:
            raise ConfigError("max_wait and transient_hold must be >= 0")
        if self.max_backoff <= 0:
            raise ConfigError("max_backoff must be > 0")


@dataclass(frozen=True)
class _Held:
    delivery: Delivery
    arrived: float


class _Session:
    """One connection's worth of consuming; raises BusUnavailable when it breaks."""

    def __init__(
        self,
        bus: BusConnection,
        topology: Topology,
        handler: BatchHandler,
        settings: ConsumerSettings,
        stop: threading.Event,
        progress: health.Heartbeat,
    ) -> None:
        self.bus = bus
        self.topology = topology
        self.handler = handler
        self.settings = settings
        self.stop = stop
        self.beat = progress.beat  # the loop's liveness, not the AMQP heartbeat
        self.buffer: deque[_Held] = deque()
        self.cancelled_by_broker = False
        self.backoff = Backoff(cap=settings.max_backoff)
        self.channel: Any = None
        self.consumer_tag: str | None = None
        self.publisher = Publisher(bus, topology)

    def run(self) -> None:
        """Consume until `stop` is set, then settle what is in hand and return."""
        with bus_errors("consuming the intake queue"):
            self.channel = self.bus.channel()
            self.channel.basic_qos(prefetch_count=self.settings.prefetch)
            self.channel.add_on_cancel_callback(self._on_cancel)
            self.consumer_tag = self.channel.basic_consume(
                self.topology.intake_queue, self._on_message, auto_ack=False
            )
            while not self.stop.is_set():
                if self.cancelled_by_broker:
                    raise BusUnavailable("the broker cancelled the consumer (queue deleted?)")
                batch = self._gather()
                if batch:
                    self._settle(batch)
            # Stop taking work; settle what was already handed to us, then close.
            self.channel.basic_cancel(self.consumer_tag)
            while self.buffer:
                self._settle(self._take())
            self.channel.close()

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.buffer.append(_Held(delivery_from(method, properties, body), time.monotonic()))

    def _on_cancel(self, _frame: Any) -> None:
        self.cancelled_by_broker = True

    def _events(self, time_limit: float) -> None:
        # Every wait of the session comes here (idle polls, filling a micro-batch, the
        # pauses between retries while the database is away): one turn of its loop.
        self.beat()
        self.bus.pika_connection.process_data_events(time_limit=max(0.0, time_limit))

    def _gather(self) -> list[Delivery]:
        """Up to max_batch deliveries, waiting at most max_wait after the first."""
        if not self.buffer:
            self._events(POLL_SECONDS)
            if not self.buffer:
                return []
        deadline = self.buffer[0].arrived + self.settings.max_wait
        while len(self.buffer) < self.settings.max_batch and not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._events(remaining)
        return self._take()

    def _take(self) -> list[Delivery]:
        count = min(len(self.buffer), self.settings.max_batch)
        return [self.buffer.popleft().delivery for _ in range(count)]

    def _pause(self, seconds: float) -> None:
        """Wait, serving heartbeats (new deliveries are buffered), unless stopping."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            self._events(min(remaining, POLL_SECONDS))

    def _settle(self, batch: list[Delivery]) -> None:
        """Handle, dead-letter and ack one micro-batch; on transient failure hold or nack."""
        last_tag = batch[-1].delivery_tag
        started = time.monotonic()
        while True:
            try:
                dead = self._handle(batch)
                break
            except TransientError as exc:
                log.warning(
                    "intake.transient_failure",
                    error_type=type(exc).__name__,
                    error=str(exc)[:300],
                    size=len(batch),
                )
                held_for = time.monotonic() - started
                if self.stop.is_set() or held_for >= self.settings.transient_hold:
                    self.channel.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
                    log.info(
                        "intake.batch_released", size=len(batch), held_seconds=round(held_for, 3)
                    )
                    self._pause(self.backoff.next())
                    return
                self._pause(self.backoff.next())
        self.backoff.reset()
        if dead:
            self.publisher.dead_letter(dead)
        self.channel.basic_ack(delivery_tag=last_tag, multiple=True)
        log.debug(
            "intake.batch",
            size=len(batch),
            dead_lettered=len(dead),
            redelivered=sum(d.redelivered for d in batch),
        )

    def _handle(self, batch: list[Delivery]) -> list[DeadLetter]:
        """Call the handler; isolate an unexpected failure to the message causing it."""
        try:
            return list(self.handler(batch))
        except TransientError:
            raise
        except Exception as exc:
            log.error(
                "intake.handler_error",
                error_type=type(exc).__name__,
                size=len(batch),
                exc_info=True,
            )
            if len(batch) == 1:
                return [_handler_error_letter(batch[0], exc)]
        dead: list[DeadLetter] = []
        for delivery in batch:
            try:
                dead.extend(self.handler([delivery]))
            except TransientError:
                raise
            except Exception as exc:
                log.error(
                    "intake.handler_error",
                    error_type=type(exc).__name__,
                    size=1,
                    message_id=delivery.message_id,
                    exc_info=True,
                )
                dead.append(_handler_error_letter(delivery, exc))
        return dead


def _handler_error_letter(delivery: Delivery, exc: Exception) -> DeadLetter:
    return DeadLetter(delivery, "handler_error", f"{type(exc).__name__}: {exc}")


def run_consumer(
    amqp_url: str,
    topology: Topology,
    handler: BatchHandler,
    *,
    stop: threading.Event,
    prefetch: int = 500,
    max_batch: int = 500,
    max_wait: float = 0.05,
    queue_type: QueueType = "quorum",
    delivery_limit: int = 5,
    transient_hold: float = 60.0,
    max_backoff: float = 30.0,
    connection_name: str | None = None,
    heartbeat: int = 60,
) -> None:
    """Consume the intake queue in micro-batches until `stop` is set.

    Declares the topology, then repeatedly gathers up to `max_batch` deliveries (or
    what arrived within `max_wait` seconds of the first), calls `handler` once, publishes
    the dead letters it returns as one durable batch, and acks the micro-batch with
    one `basic.ack(multiple=True)`.

    `TransientError` from the handler: the batch is retried in process with backoff
    (at most `max_backoff` seconds apart) for `transient_hold` seconds, then nacked with
    requeue; nothing is acked that was not stored or dead-lettered. A lost connection
    is reopened with backoff; unacked deliveries come back marked `redelivered`.
    When `stop` is set the consumer stops taking work, settles what it holds, closes
    cleanly and returns. `ConfigError` (mismatching queue arguments) is raised.

    The handler runs on this thread between I/O: it must return well within two
    heartbeat intervals (`heartbeat`, default 60 s) or the broker drops the connection.
    """
    settings = ConsumerSettings(
        prefetch=prefetch,
        max_batch=max_batch,
        max_wait=max_wait,
        queue_type=queue_type,
        delivery_limit=delivery_limit,
        transient_hold=transient_hold,
        max_backoff=max_backoff,
        connection_name=connection_name or default_connection_name("intake"),
        heartbeat=heartbeat,
    )
    intake_queue_arguments(topology, queue_type, delivery_limit)  # validate before connecting
    reconnect = Backoff(base=0.2, cap=max_backoff)
    progress = health.loop("intake", allowed_silence=max(health.DEFAULT_SILENCE, 3 * max_backoff))
    while not stop.is_set():
        progress.beat(completed=False)  # alive, (re)connecting to the broker
        bus = BusConnection(amqp_url, connection_name=settings.connection_name, heartbeat=heartbeat)
        started = time.monotonic()
        try:
            bus.connect()
            bus.declare_intake(topology, queue_type=queue_type, delivery_limit=delivery_limit)
            _Session(bus, topology, handler, settings, stop, progress).run()
            bus.close()
            return
        except BusUnavailable as exc:
            bus.close()
            if time.monotonic() - started > 10:
                reconnect.reset()
            delay = reconnect.next()
            log.warning(
                "bus.disconnected",
                connection_name=settings.connection_name,
                error=str(exc),
                retry_in=round(delay, 2),
            )
            stop.wait(delay)
        except BaseException:
            bus.close()
            raise

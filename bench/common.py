"""What every measurement shares: result rows, traffic, the bare anchors.

The anchors here are deliberately the simplest correct use of the same tools the
worker uses (pika with a prefetch and multiple acks), so a ratio below 1 says how
much the worker's own rules cost on top of the tools, not how fast the machine is.

RSS sampling (`RssSampler`, `role_pids`) is in `bench.rss`.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika

from devtools.devstack import DEFAULT_AMQP
from worker.adapters.rabbitmq import (
    BusConnection,
    Publisher,
    Topology,
    connection_parameters,
    default_connection_name,
    intake_queue_arguments,
)
from worker.services.ports import OutMessage

AMQP_URL = os.environ.get("BENCH_AMQP_URL", DEFAULT_AMQP)
REQUESTED = Topology.REQUESTED

# Trade numbers of the benchmark: 16-64 digits, distinct from the tests' ones.
_TRADE_PREFIX = "2026300000"


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table.

    `ratio` is figure / anchor for rates (higher is better) and value / limit for
    latencies and memory (at most 1 meets the target); `met` is None when the row
    has no target or could not be measured.
    """

    measure: str
    figure: str
    anchor: str
    ratio: float | None
    target: str
    met: bool | None
    note: str = ""


@dataclass
class Context:
    """Options and what one measurement leaves for the next (anchors, RSS peaks)."""

    quick: bool
    workdir: Path
    anchor_rate: float | None = None
    e2e_rate: float | None = None
    rss_peaks: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def fmt_rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}"


def fmt_seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --------------------------------------------------------------------------------------
# Traffic
# --------------------------------------------------------------------------------------


def trade_no(n: int) -> str:
    return f"{_TRADE_PREFIX}{n:014d}"


def refund_event(tag: str, index: int, *, refunds_per_trade: int) -> dict[str, Any]:
    """A valid refund.requested event: refund `index` of the run `tag`."""
    return {
        "event_id": str(uuid.uuid4()),
        "refund_id": f"{tag}-{index}",
        "trade_no": trade_no(index // refunds_per_trade),
        "amount": f"{1 + index % 50}.{index % 100:02d}",
        "reason": "商品退货 return",
        "order_id": f"order-{tag}-{index}",
        "requested_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def refund_messages(
    tag: str, start: int, stop: int, *, refunds_per_trade: int
) -> Iterable[OutMessage]:
    for index in range(start, stop):
        event = refund_event(tag, index, refunds_per_trade=refunds_per_trade)
        body = json.dumps(event, ensure_ascii=False).encode()
        yield OutMessage(REQUESTED, body, event["event_id"])


def _publish_slice(
    amqp_url: str,
    exchange: str,
    tag: str,
    start: int,
    stop: int,
    refunds_per_trade: int,
    batch: int,
) -> None:
    topology = Topology.for_exchange(exchange)
    with BusConnection(amqp_url, connection_name=default_connection_name("bench")) as bus:
        publisher = Publisher(bus, topology)
        pending: list[OutMessage] = []
        for message in refund_messages(tag, start, stop, refunds_per_trade=refunds_per_trade):
            pending.append(message)
            if len(pending) >= batch:
                publisher.publish_batch(pending)
                pending = []
        publisher.publish_batch(pending)


def publish_refunds(
    exchange: str,
    tag: str,
    count: int,
    *,
    refunds_per_trade: int,
    processes: int = 2,
    batch: int = 1000,
) -> float:
    """Publish `count` refund.requested events with `processes` publishers; returns seconds.

    Each process publishes a contiguous slice of refund indexes with one AMQP
    transaction per `batch` messages (the worker's own `Publisher`).
    """
    started = time.perf_counter()
    if processes <= 1 or count < 10_000:
        _publish_slice(AMQP_URL, exchange, tag, 0, count, refunds_per_trade, batch)
        return time.perf_counter() - started
    bounds = [count * i // processes for i in range(processes + 1)]
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_publish_slice,
            args=(AMQP_URL, exchange, tag, lo, hi, refunds_per_trade, batch),
        )
        for lo, hi in itertools.pairwise(bounds)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a publisher process failed (exit {worker.exitcode})")
    return time.perf_counter() - started


def declare_twin_queue(topology: Topology, name: str, *, queue_type: str = "quorum") -> None:
    """A queue with the intake queue's arguments, bound like it: receives the same messages."""
    arguments = intake_queue_arguments(topology, queue_type, 5)  # type: ignore[arg-type]
    with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
        channel = bus.channel()
        channel.queue_declare(name, durable=True, arguments=arguments)
        channel.queue_bind(name, topology.exchange, routing_key=REQUESTED)
        channel.close()


def delete_queue(name: str) -> None:
    with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
        channel = bus.channel()
        channel.queue_delete(name)
        channel.close()


def queue_depth(name: str) -> int:
    with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
        return bus.message_count(name)


# --------------------------------------------------------------------------------------
# The anchor: a bare pika consumer
# --------------------------------------------------------------------------------------


def bare_consume(queue: str, expect: int, *, prefetch: int = 1000) -> float:
    """Consume `expect` messages: json.loads each, ack every prefetch/2 with multiple=True.

    Returns messages per second from the first delivery to the last ack.
    """
    params = connection_parameters(AMQP_URL, connection_name=default_connection_name("anchor"))
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    ack_every = max(1, prefetch // 2)
    state = {"got": 0, "first": 0.0, "last": 0.0}

    def on_message(ch: Any, method: Any, _props: Any, body: bytes) -> None:
        if not state["got"]:
            state["first"] = time.perf_counter()
        json.loads(body)
        state["got"] += 1
        if state["got"] % ack_every == 0 or state["got"] >= expect:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if state["got"] >= expect:
            state["last"] = time.perf_counter()
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    connection.close()
    return expect / (state["last"] - state["first"])


# --------------------------------------------------------------------------------------
# A consumer of refund.completed that stamps each arrival
# --------------------------------------------------------------------------------------


class Observer:
    """Consumes a queue in a thread (prefetch 1000, multiple acks) and notes arrival times.

    `arrivals[refund_id]` is the wall-clock time (time.time()) the first
    refund.completed for that refund arrived; `duplicates` counts the others.
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-observer", daemon=True)

    def start(self) -> Observer:
        self._thread.start()
        self._ready.wait(15)
        return self

    def _run(self) -> None:
        try:
            params = connection_parameters(
                AMQP_URL, connection_name=default_connection_name("observer")
            )
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1000)
            unacked = {"count": 0, "tag": 0}

            def on_message(ch: Any, method: Any, _props: Any, body: bytes) -> None:
                now = time.time()
                refund_id = str(json.loads(body)["refund_id"])
                if refund_id in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[refund_id] = now
                unacked["count"] += 1
                unacked["tag"] = method.delivery_tag
                if unacked["count"] >= 500:
                    ch.basic_ack(method.delivery_tag, multiple=True)
                    unacked["count"] = 0

            channel.basic_consume(self.queue, on_message)
            self._ready.set()
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.05)
                if unacked["count"]:
                    channel.basic_ack(unacked["tag"], multiple=True)
                    unacked["count"] = 0
            connection.close()
        except BaseException as exc:  # reported by wait()
            self._error = exc
            self._ready.set()

    def wait(self, expected: set[str], timeout: float) -> bool:
        """Wait until every expected refund_id arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._error is not None:
                raise RuntimeError(f"observer failed: {self._error!r}")
            if len(self.arrivals) >= len(expected) and expected <= self.arrivals.keys():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_until(check: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(poll)
    return check()

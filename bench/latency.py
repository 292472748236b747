"""(3) Latency at low load: 20 refunds/s, one message at a time, for 60 s.

Two hops, per refund:
* publish to submission: the bench's clock just before publishing, to the batch's
  `accepted_at` (recorded when the gateway's answer to the submission came back).
  A batch is cut when its oldest refund waited BATCH_MAX_WAIT_SECONDS, so the
  target is that wait plus 0.25 s;
* notification to refund.completed: the notify receiver's `notify.received` log
  line (the request was read), to the refund.completed arriving at a consumer on
  the bus, through verification, notify_verify, the job queue, the ledger, the
  outbox and the relay.

The anchor is the bare bus hop at the same rate: a message published (one AMQP
transaction each, as above) until a bare pika consumer has it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import pika

from bench.common import (
    AMQP_URL,
    Context,
    Observer,
    Row,
    declare_twin_queue,
    delete_queue,
    percentile,
    refund_messages,
)
from devtools.devstack import Stack, StackConfig
from worker.adapters.rabbitmq import (
    BusConnection,
    Publisher,
    connection_parameters,
    default_connection_name,
)

RATE = 20.0
MAX_WAIT = 0.5
SUBMIT_SLACK = 0.25
NOTIFY_LIMIT = 0.25


def _paced_publish(
    stack: Stack, tag: str, count: int, rate: float, offset: int = 0
) -> dict[str, float]:
    """Publish `count` refunds one per transaction at `rate`/s; refund_id -> publish time."""
    published: dict[str, float] = {}
    with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
        publisher = Publisher(bus, stack.topology)
        start = time.monotonic()
        messages = refund_messages(tag, offset, offset + count, refunds_per_trade=3)
        for n, message in enumerate(messages):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                bus.process_events(delay)
            refund_id = json.loads(message.body)["refund_id"]
            published[refund_id] = time.time()
            publisher.publish_batch([message])
    return published


def _bus_hop(stack: Stack, count: int) -> list[float]:
    """Seconds from publish to a bare consumer's delivery, at RATE messages/s."""
    queue = f"{stack.topology.intake_queue}.bench-hop"
    declare_twin_queue(stack.topology, queue)
    arrivals: dict[str, float] = {}
    ready = threading.Event()

    def consume() -> None:
        params = connection_parameters(AMQP_URL, connection_name=default_connection_name("hop"))
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)

        def on_message(ch: Any, method: Any, _props: Any, body: bytes) -> None:
            arrivals[json.loads(body)["refund_id"]] = time.time()
            ch.basic_ack(method.delivery_tag)
            if len(arrivals) >= count:
                ch.stop_consuming()

        channel.basic_consume(queue, on_message)
        ready.set()
        channel.start_consuming()
        connection.close()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        # The intake queue gets these too: they are valid refunds and simply complete.
        sent = _paced_publish(stack, f"hop{uuid.uuid4().hex[:6]}", count, RATE)
        thread.join(30)
    finally:
        delete_queue(queue)
    return [arrivals[r] - t for r, t in sent.items() if r in arrivals]


def _notify_arrivals(stack: Stack) -> dict[str, float]:
    """batch_no -> when the notify receiver first read its notification."""
    first: dict[str, float] = {}
    for line in stack.log_lines():
        if line.get("event") == "notify.received" and line.get("batch_no"):
            moment = datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00"))
            first.setdefault(str(line["batch_no"]), moment.timestamp())
    return first


def measure(ctx: Context) -> list[Row]:
    seconds = ctx.size(60, 10)
    count = int(RATE * seconds)
    tag = f"lat{uuid.uuid4().hex[:6]}"
    config = StackConfig(
        workdir=ctx.workdir / "latency",
        batch_max_wait=MAX_WAIT,
        sandbox_args=["--process-delay", "0"],
    )
    with Stack(config) as stack:
        hop = _bus_hop(stack, ctx.size(200, 60))
        observer = Observer(stack.observer_queue).start()
        # Warm up every process (first connections, first queries) outside the measurement.
        warm = _paced_publish(stack, f"warm{tag}", 20, RATE)
        observer.wait(set(warm), 60)
        published = _paced_publish(stack, tag, count, RATE)
        if not observer.wait(set(published), 120):
            raise TimeoutError("not every refund completed within 120 s")
        observer.stop()
        accepted = dict(
            stack.query(
                # A notification can settle a batch before the submission's answer is
                # recorded (no accepted_at then); it came after the gateway took the batch,
                # so its arrival bounds the submission from above.
                "SELECT r.refund_id, extract(epoch FROM coalesce(b.accepted_at,"
                " (SELECT min(n.received_at) FROM notifications n"
                " WHERE n.batch_no = b.batch_no)))::float8"
                " FROM refunds r JOIN batches b USING (batch_no) WHERE r.refund_id LIKE %s",
                f"{tag}-%",
            )
        )
        batch_of = dict(
            stack.query(
                "SELECT refund_id, batch_no FROM refunds WHERE refund_id LIKE %s", f"{tag}-%"
            )
        )
        notified = _notify_arrivals(stack)
    to_submit = [accepted[r] - t for r, t in published.items() if accepted.get(r) is not None]
    to_complete = [
        observer.arrivals[r] - notified[batch_of[r]]
        for r in published
        if batch_of.get(r) in notified and r in observer.arrivals
    ]
    hop_p99 = percentile(hop, 99)
    submit_limit = MAX_WAIT + SUBMIT_SLACK
    p50, p99 = percentile(to_submit, 50), percentile(to_submit, 99)
    n50, n99 = percentile(to_complete, 50), percentile(to_complete, 99)
    print(
        f"  publish->submission p50 {p50:.3f} p99 {p99:.3f}; notify->completed "
        f"p50 {n50:.3f} p99 {n99:.3f}; bus hop p99 {hop_p99 * 1000:.1f} ms",
        flush=True,
    )
    anchor = f"bare bus hop p99 {hop_p99 * 1000:.1f} ms"
    return [
        Row(
            measure=(
                f"(3a) latency at {RATE:.0f} refunds/s for {seconds} s: publish to submission"
                f" (BATCH_MAX_WAIT_SECONDS={MAX_WAIT})"
            ),
            figure=f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
            anchor=anchor,
            ratio=p99 / submit_limit,
            target=f"p99 <= {submit_limit * 1000:.0f} ms (wait + 250 ms)",
            met=p99 <= submit_limit,
            note=f"{len(to_submit)} refunds in {len(set(batch_of.values()))} batches",
        ),
        Row(
            measure=f"(3b) latency at {RATE:.0f} refunds/s: notification to refund.completed",
            figure=f"p50 {n50 * 1000:.0f} ms, p99 {n99 * 1000:.0f} ms",
            anchor=anchor,
            ratio=n99 / NOTIFY_LIMIT,
            target=f"p99 <= {NOTIFY_LIMIT * 1000:.0f} ms",
            met=n99 <= NOTIFY_LIMIT,
            note=(
                f"{len(to_complete)} refunds, from the receiver's `notify.received` line to the "
                "event at a consumer on the bus"
            ),
        ),
    ]

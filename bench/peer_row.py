"""(7) The peer: the same job done the straightforward way (`bench/peer/`), same traffic.

The peer's intake (dramatiq, 2 processes x 4 threads), batcher and notification
receiver (gunicorn, 2 workers) run beside the same sandbox gateway answering with no
delay; refunds are published as in (2), and the same observer stamps each
refund.completed. The project must reach at least 5x the peer's rate measured here.
"""

from __future__ import annotations

import socket
import sys
import time
import uuid

from bench.common import AMQP_URL, Context, Row, fmt_rate
from bench.end_to_end import Run, drive, stack_config
from bench.peer import db
from devtools.devstack import Stack
from devtools.processes import free_port
from worker.adapters.rabbitmq import BusConnection, Topology, default_connection_name

TARGET = 5.0
WHY = (
    "the project stores, batches and completes refunds by the thousand per statement and "
    "confirms publishes asynchronously; the peer pays a transaction, a round trip and a "
    "synchronous confirm per refund"
)


def _declare_peer_queue(exchange: str, queue: str, intake_queue: str) -> None:
    """The actor's queue, declared as dramatiq declares it, bound like the intake queue.

    The project's own intake queue is deleted: nobody consumes it in this row.
    """
    with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
        channel = bus.channel()
        channel.queue_delete(intake_queue)
        # dramatiq's own arguments (it declares the .DQ and .XQ queues itself).
        channel.queue_declare(
            queue,
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{queue}.XQ"},
        )
        channel.queue_bind(queue, exchange, routing_key=Topology.REQUESTED)
        channel.close()


def _delete_peer_queues(queue: str) -> None:
    with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
        channel = bus.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
        channel.close()


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the peer's receiver did not listen on {port} within {timeout:.0f} s")


def run_peer(ctx: Context, count: int) -> Run:
    port = free_port()
    queue = f"peer-intake-{uuid.uuid4().hex[:8]}"
    env = {"PEER_INTAKE_QUEUE": queue, "PEER_NOTIFY_URL": f"http://127.0.0.1:{port}/notify"}
    with Stack(stack_config(ctx, "peer", roles={}, extra_env=env)) as stack:
        db.create(stack.database_url)
        _declare_peer_queue(stack.exchange, queue, stack.topology.intake_queue)
        try:
            python = sys.executable
            stack.start_process(
                "peer-intake",
                [
                    python,
                    "-m",
                    "dramatiq",
                    "bench.peer.intake",
                    "--processes",
                    "2",
                    "--threads",
                    "4",
                ],
            )
            stack.start_process("peer-batcher", [python, "-m", "bench.peer.batcher"])
            stack.start_process(
                "peer-receiver",
                [
                    python,
                    "-m",
                    "gunicorn",
                    "-w",
                    "2",
                    "-b",
                    f"127.0.0.1:{port}",
                    "bench.peer.receiver:app",
                ],
            )
            _wait_port(port)
            return drive(ctx, stack, count)
        finally:
            _delete_peer_queues(queue)


def measure(ctx: Context) -> list[Row]:
    count = ctx.size(20_000, 2_000)
    run = run_peer(ctx, count)
    project = ctx.e2e_rate
    print(f"  peer: {run.rate:,.0f} refunds/s ({run.seconds:.1f} s)", flush=True)
    ratio = project / run.rate if project is not None else None
    return [
        Row(
            measure=(
                f"(7) peer: {count:,} refunds the straightforward way (dramatiq actor and "
                "transaction per refund, timer batches, synchronous confirms)"
            ),
            figure=f"{fmt_rate(run.rate, ' refunds/s')} ({run.seconds:.1f} s)",
            anchor=(
                f"project (2) {fmt_rate(project, ' refunds/s')}" if project else "(2) did not run"
            ),
            ratio=ratio,
            target=f"project >= {TARGET:.0f} x peer",
            met=None if ratio is None else ratio >= TARGET,
            note=f"{WHY}; {run.note()}",
        )
    ]

"""`refund-worker worker`: run the dramatiq actors (submit_batch, process_notify)."""

from __future__ import annotations

import argparse

import structlog
from dramatiq import Worker

from worker.adapters.dramatiq import jobs
from worker.entrypoints import runtime
from worker.entrypoints.actors import BODIES
from worker.entrypoints.roles._common import boot, stop_on_signals

log = structlog.get_logger("worker.worker")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=20.0,
        help="seconds to let jobs in hand finish on SIGTERM (default 20)",
    )


def run(args: argparse.Namespace) -> int:
    settings = boot("worker")
    rt = runtime.current()
    rt.db_pool_size = args.threads + 1
    broker = jobs.make_broker(settings, BODIES)
    stop = stop_on_signals()
    worker = Worker(broker, worker_threads=args.threads)
    worker.start()
    log.info("worker.started", threads=args.threads, queues=sorted(broker.get_declared_queues()))
    stop.wait()
    worker.stop(timeout=int(args.shutdown_timeout * 1000))
    broker.close()
    rt.close()
    log.info("role.stopped")
    return 0

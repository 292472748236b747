"""Why `LineWriter` buffers: 50,000 log lines to a pipe, buffered vs one write per line.

    .venv/bin/python -m bench.micro_logwriter            # 50,000 lines, best of 5
    .venv/bin/python -m bench.micro_logwriter --lines 200000 --repeat 3

The roles write their lines to standard output, which under a supervisor, a container
runtime or `refund-worker all` is a pipe. Unbuffered, `LineWriter` writes and flushes
every line (one `write` system call each, the stdlib `StreamHandler` behaviour);
buffered, as the roles run it (`worker/entrypoints/roles/_common.py`), it writes the
lines waiting in pieces of at most `ATOMIC_WRITE_BYTES` (`worker/observability/writer.py`).
A child process (`cat` to /dev/null) drains the pipe, as a log collector would. The
lines are rendered once beforehand, so only the writing is timed. The script prints
both timings and their ratio; it asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
import time

from worker.observability.writer import LineWriter

# The shape of a refund's `refund.received` line as the intake role writes it.
_LINE = json.dumps(
    {
        "refund_id": "RF-{n:08d}",
        "trade_no": "2024050122001004270231872174",
        "amount": "12.50",
        "event": "refund.received",
        "role": "intake",
        "level": "info",
        "logger": "worker.intake",
        "timestamp": "2026-11-22T02:20:00.123456Z",
    }
)


def _lines(count: int) -> list[str]:
    return [_LINE.replace("{n:08d}", f"{n:08d}") for n in range(count)]


def _time_writer(lines: list[str], *, buffered: bool) -> float:
    """Seconds to hand every line to a `LineWriter` on a pipe and have them all written."""
    drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert drain.stdin is not None
    stream = io.TextIOWrapper(drain.stdin, encoding="utf-8")
    writer = LineWriter(stream, buffered=buffered)
    try:
        started = time.perf_counter()
        for line in lines:
            writer.write_line(line, logging.INFO)
        writer.flush()
        elapsed = time.perf_counter() - started
    finally:
        writer.close()
        stream.close()
        drain.wait(30)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=50_000, help="lines per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the best counts")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    lines = _lines(args.lines)
    per_line = min(_time_writer(lines, buffered=False) for _ in range(args.repeat))
    buffered = min(_time_writer(lines, buffered=True) for _ in range(args.repeat))
    count = f"{args.lines:,} lines to a pipe"
    print(f"one write per line : {per_line * 1000:8.1f} ms  ({count}, best of {args.repeat})")
    print(f"buffered LineWriter: {buffered * 1000:8.1f} ms  ({count}, best of {args.repeat})")
    print(f"ratio (one write per line / buffered): {per_line / buffered:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The machine the numbers come from, and the table: printed and written as Markdown."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import pika
import psycopg

from bench.common import AMQP_URL, Row
from devtools.devstack import DEFAULT_ADMIN_DB
from worker.adapters.rabbitmq import connection_parameters, default_connection_name

HEADER = ("measure", "figure", "anchor (same run)", "ratio", "target", "met?")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _rabbitmq_version() -> str:
    try:
        params = connection_parameters(AMQP_URL, connection_name=default_connection_name("bench"))
        connection = pika.BlockingConnection(params)
        try:
            props = connection._impl.server_properties  # no public accessor in pika
            version = props.get("version", b"?")
            return version.decode() if isinstance(version, bytes) else str(version)
        finally:
            connection.close()
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def _postgres_version() -> str:
    try:
        with psycopg.connect(DEFAULT_ADMIN_DB, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]).split()[0] if row else "unknown"
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def machine() -> dict[str, str]:
    """What the table's numbers depend on: date, cores, memory, CPU, tool versions, load."""
    load = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores (nproc), {_memory_gib()}, {_cpu_model()}",
        "software": (
            f"Python {sys.version.split()[0]}, RabbitMQ {_rabbitmq_version()}, "
            f"PostgreSQL {_postgres_version()}, {platform.system()} {platform.release()}"
        ),
        "load average at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }


def cells(row: Row) -> list[str]:
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
    met = "-" if row.met is None else ("yes" if row.met else "**no**")
    return [row.measure, row.figure, row.anchor, ratio, row.target, met]


def plain_table(rows: Sequence[Row]) -> str:
    """The table for a terminal: aligned columns."""
    lines = [list(HEADER), *[cells(r) for r in rows]]
    lines = [[c.replace("**", "") for c in line] for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(rows: Sequence[Row], info: dict[str, str], notes: Sequence[str], argv: str) -> str:
    """The whole report as Markdown: machine, table, notes of each row, legend."""
    out = ["# Benchmark results", ""]
    out += [f"- {key}: {value}" for key, value in info.items()]
    out += [f"- command: `{argv}`", ""]
    out.append("| " + " | ".join(HEADER) + " |")
    out.append("|" + "---|" * len(HEADER))
    for row in rows:
        out.append("| " + " | ".join(c.replace("|", "/") for c in cells(row)) + " |")
    out.append("")
    row_notes = [f"- {r.measure.split(':')[0]}: {r.note}" for r in rows if r.note]
    if row_notes or notes:
        out += ["Notes:", "", *row_notes, *[f"- {n}" for n in notes], ""]
    out += [
        "Ratio: figure / anchor for rates (higher is better); p99 / limit for latencies and",
        "peak / limit for memory (at most 1.00 meets the target). Anchors are the same tools",
        "used bare, measured in the same run, so ratios survive a noisy shared machine.",
        "",
    ]
    return "\n".join(out)

"""`python -m bench`: run every measurement, print the table, write bench/results/latest.md.

    python -m bench                 # everything, full sizes (about 14 minutes on 2 cores)
    python -m bench --quick         # small sizes, to try things out
    python -m bench --only intake   # one measurement (repeatable: --only intake --only notify)
    python -m bench --only intake --profile intake   # and where the intake role's time goes

A full run writes `bench/results/latest.md` (quoted by the README); a quick or
partial run writes `bench/results/partial.tmp` unless `--output` says otherwise.
A measurement that fails is reported as a row saying so, and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from bench.common import Context, Row
from bench.profile import Profiler
from bench.report import machine, markdown, plain_table
from worker.observability.logging import configure_logging

# name -> module with `measure(ctx) -> list[Row]`, in running order. The memory rows
# come last because they report the peaks sampled while intake and end_to_end ran.
MEASUREMENTS = {
    "intake": "bench.intake",
    "end_to_end": "bench.end_to_end",
    "growth": "bench.growth",
    "peer": "bench.peer_row",
    "latency": "bench.latency",
    "notify": "bench.notify",
    "sandbox": "bench.sandbox_row",
    "scaling": "bench.scaling",
    "memory": "bench.memory",
}
RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(MEASUREMENTS),
        help="run only this measurement (may be given more than once)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for trying things")
    parser.add_argument("--output", type=Path, help="where to write the Markdown table")
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="ROLE",
        help="sample this role with py-spy while the rows run (bench/results/profile-ROLE.txt)",
    )
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the logs of every stack (printed path)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    configure_logging("WARNING", "console")  # the roles' own logs go to their files
    chosen = [name for name in MEASUREMENTS if not args.only or name in args.only]
    partial = args.quick or bool(args.only)
    output = args.output or RESULTS / ("partial.tmp" if partial else "latest.md")
    workdir = Path(tempfile.mkdtemp(prefix="refund-bench-"))
    ctx = Context(quick=args.quick, workdir=workdir)
    info = machine()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    rows: list[Row] = []
    started = time.monotonic()
    profiler: AbstractContextManager[Any] = (
        Profiler(args.profile, workdir, RESULTS) if args.profile else nullcontext()
    )
    try:
        with profiler:
            _run(chosen, ctx, rows, started)
    finally:
        if args.keep_workdir:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    info["duration"] = f"{elapsed / 60:.1f} min"
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    print()
    print(plain_table(rows))
    for note in ctx.notes:
        print(f"note: {note}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown(rows, info, ctx.notes, command.strip()), encoding="utf-8")
    print(f"\nwritten to {output} ({elapsed / 60:.1f} min)")
    return 0


def _run(chosen: list[str], ctx: Context, rows: list[Row], started: float) -> None:
    """Run each chosen measurement; one that fails is a row saying so."""
    for name in chosen:
        print(f"[{time.monotonic() - started:6.1f} s] {name} ...", flush=True)
        try:
            module = importlib.import_module(MEASUREMENTS[name])
            rows.extend(module.measure(ctx))
        except Exception as exc:
            traceback.print_exc()
            rows.append(
                Row(
                    measure=f"{name}: failed",
                    figure=f"{type(exc).__name__}: {str(exc)[:120]}",
                    anchor="-",
                    ratio=None,
                    target="-",
                    met=None,
                )
            )


if __name__ == "__main__":
    sys.exit(main())

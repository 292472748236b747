"""`python -m tests.chaos --profile long|short [--scenario NAME ...]`: the fault-injection suite.

Prints one result line per scenario and every violation found, writes the lines
to `tests/chaos/results/latest.txt` (when every scenario ran, unless `--no-write`),
and exits 1 if any scenario broke an invariant. `CHAOS_OUTAGES=scoped` (or
`--outages scoped`) keeps the RabbitMQ and PostgreSQL outages to this run's vhost
and database, for machines shared with other work.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.chaos import infra
from tests.chaos.checks import Result
from tests.chaos.harness import default_outage_mode, keep_failed_from_env, run_scenario
from tests.chaos.scenarios import SCENARIOS
from worker.observability.logging import configure_logging

RESULTS = Path(__file__).with_name("results")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--profile", choices=("short", "long"), default="short")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all"
    )
    parser.add_argument("--outages", choices=infra.OUTAGE_MODES, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    parser.add_argument("--no-write", action="store_true", help="do not write results/latest.txt")
    parser.add_argument(
        "--keep-failed",
        action="store_true",
        help="keep a failed run's database, vhost and sandbox books (default: CHAOS_KEEP_FAILED)",
    )
    args = parser.parse_args(argv)
    configure_logging("WARNING", "console")
    # The harness's own bus clients lose their connections on purpose; pika says so loudly.
    logging.getLogger("pika").setLevel(logging.CRITICAL)

    outages = args.outages or default_outage_mode()
    names = args.scenario or list(SCENARIOS)
    results: list[Result] = []
    started = time.monotonic()
    for name in names:
        workdir = args.workdir / name if args.workdir else None
        result = run_scenario(
            SCENARIOS[name],
            args.profile,
            outage_mode=outages,
            workdir=workdir,
            keep_failed=args.keep_failed or keep_failed_from_env(),
        )
        results.append(result)
        print(result.line(), flush=True)
        for violation in result.violations:
            print(f"  VIOLATION {violation}", flush=True)
    total = time.monotonic() - started
    print(f"total seconds={total:.0f} scenarios={len(results)}", flush=True)

    if not args.no_write and args.scenario is None:
        RESULTS.mkdir(exist_ok=True)
        header = (
            f"# python -m tests.chaos --profile {args.profile} (outages: {outages})"
            f" at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'host'},"
            f" {total:.0f} s in all\n"
        )
        (RESULTS / "latest.txt").write_text(
            header + "".join(r.line() + "\n" for r in results), encoding="utf-8"
        )
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""`refund-worker resolve BATCH_NO --as accepted|not-accepted --operator NAME --reason TEXT`.

The only way a person moves a batch whose outcome the worker cannot prove (rules
in `worker.services.operators`). `not-accepted` queries the gateway itself and
refuses unless the batch's day is over and the answer is `REFUND_NOT_EXIST`;
`--force` overrides that, loudly. Every decision is stored and shown by
`refund-worker status batch BATCH_NO`.
"""

from __future__ import annotations

import argparse

from worker.entrypoints import runtime
from worker.entrypoints.roles._common import boot
from worker.services.operators import ResolveRefused, resolve_batch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch_no", help="the batch to decide about")
    parser.add_argument(
        "--as", dest="decision", required=True, choices=("accepted", "not-accepted")
    )
    parser.add_argument("--operator", required=True, help="who decides (stored)")
    parser.add_argument("--reason", required=True, help="why (stored)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="not-accepted even though the day is not over or the gateway did not say"
        " REFUND_NOT_EXIST (logged at critical level and counted)",
    )


def run(args: argparse.Namespace) -> int:
    boot("resolve")
    rt = runtime.current()
    try:
        result = resolve_batch(
            rt.db,
            rt.query_client,
            args.batch_no,
            decision=args.decision.replace("-", "_"),
            operator=args.operator,
            reason=args.reason,
            force=args.force,
            clock=rt.clock,
        )
    except ResolveRefused as exc:
        print(f"refund-worker resolve: refused: {exc}")
        return 1
    finally:
        rt.close()
    forced = " (forced)" if result.forced else ""
    print(
        f"batch {result.batch_no}: {result.state_before} -> {result.state_after}{forced};"
        f" {result.refunds} refunds moved"
    )
    if result.query is not None:
        print(f"gateway answered: {result.query.answer} {result.query.detail}")
    return 0

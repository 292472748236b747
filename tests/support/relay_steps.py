"""`refund-worker relay`, stopped at one step of its round so that a test can SIGKILL it there.

    python -m tests.support.relay_steps STEP MARKER [relay arguments...]

Runs the relay role as `refund-worker relay` does, with one patch: the first time a
round reaches STEP, the process creates the file MARKER and sleeps, holding its
database transaction and its bus connection open, until the test kills it. The steps
of a round (`worker.services.relay`):

* `taken`: the rows are deleted in the open transaction, nothing is published yet;
* `published`: the batch is written and the broker's first confirm has arrived, but
  the relay has not seen it (the confirm callback has not run);
* `confirmed`: every message is confirmed, the transaction is not committed yet.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.adapters.postgres import ledger
from worker.adapters.rabbitmq import publisher as publisher_module
from worker.entrypoints import cli

STEPS = ("taken", "published", "confirmed")


def _stopper(marker: Path) -> Callable[[], None]:
    def stop() -> None:
        marker.write_text(f"{time.time()}\n")
        while True:  # until SIGKILL
            time.sleep(3600)

    return stop


def install(step: str, stop: Callable[[], None]) -> None:
    """Patch the relay's round so that it calls `stop` the first time it reaches `step`."""
    cls: Any = publisher_module.Publisher
    if step == "taken":
        take = ledger.take_outbox

        def taking(conn: Any, limit: int) -> Any:
            rows = take(conn, limit)
            if rows:
                stop()
            return rows

        ledger.take_outbox = taking
    elif step == "published":
        on_confirm = cls._on_confirm

        def confirming(self: Any, frame: Any) -> None:
            stop()
            on_confirm(self, frame)

        cls._on_confirm = confirming
    elif step == "confirmed":
        publish_batch = cls.publish_batch

        def publishing(self: Any, messages: Any) -> None:
            publish_batch(self, messages)
            stop()

        cls.publish_batch = publishing
    else:
        raise SystemExit(f"unknown step {step!r}: one of {', '.join(STEPS)}")


def main(argv: list[str]) -> int:
    step, marker, *relay_args = argv
    install(step, _stopper(Path(marker)))
    return cli.main(["relay", *relay_args])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The append-only journal that lets the sandbox survive its own restart.

One JSON object per line in `<state dir>/journal.jsonl`, written and flushed
to the operating system before the record is applied and before the client
hears an answer. A process crash therefore loses nothing that was answered;
a machine crash may lose the last lines (no fsync: this is a sandbox).

Replay reads every line in order. A damaged line can only be the last one
(the process died while writing it): it is skipped with a warning and the
file is cut back to the last good line before new records are appended.
A damaged line anywhere else means the file was edited by hand; replay stops
with an error rather than guess. Entries of a journal written before the
partner of each batch was recorded replay as `default_partner`'s.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import structlog

from sandbox.config import DEFAULT_PARTNER
from sandbox.records import Record, record_from_json
from worker.domain.errors import ConfigError

__all__ = ["JOURNAL_NAME", "Journal"]

JOURNAL_NAME = "journal.jsonl"

log = structlog.get_logger(__name__)


class Journal:
    """Append records to, and replay them from, one JSON-lines file."""

    def __init__(self, state_dir: Path, *, default_partner: str = DEFAULT_PARTNER) -> None:
        self.path = state_dir / JOURNAL_NAME
        self._default_partner = default_partner
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None

    def replay(self) -> Iterator[Record]:
        """Yield every record in the file, in order; repairs a torn last line."""
        if not self.path.exists():
            return
        good_end = 0
        with self.path.open("rb") as handle:
            lines = handle.readlines()
        for number, line in enumerate(lines, start=1):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("line is not terminated")
                record = record_from_json(json.loads(line), default_partner=self._default_partner)
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:  # Decimal too
                if number == len(lines):
                    log.warning(
                        "sandbox.journal.torn_tail",
                        path=str(self.path),
                        line=number,
                        error=str(exc),
                    )
                    break
                raise ConfigError(
                    f"journal {self.path} line {number} is damaged ({exc}); "
                    "move the state directory away to start afresh"
                ) from None
            good_end += len(line)
            yield record
        if good_end < self.path.stat().st_size:
            os.truncate(self.path, good_end)

    def append(self, record: Record) -> None:
        """Write one record and flush it to the operating system."""
        text = json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":"))
        line = text.encode("utf-8") + b"\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

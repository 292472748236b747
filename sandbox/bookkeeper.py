"""The sandbox's books and their journal, behind the one lock that serialises every change.

Every change of the books is a record (`sandbox.records`): it is appended to
the journal (`sandbox.journal`) first and applied to the ledger
(`sandbox.ledger`) second, so whatever a client was told is on disk before
the answer leaves, and a restart replays the journal through the same
`Ledger.apply` (done here, when the bookkeeper is built).

A caller that must decide and record in one step (accepting a batch: the
duplicate check, the plan, the append and the apply) holds `lock` and calls
the `_locked` methods; `record` and `refuse` take the lock themselves.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from sandbox.config import DEFAULT_PARTNER
from sandbox.journal import Journal
from sandbox.ledger import Ledger
from sandbox.records import Record, RequestRecord

__all__ = ["Bookkeeper"]

log = structlog.get_logger(__name__)


class Bookkeeper:
    """The ledger, its journal and their lock (see the module docstring)."""

    def __init__(self, state_dir: Path, *, default_partner: str = DEFAULT_PARTNER) -> None:
        """Replay the journal; its entries that name no partner are `default_partner`'s."""
        self.lock = threading.Lock()
        self.ledger = Ledger()
        self.journal = Journal(state_dir, default_partner=default_partner)
        self.replayed = 0
        for record in self.journal.replay():
            self.ledger.apply(record)
            self.replayed += 1

    def record(self, record: Record) -> None:
        with self.lock:
            self.record_locked(record)

    def record_locked(self, record: Record) -> None:
        """Journal `record`, then apply it; the caller holds `lock`."""
        self.journal.append(record)
        self.ledger.apply(record)

    def refuse(self, request: RequestRecord, reason: str) -> None:
        with self.lock:
            self.refuse_locked(request, reason)

    def refuse_locked(self, request: RequestRecord, reason: str) -> None:
        """Record a request answered `F` (or not at all) and log why; the caller holds `lock`."""
        self.record_locked(request)
        log.info(
            "sandbox.batch.refused",
            partner=request.partner,
            batch_no=request.batch_no,
            code=request.code,
            reason=reason,
        )

    def close(self) -> None:
        self.journal.close()

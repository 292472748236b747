"""The histories the operator console shows: a refund, a batch, a trade, each with one
chronological timeline of everything the ledger knows about it.

Notifications are shown by their outcome and a few read fields, never as the stored form
(and never its `sign`); attempts come from the `batch_attempts` journal, which keeps no
request and no signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.adapters.postgres.console_records import (
    BatchHistory,
    BatchItemRow,
    BatchSummary,
    RefundHistory,
    TimelineEntry,
    TradeHistory,
    TradeRefund,
)
from worker.adapters.postgres.pool import Connection
from worker.adapters.postgres.refunds import trade_tallies
from worker.mapi.results import read_result_details

# Longer text is not an id of any kind the ledger stores (refund_id <= 64, event_id <= 128).
MAX_KEY_LENGTH = 128
# Free text from the ledger (errors, reasons, details) is cut to this in a timeline.
_DETAIL_MAX = 300


def usable_key(text: object) -> str | None:
    """`text` trimmed, or None when it cannot be a key the ledger stores (empty, too
    long, or holding a character such as NUL or a line break)."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text or len(text) > MAX_KEY_LENGTH or not text.isprintable():
        return None
    return text


def _cut(text: object) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= _DETAIL_MAX else value[: _DETAIL_MAX - 1] + "…"


def _join(*parts: object) -> str:
    return _cut("; ".join(str(p) for p in parts if p not in (None, "")))


def _dicts(conn: Connection, sql: str, params: Any) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _in_order(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    # Stable: entries at the same moment keep the order they were gathered in.
    return sorted(entries, key=lambda e: e.at)


# --- what is known about batches ------------------------------------------------------


def _batch_events(
    conn: Connection, batch_nos: Sequence[str], *, trade_no: str | None
) -> list[TimelineEntry]:
    """Creation, approval, attempts, notifications, queries, decisions and completion of
    `batch_nos`; with `trade_no` (a refund's timeline), seen from that trade's refund."""
    ids = list(batch_nos)
    out: list[TimelineEntry] = []
    ends: list[TimelineEntry] = []
    for b in _dicts(
        conn,
        "SELECT batch_no, item_count, service, created_at, approved_by, approved_at,"
        " completed_at, state FROM batches WHERE batch_no = ANY(%s) ORDER BY created_at",
        (ids,),
    ):
        no = b["batch_no"]
        if trade_no is None:
            out.append(
                TimelineEntry(
                    b["created_at"],
                    "batch",
                    "batch created",
                    _join(f"{b['item_count']} items", f"service {b['service']}"),
                )
            )
        else:
            out.append(
                TimelineEntry(
                    b["created_at"],
                    "batch",
                    f"joined batch {no}",
                    _join(f"{b['item_count']} items", f"batch now {b['state']}"),
                )
            )
        if b["approved_at"] is not None:
            out.append(
                TimelineEntry(
                    b["approved_at"],
                    "decision",
                    f"batch {no} approved",
                    _join(f"by {b['approved_by']}" if b["approved_by"] else None),
                )
            )
        if b["completed_at"] is not None:
            # Gathered last: a batch completes at the time of what completed it (a
            # notification's receipt), which the timeline shows first.
            ends.append(TimelineEntry(b["completed_at"], "batch", f"batch {no} completed", ""))
    for a in _dicts(
        conn,
        "SELECT batch_no, attempt, started_at, ended_at, outcome, action, code, error"
        " FROM batch_attempts WHERE batch_no = ANY(%s) ORDER BY ended_at, attempt",
        (ids,),
    ):
        title = f"attempt {a['attempt']} of batch {a['batch_no']}: {a['outcome']}"
        if a["outcome"] == "before_journal":
            title = f"attempt {a['attempt']} of batch {a['batch_no']} (last known answer)"
        out.append(
            TimelineEntry(
                a["ended_at"],
                "attempt",
                title,
                _join(
                    f"code {a['code']}" if a["code"] else None,
                    f"worker: {a['action']}" if a["action"] else None,
                    a["error"],
                ),
            )
        )
    for n in _dicts(
        conn,
        "SELECT batch_no, kind, received_at, outcome, detail, form->>'success_num' AS success,"
        " form->>'result_details' AS results FROM notifications WHERE batch_no = ANY(%s)"
        " ORDER BY received_at",
        (ids,),
    ):
        if n["kind"] == "dback":
            if trade_no is not None:  # a refund's or trade's card returns: dback_results
                continue
            title = f"bank-card return notification for batch {n['batch_no']}: {n['outcome']}"
            out.append(TimelineEntry(n["received_at"], "notification", title, _cut(n["detail"])))
            continue
        reading = read_result_details(n["results"])
        ours = [i.code for i in reading.items if trade_no is not None and i.trade_no == trade_no]
        out.append(
            TimelineEntry(
                n["received_at"],
                "notification",
                f"notification for batch {n['batch_no']}: {n['outcome']}",
                _join(
                    n["detail"],
                    f"{len(reading.items)} results, success_num {_cut(n['success'])}",
                    f"{len(reading.unread)} unreadable" if reading.unread else None,
                    f"this trade: {', '.join(ours)}" if ours else None,
                ),
            )
        )
    for q in _dicts(
        conn,
        "SELECT batch_no, asked_at, purpose, trade_no, answer, error_code, detail, items"
        " FROM batch_queries WHERE batch_no = ANY(%s)"
        " AND (%s::text IS NULL OR trade_no IS NULL OR trade_no = %s) ORDER BY asked_at, id",
        (ids, trade_no, trade_no),
    ):
        entries = q["items"] or []
        ours = [str(i.get("code")) for i in entries if trade_no and i.get("trade_no") == trade_no]
        by = f"trade {q['trade_no']}" if q["trade_no"] else f"batch {q['batch_no']}"
        out.append(
            TimelineEntry(
                q["asked_at"],
                "query",
                f"query by {by} ({q['purpose']}): {q['answer']}",
                _join(
                    f"code {q['error_code']}" if q["error_code"] else None,
                    f"{len(entries)} entries",
                    f"this trade: {', '.join(ours)}" if ours else None,
                    q["detail"],
                ),
            )
        )
    for d in _dicts(
        conn,
        "SELECT batch_no, decided_at, decision, operator, reason, forced, query_answer,"
        " refunds FROM operator_decisions WHERE batch_no = ANY(%s) ORDER BY decided_at, id",
        (ids,),
    ):
        out.append(
            TimelineEntry(
                d["decided_at"],
                "decision",
                f"{d['operator']} decided {d['decision']} on batch {d['batch_no']}",
                _join(
                    d["reason"],
                    "forced" if d["forced"] else None,
                    f"query said {d['query_answer']}" if d["query_answer"] else None,
                    f"{d['refunds']} refunds moved",
                ),
            )
        )
    return out + ends


def _audit_events(conn: Connection, targets: Sequence[str]) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            a["at"],
            "audit",
            f"{a['operator']}: {a['action']} on {a['target']} ({a['outcome']})",
            _cut(a["detail"]),
        )
        for a in _dicts(
            conn,
            "SELECT at, operator, action, target, outcome, detail FROM audit_log"
            " WHERE target = ANY(%s) ORDER BY at, id",
            (list(targets),),
        )
    ]


def _card_returns(conn: Connection, column: str, key: str) -> list[TimelineEntry]:
    assert column in ("refund_id", "trade_no")
    return [
        TimelineEntry(
            r["received_at"],
            "bank_card_return",
            f"bank-card return: {r['status']}",
            _join(r["bank_name"], f"card …{r['card_last4']}" if r["card_last4"] else None),
        )
        for r in _dicts(
            conn,
            "SELECT received_at, status, bank_name, card_last4 FROM dback_results"
            f" WHERE {column} = %s ORDER BY received_at",
            (key,),
        )
    ]


def _received(r: dict[str, Any]) -> TimelineEntry:
    return TimelineEntry(
        r["received_at"],
        "received",
        f"refund {r['refund_id']} received",
        _join(
            f"{r['amount']} on trade {r['trade_no']}",
            f"requested at {r['requested_at'].isoformat()}" if r["requested_at"] else None,
        ),
    )


def _completed(r: dict[str, Any]) -> TimelineEntry | None:
    if r["completed_at"] is None:
        return None
    return TimelineEntry(
        r["completed_at"],
        "completed",
        f"refund {r['refund_id']} {r['state']}",
        _join(
            f"code {r['code']}" if r["code"] else None,
            f"from {r['result_source']}" if r["result_source"] else None,
        ),
    )


# --- the three histories ---------------------------------------------------------------

# A refund's row as the console shows it: not its content hash, not its metadata (the
# order system's, passed through untouched).
_REFUND_COLUMNS = (
    "refund_id, partner AS merchant, trade_no, order_id, amount, trade_amount, reason,"
    " state, code, batch_no, batch_attempts, result_source, event_id, requested_at,"
    " received_at, updated_at, completed_at"
)


def refund_history(conn: Connection, refund_id: str) -> RefundHistory | None:
    key = usable_key(refund_id)
    if key is None:
        return None
    found = _dicts(conn, f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE refund_id = %s", (key,))
    if not found:
        return None
    refund = found[0]
    batches = [
        BatchSummary(*row)
        for row in conn.execute(
            "SELECT b.batch_no, b.state, b.attempts, b.last_code, b.operator_flag, b.created_at,"
            " i.reason_sent FROM batch_items i JOIN batches b USING (batch_no)"
            " WHERE i.refund_id = %s ORDER BY b.created_at, b.batch_no",
            (key,),
        ).fetchall()
    ]
    nos = [b.batch_no for b in batches]
    timeline = [_received(refund)]
    timeline += _batch_events(conn, nos, trade_no=refund["trade_no"])
    timeline += _audit_events(conn, [key, *nos])
    timeline += _card_returns(conn, "refund_id", key)
    done = _completed(refund)
    if done is not None:
        timeline.append(done)
    return RefundHistory(refund, batches, _in_order(timeline))


def batch_history(conn: Connection, batch_no: str) -> BatchHistory | None:
    key = usable_key(batch_no)
    if key is None:
        return None
    found = _dicts(conn, "SELECT * FROM batches WHERE batch_no = %s", (key,))
    if not found:
        return None
    items = [
        BatchItemRow(*row)
        for row in conn.execute(
            "SELECT i.refund_id, i.trade_no, r.order_id, i.amount, i.reason_sent, r.state,"
            " r.code FROM batch_items i JOIN refunds r USING (refund_id)"
            " WHERE i.batch_no = %s ORDER BY i.position",
            (key,),
        ).fetchall()
    ]
    timeline = _batch_events(conn, [key], trade_no=None) + _audit_events(conn, [key])
    return BatchHistory(found[0], items, _in_order(timeline))


def trade_history(conn: Connection, trade_no: str) -> TradeHistory | None:
    key = usable_key(trade_no)
    if key is None:
        return None
    rows = _dicts(
        conn,
        f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE trade_no = %s ORDER BY received_at,"
        " refund_id",
        (key,),
    )
    elsewhere = _dicts(
        conn,
        "SELECT batch_no, amount, code, seen_at FROM trade_gateway_refunds WHERE trade_no = %s"
        " ORDER BY seen_at, batch_no",
        (key,),
    )
    if not rows and not elsewhere:
        return None
    tally = trade_tallies(conn, [key])[key]
    timeline: list[TimelineEntry] = []
    for r in rows:
        timeline.append(_received(r))
        done = _completed(r)
        if done is not None:
            timeline.append(done)
    nos = sorted(
        {
            str(n)
            for (n,) in conn.execute(
                "SELECT DISTINCT batch_no FROM batch_items WHERE trade_no = %s", (key,)
            ).fetchall()
        }
    )
    timeline += _batch_events(conn, nos, trade_no=key)
    timeline += [
        TimelineEntry(
            g["seen_at"],
            "elsewhere",
            f"refund under batch {g['batch_no']} made elsewhere",
            _join(f"{g['amount']}", f"code {g['code']}"),
        )
        for g in elsewhere
    ]
    timeline += _card_returns(conn, "trade_no", key)
    refunds = [
        TradeRefund(
            r["refund_id"],
            r["merchant"],
            r["amount"],
            r["state"],
            r["code"],
            r["batch_no"],
            r["received_at"],
            r["completed_at"],
        )
        for r in rows
    ]
    return TradeHistory(key, refunds, tally.count, tally.total, _in_order(timeline))

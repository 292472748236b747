"""The peer's batcher: every 0.5 s, cut every pending refund into batches and send each.

Run with `python -m bench.peer.batcher`; it stops on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import requests

from worker.mapi.dates import make_batch_no
from worker.mapi.detail import RefundItem
from worker.mapi.forms import encode_form
from worker.mapi.request import Merchant, build_refund_request, gateway_url_with_charset
from worker.mapi.responses import parse_sync_response

TICK = 0.5
MAX_ITEMS = 1000

# One refund per trade per batch (the gateway's rule), oldest first.
_CUT = """
WITH pick AS (
    SELECT DISTINCT ON (trade_no) refund_id FROM peer_refunds
    WHERE state = 'pending' ORDER BY trade_no, received_at
    LIMIT %s
)
UPDATE peer_refunds AS r SET state = 'batched', batch_no = %s
FROM pick WHERE r.refund_id = pick.refund_id
RETURNING r.trade_no, r.amount, r.reason
"""


def cut_and_send(
    conn: psycopg.Connection[Any], client: requests.Session, merchant: Merchant
) -> int:
    """Cut one batch and send it; returns its size (0: nothing pending)."""
    now = datetime.now(UTC)
    with conn.transaction():
        serial = conn.execute("SELECT nextval('peer_batch_serial')").fetchone()
        batch_no = make_batch_no(now, f"9{serial[0] if serial else 0:08d}")
        rows = conn.execute(_CUT, (MAX_ITEMS, batch_no)).fetchall()
        if not rows:
            return 0
        conn.execute(
            "INSERT INTO peer_batches (batch_no, state, items) VALUES (%s, 'cut', %s)",
            (batch_no, len(rows)),
        )
    items = [RefundItem(str(t), Decimal(a), str(r or "refund")) for t, a, r in rows]
    params = build_refund_request(merchant, batch_no=batch_no, items=items, now=now)
    answer = client.post(
        gateway_url_with_charset(os.environ["ALIPAY_GATEWAY_URL"], merchant.charset),
        data=encode_form(params, merchant.charset),
        timeout=30,
        headers={"Content-Type": f"application/x-www-form-urlencoded; charset={merchant.charset}"},
    )
    state = "accepted" if parse_sync_response(answer.content).accepted else "refused"
    with conn.transaction():
        conn.execute("UPDATE peer_batches SET state = %s WHERE batch_no = %s", (state, batch_no))
    return len(rows)


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    merchant = Merchant(
        partner=os.environ["ALIPAY_PARTNER"],
        md5_key=os.environ["ALIPAY_MD5_KEY"],
        notify_url=os.environ["PEER_NOTIFY_URL"],
    )
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn, requests.Session() as client:
        while not stop.wait(TICK):
            while cut_and_send(conn, client, merchant):
                pass


if __name__ == "__main__":
    main()

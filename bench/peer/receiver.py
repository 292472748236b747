"""The peer's notification receiver: `gunicorn bench.peer.receiver:app`.

Per notification: the signature, `notify_verify` at the gateway; then per refund one
transaction and one `refund.completed` published with a synchronous publisher confirm.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg
import requests

from worker.mapi.forms import decode_form
from worker.mapi.notify import parse_notify
from worker.mapi.request import notify_verify_params
from worker.mapi.responses import parse_notify_verify
from worker.mapi.signing import verify

_state: dict[str, Any] = {}


def _resources() -> dict[str, Any]:
    if not _state:
        _state["db"] = psycopg.connect(os.environ["DATABASE_URL"])
        connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
        channel = connection.channel()
        channel.confirm_delivery()
        _state["amqp"], _state["channel"] = connection, channel
        _state["http"] = requests.Session()
    return _state


def _complete(res: dict[str, Any], batch_no: str, trade_no: str, code: str, ok: bool) -> None:
    db = res["db"]
    with db.transaction():
        row = db.execute(
            "UPDATE peer_refunds SET state = %s, code = %s, completed_at = clock_timestamp()"
            " WHERE batch_no = %s AND trade_no = %s AND state = 'batched'"
            " RETURNING refund_id, amount, order_id",
            ("succeeded" if ok else "failed", code, batch_no, trade_no),
        ).fetchone()
    if row is None:
        return  # a repeated notification: this refund was completed already
    body = {
        "event_id": str(uuid.uuid4()),
        "refund_id": row[0],
        "trade_no": trade_no,
        "amount": f"{row[1]:.2f}",
        "order_id": row[2],
        "status": "succeeded" if ok else "failed",
        "code": code,
        "batch_no": batch_no,
        "completed_at": datetime.now(UTC).isoformat(),
    }
    res["channel"].basic_publish(
        os.environ["REFUND_EXCHANGE"],
        "refund.completed",
        json.dumps(body).encode(),
        pika.BasicProperties(delivery_mode=2, content_type="application/json"),
    )


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    res = _resources()
    size = int(environ.get("CONTENT_LENGTH") or 0)
    form = decode_form(environ["wsgi.input"].read(size), "utf-8")
    if not verify(form, charset="utf-8", md5_key=os.environ["ALIPAY_MD5_KEY"]):
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"fail"]
    params = notify_verify_params(os.environ["ALIPAY_PARTNER"], form["notify_id"])
    answer = res["http"].get(os.environ["ALIPAY_GATEWAY_URL"], params=params, timeout=30)
    if parse_notify_verify(answer.content) != "true":
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"fail"]
    notice = parse_notify(form)
    for item in notice.items:
        _complete(res, notice.batch_no, item.trade_no, item.code, item.succeeded)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"success"]

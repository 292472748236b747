"""Why `worker.mapi.forms` keeps its hand-written form codec: against urllib, per call.

A 1000-item notification body is decoded and a 1000-item refund request encoded, with the
project's codec and with the straightforward version (urllib's unquote / quote_plus per key
and value, as first written). Both must give the same result; the ratio is what the hand-
written path saves on every notification the receiver verifies and every batch submitted.

    .venv/bin/python bench/micro_forms.py
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus, unquote_to_bytes

from worker.mapi import decode_form, encode_form


def reference_decode(body: bytes, codec: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for segment in body.split(b"&"):
        if segment:
            key, _, value = segment.partition(b"=")
            result[unquote_to_bytes(key.replace(b"+", b" ")).decode(codec)] = unquote_to_bytes(
                value.replace(b"+", b" ")
            ).decode(codec)
    return result


def reference_encode(params: Mapping[str, str], codec: str) -> bytes:
    return "&".join(
        f"{quote_plus(k, safe='', encoding=codec)}={quote_plus(v, safe='', encoding=codec)}"
        for k, v in params.items()
    ).encode("ascii")


def best_of(call: Callable[[], Any], repeat: int = 5, number: int = 200) -> float:
    """Best seconds per call over `repeat` runs of `number` calls."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def main() -> None:
    items = "#".join(f"2024050121001004270{n:09d}^5.00^SUCCESS" for n in range(1000))
    form = {
        "notify_time": "2024-05-01 12:00:00",
        "notify_type": "batch_refund_notify",
        "notify_id": "70fec0c2730b27528665af4517c27b95",
        "sign_type": "MD5",
        "sign": "0" * 32,
        "batch_no": "20240501001",
        "success_num": "1000",
        "result_details": items,
    }
    request = dict(
        form, detail_data="#".join(f"20240501210010{n:09d}^5.00^协商退款" for n in range(1000))
    )
    for charset in ("utf-8", "gbk"):
        body = encode_form(form, charset)
        assert decode_form(body, charset) == reference_decode(body, charset) == form
        assert encode_form(request, charset) == reference_encode(request, charset)
        _row(charset, "decode a 1000-item notification", decode_form, reference_decode, body)
        _row(charset, "encode a 1000-item request", encode_form, reference_encode, request)


def _row(
    charset: str, name: str, fast: Callable[..., Any], plain: Callable[..., Any], arg: Any
) -> None:
    ours = best_of(lambda: fast(arg, charset))
    theirs = best_of(lambda: plain(arg, charset))
    print(
        f"{charset:6} {name:34} project {ours * 1e6:8.1f} us"
        f"   urllib {theirs * 1e6:8.1f} us   ratio {theirs / ours:4.1f}x"
    )


if __name__ == "__main__":
    main()

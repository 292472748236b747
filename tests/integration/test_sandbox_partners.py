"""One sandbox serving several partners over HTTP, each with its own keys and its own books.

The module's sandbox serves four partners from a partners file: A (MD5 key
from a file, the default partner), B (RSA only), C (MD5 key inline) and D
(RSA only, another key pair). No single-partner option is given, so the MD5
key `run_sandbox` puts in the environment serves nobody.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.sandbox import (
    NotifyReceiver,
    ReceivedNotify,
    RunningSandbox,
    merchant_rsa_keys,
    partners_toml,
    query,
    query_answer,
    query_items,
    query_params,
    refund_params,
    run_sandbox,
    submit,
    trade_no,
)
from worker.mapi import RefundItem, SyncStatus, parse_notify, parse_sync_response, verify

pytestmark = pytest.mark.integration

A, B, C, D = (f"20880000000001{i:02d}" for i in (1, 2, 3, 4))
UNKNOWN = "2088999999999999"
KEY_A = "md5-key-of-partner-a-0123456789ab"
KEY_C = "md5-key-of-partner-c-0123456789ab"


@functools.lru_cache(maxsize=1)
def other_rsa_keys() -> tuple[bytes, bytes]:
    """D's key pair (B has `merchant_rsa_keys`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def write_partners(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "a.key").write_text(KEY_A + "\n")
    (directory / "b_pub.pem").write_bytes(merchant_rsa_keys()[1])
    (directory / "d_pub.pem").write_bytes(other_rsa_keys()[1])
    entries = [
        {"partner": A, "md5_key_file": str(directory / "a.key")},
        {"partner": B, "merchant_public_key_file": str(directory / "b_pub.pem")},
        {"partner": C, "md5_key": KEY_C},
        {"partner": D, "merchant_public_key_file": "d_pub.pem"},  # relative to the file
    ]
    path = directory / "partners.toml"
    path.write_text(partners_toml(entries))
    return path


def serve(tmp: Path, **kwargs: Any) -> Any:
    args = ["--partners-file", str(write_partners(tmp / "partners"))]
    return run_sandbox(rsa_merchant=False, extra_args=args, **kwargs)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with serve(tmp_path_factory.mktemp("partners"), time_factor=0.0001) as running:
        yield running


def signed(partner: str, **kwargs: Any) -> dict[str, str]:
    """A refund request of `partner`, signed with its own key."""
    if partner in (A, C):
        return refund_params(partner=partner, md5_key=KEY_A if partner == A else KEY_C, **kwargs)
    private = merchant_rsa_keys()[0] if partner == B else other_rsa_keys()[0]
    return refund_params(partner=partner, sign_type="RSA", private_key=private, **kwargs)


def signed_query(partner: str, **kwargs: Any) -> dict[str, str]:
    if partner in (A, C):
        return query_params(partner=partner, md5_key=KEY_A if partner == A else KEY_C, **kwargs)
    private = merchant_rsa_keys()[0] if partner == B else other_rsa_keys()[0]
    return query_params(partner=partner, sign_type="RSA", private_key=private, **kwargs)


def outcome(response: requests.Response) -> tuple[SyncStatus, str | None]:
    assert response.status_code == 200, response.text
    parsed = parse_sync_response(response.content)
    return parsed.status, parsed.error


ACCEPTED = (SyncStatus.ACCEPTED, None)


def notify_verify(sb: RunningSandbox, partner: str, notify_id: str) -> str:
    params = {"service": "notify_verify", "partner": partner, "notify_id": notify_id}
    return requests.get(sb.gateway_url, params=params, timeout=5).text


def forms_of(rx: NotifyReceiver, batch_no: str) -> list[dict[str, str]]:
    return [r.form for r in rx.snapshot() if r.form and r.form.get("batch_no") == batch_no]


def wait_forms(rx: NotifyReceiver, batch_no: str) -> list[dict[str, str]]:
    for _ in range(1500):
        found = forms_of(rx, batch_no)
        if found:
            return found
        threading.Event().wait(0.01)
    raise AssertionError(f"no notification for {batch_no}")


# -- what the sandbox says about itself -----------------------------------------------------


def test_info_lists_every_partner_and_its_sign_types_but_no_key(sandbox: RunningSandbox) -> None:
    info = sandbox.client.info()
    assert info["partners"] == [
        {"partner": A, "sign_types": ["MD5"]},
        {"partner": B, "sign_types": ["RSA"]},
        {"partner": C, "sign_types": ["MD5"]},
        {"partner": D, "sign_types": ["RSA"]},
    ]
    # The top level still describes one partner: the first.
    assert (info["partner"], info["md5"], info["rsa"]) == (A, True, False)
    assert sandbox.client.partners() == [A, B, C, D]
    shown = json.dumps(info) + sandbox.log_text()
    assert KEY_A not in shown and KEY_C not in shown


# -- each partner's own keys ----------------------------------------------------------------


@pytest.mark.parametrize("partner", [A, B, C, D])
def test_each_partners_signed_batch_is_accepted(sandbox: RunningSandbox, partner: str) -> None:
    params = signed(partner)
    assert outcome(submit(sandbox, params)) == ACCEPTED
    (batch,) = sandbox.client.ledger(batch_no=params["batch_no"], partner=partner)["batches"]
    assert (batch["partner"], batch["sign_type"]) == (partner, params["sign_type"])


@pytest.mark.parametrize(
    ("partner", "signer"),
    [
        (B, "md5 A"),  # B has no MD5 key
        (A, "rsa B"),  # A has no RSA key
        (C, "md5 A"),  # C's MD5 key is not A's
        (D, "rsa B"),  # D's public key is not B's
        (A, "md5 C"),
    ],
)
def test_a_request_signed_with_another_partners_key_is_refused(
    sandbox: RunningSandbox, partner: str, signer: str
) -> None:
    kind, owner = signer.split()
    if kind == "md5":
        params = refund_params(partner=partner, md5_key=KEY_A if owner == "A" else KEY_C)
    else:
        params = refund_params(partner=partner, sign_type="RSA", private_key=merchant_rsa_keys()[0])
    assert outcome(submit(sandbox, params)) == (SyncStatus.REFUSED, "ILLEGAL_SIGN")
    (refused,) = sandbox.client.ledger(batch_no=params["batch_no"])["refused"]
    assert (refused["partner"], refused["code"]) == (partner, "ILLEGAL_SIGN")


def test_a_partner_the_sandbox_does_not_serve_is_refused(sandbox: RunningSandbox) -> None:
    # Signed with a served partner's key: still not a partner of this gateway.
    params = refund_params(partner=UNKNOWN, md5_key=KEY_A)
    assert outcome(submit(sandbox, params)) == (SyncStatus.REFUSED, "ILLEGAL_PARTNER")
    answer = query_answer(
        query(sandbox, query_params(partner=UNKNOWN, md5_key=KEY_A, batch_no="x"))
    )
    assert answer == {"is_success": "F", "error_code": "ILLEGAL_PARTNER"}


# -- the books are per partner ----------------------------------------------------------------


def test_the_same_batch_no_from_two_partners_is_two_batches(sandbox: RunningSandbox) -> None:
    now = datetime.now(UTC)
    shared = trade_no()
    items_a = [RefundItem(shared, Decimal("1.00"), "a")]
    items_b = [RefundItem(shared, Decimal("2.00"), "b")]
    by_a = signed(A, now=now, serial="sharedno1", items=items_a)
    by_b = signed(B, now=now, serial="sharedno1", items=items_b)
    assert by_a["batch_no"] == by_b["batch_no"]
    assert outcome(submit(sandbox, by_a)) == ACCEPTED
    assert outcome(submit(sandbox, by_b)) == ACCEPTED
    # A repeat from the same partner is a duplicate, whatever the other one did.
    again_a = signed(A, now=now, serial="sharedno1")
    again_b = signed(B, now=now, serial="sharedno1")
    assert outcome(submit(sandbox, again_a)) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")
    assert outcome(submit(sandbox, again_b)) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")
    ledger = sandbox.client.ledger(batch_no=by_a["batch_no"])
    assert sorted(b["partner"] for b in ledger["batches"]) == [A, B]
    assert sorted(r["partner"] for r in ledger["refused"]) == [A, B]
    # The trade's tallies are the trade's: both refunds count.
    trade = sandbox.client.ledger(trade_no=shared)["trades"][shared]
    assert (trade["refund_count"], trade["refunded"]) == (2, "3.00")
    assert sandbox.client.summary()["double_executed"] == []


# -- notifications ------------------------------------------------------------------------------


def test_notifications_go_to_each_partners_url_signed_for_that_partner(
    sandbox: RunningSandbox,
) -> None:
    now = datetime.now(UTC)
    with NotifyReceiver() as rx_a, NotifyReceiver() as rx_b, NotifyReceiver() as rx_c:
        by_a = signed(A, now=now, serial="notified1", notify_url=rx_a.url)
        by_b = signed(B, now=now, serial="notified1", notify_url=rx_b.url)
        by_c = signed(C, now=now, serial="notified1", notify_url=rx_c.url)
        for params in (by_a, by_b, by_c):
            assert outcome(submit(sandbox, params)) == ACCEPTED
        sandbox.client.wait_idle(15)
        (form_a,), (form_b,), (form_c,) = (rx.snapshot() for rx in (rx_a, rx_b, rx_c))
    assert [f.form and f.form["batch_no"] for f in (form_a, form_b, form_c)] == [
        by_a["batch_no"]
    ] * 3
    a, b, c = (f.form or {} for f in (form_a, form_b, form_c))
    assert a["sign_type"] == "MD5" and verify(a, charset="utf-8", md5_key=KEY_A)
    assert not verify(a, charset="utf-8", md5_key=KEY_C)
    assert c["sign_type"] == "MD5" and verify(c, charset="utf-8", md5_key=KEY_C)
    assert not verify(c, charset="utf-8", md5_key=KEY_A)
    assert b["sign_type"] == "RSA"
    assert verify(b, charset="utf-8", public_key_pem=sandbox.alipay_public_key)
    items = {p["partner"]: parse_notify(f).items[0].trade_no for p, f in ((by_a, a), (by_b, b))}
    assert items[A] == by_a["detail_data"].split("^")[0]
    assert items[B] == by_b["detail_data"].split("^")[0]
    notes = sandbox.client.ledger(batch_no=by_a["batch_no"])["notifications"].values()
    assert sorted((n["partner"], n["url"]) for n in notes) == sorted(
        [(A, rx_a.url), (B, rx_b.url), (C, rx_c.url)]
    )


def test_notify_verify_for_another_partner_is_invalid(sandbox: RunningSandbox) -> None:
    answers: dict[str, str] = {}

    def verify_then_ack(received: ReceivedNotify, _index: int) -> bytes:
        notify_id = (received.form or {}).get("notify_id", "")
        for partner in (B, A, UNKNOWN):  # the wrong partner first: it must not spoil the id
            answers[partner] = notify_verify(sandbox, partner, notify_id)
        return b"success"

    with NotifyReceiver(answer=verify_then_ack) as rx:
        params = signed(A, notify_url=rx.url)
        assert outcome(submit(sandbox, params)) == ACCEPTED
        (form,) = wait_forms(rx, params["batch_no"])
        sandbox.client.wait_idle(10)
    assert answers == {B: "invalid", A: "true", UNKNOWN: "invalid"}
    assert notify_verify(sandbox, A, form["notify_id"]) == "false"  # acknowledged
    assert notify_verify(sandbox, C, form["notify_id"]) == "invalid"
    assert notify_verify(sandbox, C, "86742cf72c3edb4f2818e67799d873cmva") == "false"


# -- the refund query ---------------------------------------------------------------------------


def test_the_query_answers_from_the_asking_partners_books_only(sandbox: RunningSandbox) -> None:
    now = datetime.now(UTC)
    shared = trade_no()
    only_b = trade_no()
    by_a = signed(A, now=now, serial="queried01", items=[RefundItem(shared, Decimal("1.00"), "")])
    rows_b = [RefundItem(shared, Decimal("2.00"), ""), RefundItem(only_b, Decimal("3.00"), "")]
    by_b = signed(B, now=now, serial="queried01", items=rows_b)
    for params in (by_a, by_b):
        assert outcome(submit(sandbox, params)) == ACCEPTED
    batch_no = by_a["batch_no"]

    def items(partner: str, **kwargs: str) -> list[tuple[str, str, str, str]] | str:
        answer = query_answer(query(sandbox, signed_query(partner, **kwargs)))
        if answer["is_success"] != "T":
            return answer["error_code"]
        return query_items(answer)

    assert items(A, batch_no=batch_no) == [(batch_no, shared, "1.00", "SUCCESS")]
    assert items(B, batch_no=batch_no) == [
        (batch_no, shared, "2.00", "SUCCESS"),
        (batch_no, only_b, "3.00", "SUCCESS"),
    ]
    assert items(A, trade_no=shared) == [(batch_no, shared, "1.00", "SUCCESS")]
    assert items(A, trade_no=only_b) == "REFUND_NOT_EXIST"
    assert items(C, batch_no=batch_no) == "REFUND_NOT_EXIST"
    # External refunds are one partner's too.
    external = sandbox.client.add_external_refunds(only_b, 1, "1.00", partner=D)
    (ext_no,) = external["batch_nos"]
    assert external["partner"] == D
    assert items(D, trade_no=only_b) == [(ext_no, only_b, "1.00", "SUCCESS")]
    assert items(B, batch_no=ext_no) == "REFUND_NOT_EXIST"
    assert [entry[0] for entry in items(B, trade_no=only_b)] == [batch_no]


# -- across a restart ------------------------------------------------------------------------------


def test_the_journal_keeps_each_batchs_partner_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    now = datetime.now(UTC)
    by_a = signed(A, now=now, serial="restart01")
    by_b = signed(B, now=now, serial="restart01")
    with serve(tmp_path, state_dir=state) as first:
        for params in (by_a, by_b):
            assert outcome(submit(first, params)) == ACCEPTED
    lines = [json.loads(line) for line in (state / "journal.jsonl").read_text().splitlines()]
    assert sorted(x["partner"] for x in lines if x["type"] == "batch") == [A, B]
    with serve(tmp_path, state_dir=state) as second:
        for params in (by_a, by_b):
            again = signed(params["partner"], now=now, serial="restart01")
            assert outcome(submit(second, again)) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")
        assert outcome(submit(second, signed(C, now=now, serial="restart01"))) == ACCEPTED

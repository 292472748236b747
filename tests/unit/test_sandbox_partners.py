"""Several partners in one sandbox: the partners file, the CLI, the per-partner checks and books."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox import cli
from sandbox.bookkeeper import Bookkeeper
from sandbox.clock import SandboxClock
from sandbox.config import PartnerConfig, SandboxConfig
from sandbox.faults import FaultBook
from sandbox.keys import ensure_alipay_keys
from sandbox.ledger import Ledger
from sandbox.outbox import Outbox
from sandbox.partners import load_partners_file
from sandbox.query import RefundQuery
from sandbox.records import BatchRecord, RequestRecord, record_from_json
from sandbox.reports import ledger_view
from sandbox.validation import GatewayContext, RefundRequest, Refusal, check_gateway_request
from tests.support.sandbox import merchant_rsa_keys, partners_toml, query_params, refund_params
from worker.domain.errors import ConfigError
from worker.mapi import beijing_date, decode_form, encode_form, verify

A, B, C = "2088000000000001", "2088000000000002", "2088000000000003"
KEY_A = "key-of-partner-a-0123456789abcdef"
KEY_C = "key-of-partner-c-0123456789abcdef"
PRIVATE, PUBLIC = merchant_rsa_keys()
NOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded; charset=utf-8"
AT = "2026-11-22T01:00:00+00:00"
T1 = "2016112221001004270000000001"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="refund-worker sandbox")
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALIPAY_PARTNER", "ALIPAY_MD5_KEY", "ALIPAY_MD5_KEY_FILE", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A directory holding `a.key` (A's MD5 key) and `b_pub.pem` (B's public key)."""
    (tmp_path / "a.key").write_text(KEY_A + "\n")
    (tmp_path / "b_pub.pem").write_bytes(PUBLIC)
    return tmp_path


def write(directory: Path, text: str) -> Path:
    path = directory / "partners.toml"
    path.write_text(text)
    return path


TWO = [
    {"partner": A, "md5_key_file": "a.key"},
    {"partner": B, "merchant_public_key_file": "b_pub.pem"},
]


# -- the partners file and the command line ---------------------------------------------


def test_the_partners_file_gives_each_partner_its_keys(files: Path) -> None:
    entries = [*TWO, {"partner": C, "md5_key": KEY_C, "merchant_public_key_file": "b_pub.pem"}]
    a, b, c = load_partners_file(write(files, partners_toml(entries)))
    assert (a.partner, a.md5_key, a.merchant_public_key) == (A, KEY_A, None)
    assert (b.partner, b.md5_key, b.merchant_public_key) == (B, None, PUBLIC)
    assert (c.md5_key, c.sign_types) == (KEY_C, ("MD5", "RSA"))
    assert (a.sign_types, b.sign_types) == (("MD5",), ("RSA",))
    assert KEY_A not in repr(a) and KEY_C not in repr(c)


def test_with_only_the_file_the_environment_adds_no_partner(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIPAY_PARTNER", C)
    monkeypatch.setenv("ALIPAY_MD5_KEY", KEY_C)
    path = write(files, partners_toml(TWO))
    config = cli.build_config(parse(["--partners-file", str(path)]))
    assert config.partner_ids == (A, B)
    assert (config.partner, config.md5_key, config.merchant_public_key) == (A, KEY_A, None)
    assert KEY_A not in repr(config)


def test_the_single_partner_options_add_one_more_served_first(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(files, partners_toml(TWO))
    argv = ["--partners-file", str(path), "--partner", C, "--md5-key", KEY_C]
    config = cli.build_config(parse(argv))
    assert config.partner_ids == (C, A, B)
    assert config.partner_config(C) == config.partners[0]
    assert (config.partner, config.md5_key) == (C, KEY_C)
    with pytest.raises(ConfigError, match="no merchant key"):
        cli.build_config(parse(["--partners-file", str(path), "--partner", C]))
    # Built exactly as without the file: here the MD5 key comes from the environment.
    monkeypatch.setenv("ALIPAY_MD5_KEY", KEY_C)
    config = cli.build_config(parse(["--partners-file", str(path), "--partner", C]))
    assert (config.partner, config.md5_key) == (C, KEY_C)
    partner_a = config.partner_config(A)
    assert partner_a is not None and partner_a.md5_key == KEY_A
    assert config.partner_config("2088999999999999") is None


def test_without_the_file_the_single_partner_options_work_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALIPAY_PARTNER", C)
    config = cli.build_config(parse(["--md5-key", KEY_C]))
    assert config.partner_ids == (C,)
    assert (config.partner, config.md5_key) == (C, KEY_C)


def test_a_partner_may_name_its_seller_login_and_its_payment_password(files: Path) -> None:
    entries = [
        {"partner": A, "md5_key": KEY_A, "seller_email": "shop-a@example.test"},
        {"partner": B, "md5_key": KEY_C, "payment_password": "b-pay-654321"},
    ]
    path = write(files, partners_toml(entries))
    config = cli.build_config(parse(["--partners-file", str(path), "--payment-password", "all-1"]))
    first, second = config.partners
    assert (first.seller_login, first.payment_password) == ("shop-a@example.test", None)
    assert (second.seller_login, second.payment_password) == (
        f"seller-{B}@sandbox.test",
        "b-pay-654321",
    )
    assert config.payment_password == "all-1"
    assert "b-pay-654321" not in repr(config) and "all-1" not in repr(config)


def test_the_payment_password_option_defaults_and_is_checked(files: Path) -> None:
    path = write(files, partners_toml(TWO))
    assert cli.build_config(parse(["--partners-file", str(path)])).payment_password == (
        "sandbox-pay-123456"
    )
    with pytest.raises(ConfigError) as refused:
        cli.build_config(parse(["--partners-file", str(path), "--payment-password", "x\ny"]))
    assert str(refused.value).startswith("--payment-password must be") and "x\ny" not in str(
        refused.value
    )


def test_help_documents_the_partners_file() -> None:
    parser = argparse.ArgumentParser(prog="refund-worker sandbox")
    cli.add_arguments(parser)
    text = parser.format_help()
    assert "--partners-file" in text and "served first" in text
    assert "--payment-password" in text and "sandbox-pay-123456" in text
    assert "/cashier/confirm" in " ".join(text.split())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            partners_toml([{"partner": A, "md5_key": KEY_A}, {"partner": A, "md5_key": KEY_C}]),
            f"partner {A}: partner: given more than once",
        ),
        (
            partners_toml([{"partner": A, "md5_key": KEY_A, "md5": "x"}]),
            f"partner {A}: md5: unknown field",
        ),
        (partners_toml([{"partner": A}]), f"partner {A}: md5_key_file: no key"),
        (partners_toml([{"md5_key": KEY_A}]), "entry 1: partner: missing"),
        (
            partners_toml([{"partner": A, "md5_key": KEY_A}, {"partner": "1234", "md5_key": "k"}]),
            "entry 2: partner: must be 2088 followed by 12 digits",
        ),
        (
            partners_toml([{"partner": B, "md5_key_file": "missing.key"}]),
            f"partner {B}: md5_key_file: cannot read",
        ),
        (
            partners_toml([{"partner": B, "merchant_public_key_file": "a.key"}]),
            f"partner {B}: merchant_public_key_file: not an RSA public key",
        ),
        (
            partners_toml([{"partner": A, "md5_key": KEY_A, "md5_key_file": "a.key"}]),
            f"partner {A}: md5_key: set only one",
        ),
        (
            partners_toml([{"partner": A, "md5_key": KEY_A + " space"}]),
            f"partner {A}: md5_key: must be printable ASCII",
        ),
        (f'[[partners]]\npartner = "{A}"\nmd5_key = 5\n', f"partner {A}: md5_key: must be"),
        ("[[partners]]\npartner = \n", "not valid TOML"),
        (
            f'[[partners]]\nmd5_key = "{KEY_A}\x01"\n',
            "not valid TOML (Illegal character (at line 2",
        ),
        (
            partners_toml([{"partner": A, "md5_key": KEY_A, "seller_email": "a b@c.test"}]),
            f"partner {A}: seller_email: must be 1-100 printable ASCII",
        ),
        (
            partners_toml([{"partner": A, "md5_key": KEY_A, "payment_password": "pay\tword-42"}]),
            f"partner {A}: payment_password: must be 1-128 printable characters (value not shown)",
        ),
        ("[other]\n", "unknown top-level key 'other'"),
        ("", "no [[partners]] entry"),
    ],
)
def test_a_bad_partners_file_is_one_clear_line(files: Path, text: str, expected: str) -> None:
    path = write(files, text)
    with pytest.raises(ConfigError) as refused:
        cli.build_config(parse(["--partners-file", str(path)]))
    message = str(refused.value)
    assert expected in message
    assert message.startswith(f"--partners-file {path}: ")
    assert "\n" not in message
    assert KEY_A not in message and KEY_C not in message


def test_an_unreadable_partners_file_and_a_clash_with_the_single_partner(files: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        cli.build_config(parse(["--partners-file", str(files / "none.toml")]))
    path = write(files, partners_toml(TWO))
    with pytest.raises(ConfigError, match=f"--partner {A}: partner: also in --partners-file"):
        cli.build_config(parse(["--partners-file", str(path), "--partner", A, "--md5-key", "k"]))


def test_run_exits_78_with_one_line_and_no_key_on_a_bad_partners_file(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(files, partners_toml([{"partner": A, "md5_key": KEY_A, "sign": "MD5"}]))
    assert cli.run(parse(["--partners-file", str(path), "--log-format", "json"])) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"partner {A}: sign: unknown field" in err
    assert KEY_A not in err


def test_the_config_refuses_a_partner_twice_or_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"partner {A}: given more than once"):
        SandboxConfig("127.0.0.1", 1, tmp_path, partners=(PartnerConfig(A, "k"),) * 2)
    with pytest.raises(ConfigError, match=f"partner {B}: no merchant key"):
        SandboxConfig("127.0.0.1", 1, tmp_path, partners=(PartnerConfig(A, "k"), PartnerConfig(B)))


# -- the checks use the partner of the request -----------------------------------------


CTX = GatewayContext(
    {A: PartnerConfig(A, md5_key=KEY_A), B: PartnerConfig(B, merchant_public_key=PUBLIC)},
    beijing_date(NOW),
)


def check(p: dict[str, str]) -> object:
    return check_gateway_request(b"_input_charset=utf-8", encode_form(p, "utf-8"), FORM, CTX)


def test_each_partner_is_checked_with_its_own_keys() -> None:
    by_a = check(refund_params(partner=A, md5_key=KEY_A, now=NOW))
    assert isinstance(by_a, RefundRequest) and by_a.partner == A
    by_b = check(refund_params(partner=B, sign_type="RSA", private_key=PRIVATE, now=NOW))
    assert isinstance(by_b, RefundRequest) and by_b.partner == B
    asked = check(query_params(partner=B, sign_type="RSA", private_key=PRIVATE, batch_no="x"))
    assert isinstance(asked, RefundQuery) and asked.partner == B


@pytest.mark.parametrize(
    ("p", "code"),
    [
        # B has no MD5 key: A's key does not sign for B.
        (refund_params(partner=B, md5_key=KEY_A, now=NOW), "ILLEGAL_SIGN"),
        # A has no RSA key: B's private key does not sign for A.
        (refund_params(partner=A, sign_type="RSA", private_key=PRIVATE, now=NOW), "ILLEGAL_SIGN"),
        # Not a partner of this sandbox, even signed with a served partner's key.
        (refund_params(partner=C, md5_key=KEY_A, now=NOW), "ILLEGAL_PARTNER"),
    ],
)
def test_another_partners_key_or_an_unknown_partner_is_refused(
    p: dict[str, str], code: str
) -> None:
    verdict = check(p)
    assert isinstance(verdict, Refusal) and verdict.code == code
    assert verdict.partner == (None if code == "ILLEGAL_PARTNER" else p["partner"])


def test_the_password_service_wants_the_requests_own_partner_as_seller() -> None:
    p = refund_params(
        partner=A,
        md5_key=KEY_A,
        now=NOW,
        service="refund_fastpay_by_platform_pwd",
        seller_user_id=B,
    )
    verdict = check(p)
    assert isinstance(verdict, Refusal) and verdict.code == "SELLER_INFO_NOT_EXIST"


# -- the books are per partner ----------------------------------------------------------


def batch(partner: str, batch_no: str, trade_no: str = T1) -> BatchRecord:
    return BatchRecord(
        ts=2.0,
        at=AT,
        service="refund_fastpay_by_platform_nopwd",
        charset="utf-8",
        sign_type="MD5",
        batch_no=batch_no,
        refund_date="2026-11-22 09:00:00",
        notify_url="http://127.0.0.1:1/n",
        notify_id=f"nid-{partner}-{batch_no}",
        items=((trade_no, Decimal("1.00"), "r", "SUCCESS", True),),
        auto_amount=Decimal("10.00"),
        partner=partner,
    )


def test_the_same_batch_no_is_two_batches_for_two_partners() -> None:
    ledger = Ledger()
    ledger.apply(batch(A, "20261122001"))
    assert ledger.is_accepted("20261122001", partner=A)
    assert not ledger.is_accepted("20261122001", partner=B)
    ledger.apply(batch(B, "20261122001"))
    assert set(ledger.batches) == {(A, "20261122001"), (B, "20261122001")}
    # Trade tallies stay per trade_no, and nothing counts as executed twice.
    assert (len(ledger.trades[T1].executions), ledger.trades[T1].refunded) == (2, Decimal("2.00"))
    assert ledger.double == []
    (only_b,) = ledger.query_records("20261122001", partner=B)
    assert only_b.partner == B
    assert [r.partner for r in ledger.query_records(None, partner=A)] == [A]
    assert ledger.query_records(None, partner=C) == []
    assert ledger.notifications[f"nid-{B}-20261122001"].partner == B
    view = ledger_view(ledger, partner=B)
    assert [b["partner"] for b in view["batches"]] == [B]
    assert list(view["notifications"]) == [f"nid-{B}-20261122001"]
    assert len(ledger_view(ledger, batch_no="20261122001")["batches"]) == 2


def test_the_journal_records_the_partner_and_reads_old_entries_as_the_default_one(
    tmp_path: Path,
) -> None:
    record = batch(B, "20261122002")
    line = record.to_json()
    assert line["partner"] == B
    assert record_from_json(line, default_partner=A) == record
    refused = RequestRecord(1.0, AT, "x", "20261122003", "DUPLICATE_BATCH_NO", 1, partner=B)
    assert record_from_json(refused.to_json()) == refused
    # A journal of the previous version: no partner anywhere.
    old = {k: v for k, v in batch(A, "20261122001").to_json().items() if k != "partner"}
    old_external = {
        "type": "external",
        "trade_no": T1,
        "amount": "1.00",
        "batch_nos": ["20261122EXT000001"],
        "reason": "x",
        "ts": 3.0,
        "at": AT,
        "auto_amount": None,
    }
    lines = [old, old_external, line]
    (tmp_path / "journal.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    books = Bookkeeper(tmp_path, default_partner=C)
    assert set(books.ledger.batches) == {(C, "20261122001"), (B, "20261122002")}
    assert books.ledger.is_accepted("20261122EXT000001", partner=C)
    assert not books.ledger.is_accepted("20261122EXT000001", partner=B)
    books.close()


def test_each_notification_is_signed_with_its_batchs_partners_key(tmp_path: Path) -> None:
    config = SandboxConfig(
        "127.0.0.1",
        1,
        tmp_path,
        partners=(PartnerConfig(B, merchant_public_key=PUBLIC), PartnerConfig(C, md5_key=KEY_C)),
    )
    books = Bookkeeper(tmp_path, default_partner=B)
    for record in (batch(C, "20261122001"), batch(A, "20261122001")):
        books.record(record)
    outbox = Outbox(config, ensure_alipay_keys(tmp_path), books, SandboxClock(), FaultBook())
    delivery = outbox.prepare(f"nid-{C}-20261122001", forged=False)
    assert delivery is not None
    form = decode_form(delivery.body, "utf-8")
    assert form["batch_no"] == "20261122001" and verify(form, charset="utf-8", md5_key=KEY_C)
    assert outbox.verify(form["notify_id"], C, 60.0) == "true"
    assert outbox.verify(form["notify_id"], B, 60.0) == "invalid"
    # A's MD5 batch (an older configuration's journal): A is not served, nothing can sign it.
    assert outbox.prepare(f"nid-{A}-20261122001", forged=False) is None
    assert books.ledger.notifications[f"nid-{A}-20261122001"].given_up
    books.close()

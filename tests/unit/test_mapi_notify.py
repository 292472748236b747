"""batch_refund_notify and result_details in every documented form."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.errors import NotifyFormatError
from worker.mapi import (
    BEIJING,
    BatchRefundNotify,
    FeePart,
    ResultItem,
    RoyaltyPart,
    SubTradePart,
    decode_form,
    parse_notify,
    parse_result_details,
)
from worker.mapi.notify import UnfreezeResult

REAL_SAMPLE = "2013091142096412^0.01^SUCCESS$bycoa@10106266.com^2088101964737404^0.00^SUCCESS"

# Seed 000's success notification (keys and values as Alipay sends them).
SEED_000_SUCCESS = {
    "sign": "e18debab04898b7d5ce7d43823e21512",
    "result_details": "2016082921001004270202288006^0.01^SUCCESS",
    "notify_time": "2016-08-31 20:49:16",
    "sign_type": "MD5",
    "notify_type": "batch_refund_notify",
    "notify_id": "86742cf72c3edb4f2818e67799d873cmva",
    "batch_no": "2016083120318",
    "success_num": "1",
}
SEED_000_FAILURE = {
    "sign": "85915ba45f3d14d5668e2387eadc8817",
    "result_details": "2016082721001004640239968415^160.00^SELLER_BALANCE_NOT_ENOUGH",
    "notify_time": "2016-09-01 10:00:52",
    "sign_type": "MD5",
    "notify_type": "batch_refund_notify",
    "notify_id": "e5b820377bb685b3462419885e505denn2",
    "batch_no": "2016090110120",
    "success_num": "0",
}
# Seed 001's example notification URL (query part).
SEED_001_BODY = (
    b"notify_time=2009-08-12+11%3A08%3A32&notify_type=batch_refund_notify"
    b"&notify_id=70fec0c2730b27528665af4517c27b95&sign_type=MD5"
    b"&sign=_p_w_l_h_j0b_gd_aejia7n_ko4_m%252Fu_w_jd3_nx_s_k_mxus9_hoxg_y_r_lunli_pmma29_t_q%3D%3D"
    b"&batch_no=20060702001&success_num=2"
    b"&result_details=2014040311001004370000361525%5E80%5ESUCCESS"
)


def test_real_sample_with_fee_part() -> None:
    (item,) = parse_result_details(REAL_SAMPLE)
    assert item == ResultItem(
        trade_no="2013091142096412",
        amount=Decimal("0.01"),
        code="SUCCESS",
        fee=FeePart("bycoa@10106266.com", "2088101964737404", Decimal("0.00"), "SUCCESS"),
        raw=REAL_SAMPLE,
    )
    assert item.succeeded and item.fee is not None and item.fee.succeeded


def test_official_table_example() -> None:
    text = (
        "2014040311001004370000361525^80^SUCCESS$jax_chuanhang@alipay.com^2088101003147483^0.01"
        "^SUCCESS"
    )
    (item,) = parse_result_details(text)
    assert item.amount == Decimal("80.00")
    assert item.fee == FeePart(
        "jax_chuanhang@alipay.com", "2088101003147483", Decimal("0.01"), "SUCCESS"
    )


def test_plain_items_joined_with_hash() -> None:
    items = parse_result_details(
        "2016082921001004270202288006^0.01^SUCCESS"
        "#2016082721001004640239968415^160.00^SELLER_BALANCE_NOT_ENOUGH"
    )
    assert [(i.trade_no, i.amount, i.code, i.succeeded) for i in items] == [
        ("2016082921001004270202288006", Decimal("0.01"), "SUCCESS", True),
        ("2016082721001004640239968415", Decimal("160.00"), "SELLER_BALANCE_NOT_ENOUGH", False),
    ]
    assert all(i.fee is None and i.royalties == () and i.sub_trades == () for i in items)


def test_royalty_and_sub_trade_parts() -> None:
    text = (
        "2010123016346858^0.02^SUCCESS"
        "|zen_gwen@hotmail.com^2088102210397302^alipay-test03@alipay.com^2088101568345155^0.01^SUCCESS"
        "|a@b.com^2088000000000001^c@d.com^2088000000000002^0.50^TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH"
        "$$10.00^10.00^SUCCESS"
    )
    (item,) = parse_result_details(text)
    assert item.trade_no == "2010123016346858" and item.succeeded and item.fee is None
    assert item.royalties == (
        RoyaltyPart(
            "zen_gwen@hotmail.com",
            "2088102210397302",
            "alipay-test03@alipay.com",
            "2088101568345155",
            Decimal("0.01"),
            "SUCCESS",
        ),
        RoyaltyPart(
            "a@b.com",
            "2088000000000001",
            "c@d.com",
            "2088000000000002",
            Decimal("0.50"),
            "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH",
        ),
    )
    assert not item.royalties[1].succeeded
    assert item.sub_trades == (SubTradePart(Decimal("10.00"), Decimal("10.00"), "SUCCESS"),)


def test_fee_then_royalty_and_royalty_only_refund_with_zero_amount() -> None:
    text = (
        "2013122935963563^0^SUCCESS$fee@x.com^2088000000000003^1.00^SUCCESS"
        "|o@x.com^2088000000000004^i@x.com^2088000000000005^36.0^SUCCESS"
    )
    (item,) = parse_result_details(text)
    assert item.amount == Decimal("0.00")
    assert item.fee is not None and item.fee.amount == Decimal("1.00")
    assert item.royalties[0].amount == Decimal("36.00")


def test_a_failed_trade_part_fails_the_item_whatever_the_fee_says() -> None:
    (item,) = parse_result_details("2013091142096412^0.01^TRADE_STATUS_ERROR$a^b^0.00^SUCCESS")
    assert not item.succeeded and item.code == "TRADE_STATUS_ERROR"


def test_lower_case_codes_are_normalised() -> None:
    (item,) = parse_result_details("2013091142096412^0.01^success")
    assert item.code == "SUCCESS" and item.succeeded


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("2013091142096412^0.01", "trade part"),
        ("2013091142096412^0.01^SUCCESS^x", "trade part"),
        ("2013091142096412^0.01^SUCCESS#", "result item 2 is empty"),
        ("2013091142096412^abc^SUCCESS", "amount"),
        ("2013091142096412^-1^SUCCESS", "amount"),
        ("2013091142096412^0.001^SUCCESS", "amount"),
        ("2013091142096412^0.01^", "result code"),
        ("2013091142096412^0.01^SUC CESS", "result code"),
        ("2013091142096412^0.01^退款", "result code"),
        ("12345^0.01^SUCCESS", "16-64 digits"),
        ("2013091142096412^0.01^SUCCESS$a^b^0.00", "fee part"),
        ("2013091142096412^0.01^SUCCESS$a^b^0.00^SUCCESS$c", "fee part"),
        ("2013091142096412^0.01^SUCCESS|a^b^c^0.01^SUCCESS", "royalty part"),
        ("2013091142096412^0.01^SUCCESS$$10.00^SUCCESS", "sub-trade part"),
        ("2013091142096412^0.01^SUCCESS$$", "sub-trade part"),
        ("2013091142096412^0.01^SUCCESS#2013091142096412^0.01^SUCCESS", "twice"),
    ],
)
def test_malformed_result_details(text: str, problem: str) -> None:
    with pytest.raises(NotifyFormatError, match=problem):
        parse_result_details(text)


def test_seed_000_notifications() -> None:
    ok = parse_notify(SEED_000_SUCCESS)
    assert ok == BatchRefundNotify(
        notify_id="86742cf72c3edb4f2818e67799d873cmva",
        notify_time="2016-08-31 20:49:16",
        notify_type="batch_refund_notify",
        batch_no="2016083120318",
        success_num=1,
        items=(
            ResultItem(
                "2016082921001004270202288006",
                Decimal("0.01"),
                "SUCCESS",
                raw="2016082921001004270202288006^0.01^SUCCESS",
            ),
        ),
        unfreezed_details=None,
        sign_type="MD5",
    )
    assert ok.counts_agree and ok.succeeded_count == 1
    assert ok.notified_at == datetime(2016, 8, 31, 20, 49, 16, tzinfo=BEIJING)
    failed = parse_notify(SEED_000_FAILURE)
    assert failed.success_num == 0 and failed.counts_agree
    assert failed.items[0].code == "SELLER_BALANCE_NOT_ENOUGH" and not failed.items[0].succeeded


def test_seed_001_notification_from_its_form_body() -> None:
    notify = parse_notify(decode_form(SEED_001_BODY, "utf-8"))
    assert notify.batch_no == "20060702001" and notify.notify_time == "2009-08-12 11:08:32"
    assert notify.items[0].amount == Decimal("80.00")
    # The official sample says success_num=2 next to one item: kept, and flagged.
    assert notify.success_num == 2 and not notify.counts_agree


def test_unfreezed_details_are_kept_raw_and_parsed_when_they_fit() -> None:
    raw = "2010031906272929^2010031906272928^10.00^2013091142096412^20100319162022^S^SUCCESS"
    notify = parse_notify(dict(SEED_000_SUCCESS, unfreezed_details=raw))
    assert notify.unfreezed_details == raw
    assert notify.unfreezed == (
        UnfreezeResult(
            "2010031906272929",
            "2010031906272928",
            Decimal("10.00"),
            "2013091142096412",
            "20100319162022",
            "S",
            "SUCCESS",
        ),
    )
    odd = parse_notify(dict(SEED_000_SUCCESS, unfreezed_details="something^else"))
    assert odd.unfreezed_details == "something^else" and odd.unfreezed is None
    blank = parse_notify(dict(SEED_000_SUCCESS, unfreezed_details=""))
    assert blank.unfreezed_details is None and blank.unfreezed is None


@pytest.mark.parametrize(
    "field",
    [
        "notify_id",
        "notify_time",
        "notify_type",
        "sign_type",
        "batch_no",
        "success_num",
        "result_details",
    ],
)
def test_missing_or_blank_required_fields(field: str) -> None:
    form = {k: v for k, v in SEED_000_SUCCESS.items() if k != field}
    with pytest.raises(NotifyFormatError, match=f"no {field}"):
        parse_notify(form)
    with pytest.raises(NotifyFormatError, match=f"no {field}"):
        parse_notify(dict(SEED_000_SUCCESS, **{field: ""}))


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("notify_type", "trade_status_sync", "notify_type"),
        ("notify_time", "2016-08-31T20:49:16", "notify_time"),
        ("notify_time", "2016-02-30 20:49:16", "notify_time"),
        ("notify_time", "2016-8-1 1:2:3", "notify_time"),
        ("batch_no", "2016083100", "batch_no"),
        ("success_num", "-1", "success_num"),
        ("success_num", "one", "success_num"),
        ("success_num", "1.0", "success_num"),
        ("notify_id", "has space", "notify_id"),
        ("result_details", "garbage", "trade part"),
    ],
)
def test_bad_fields(field: str, value: str, problem: str) -> None:
    with pytest.raises(NotifyFormatError, match=problem):
        parse_notify(dict(SEED_000_SUCCESS, **{field: value}))


def test_non_text_values_and_non_mappings() -> None:
    with pytest.raises(NotifyFormatError, match="not text"):
        parse_notify(dict(SEED_000_SUCCESS, success_num=1))  # type: ignore[arg-type]
    with pytest.raises(NotifyFormatError, match="mapping"):
        parse_notify(["notify_id"])  # type: ignore[arg-type]
    with pytest.raises(NotifyFormatError, match="empty"):
        parse_result_details(None)  # type: ignore[arg-type]


result_alphabet = st.sampled_from(
    ["2013091142096412", "^", "$", "$$", "|", "#", "0.01", "80", "SUCCESS", "a@b.com", "x", "", "-"]
)


@given(st.one_of(st.text(max_size=200), st.lists(result_alphabet, max_size=25).map("".join)))
def test_result_details_raise_nothing_but_notify_format_error(text: str) -> None:
    try:
        items = parse_result_details(text)
    except NotifyFormatError:
        return
    assert items and all(item.raw for item in items)
    assert "#".join(item.raw for item in items) == text


@given(
    st.dictionaries(
        st.sampled_from([*SEED_000_SUCCESS, "unfreezed_details", "x"]),
        st.one_of(st.text(max_size=40), st.lists(result_alphabet, max_size=10).map("".join)),
    )
)
def test_parse_notify_raises_nothing_but_notify_format_error(form: dict[str, str]) -> None:
    try:
        notify = parse_notify(form)
    except NotifyFormatError:
        return
    assert notify.items and notify.success_num >= 0


@given(st.sampled_from(sorted(SEED_000_SUCCESS)), st.text(max_size=40))
def test_one_mutated_field_raises_nothing_but_notify_format_error(field: str, value: str) -> None:
    try:
        notify = parse_notify(dict(SEED_000_SUCCESS, **{field: value}))
    except NotifyFormatError:
        return
    if field == "success_num":
        assert notify.success_num == int(value)
    elif field == "result_details":
        assert "#".join(item.raw for item in notify.items) == value
    elif field != "sign":  # the signature is checked by verify, not parsed
        assert getattr(notify, field) == value

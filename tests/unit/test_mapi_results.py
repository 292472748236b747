"""The tolerant reader of `result_details`: every legal shape of the grammar is read."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from worker.mapi.dback import mask_card_no, read_dback
from worker.mapi.results import read_result_details

TRADE = "2024050121001004270231872174"


def test_plain_entry() -> None:
    reading = read_result_details(f"{TRADE}^5.00^SUCCESS")
    (item,) = reading.items
    assert (item.trade_no, item.amount, item.code, item.succeeded) == (
        TRADE,
        Decimal("5.00"),
        "SUCCESS",
        True,
    )
    assert reading.complete


def test_every_legal_empty_optional_part_is_read() -> None:
    text = (
        f"{TRADE}^5.00^SUCCESS$"  # empty fee part
        f"#2024050121001004270231872175^1^TRADE_HAS_CLOSED$|"  # empty fee, empty royalty
        f"#2024050121001004270231872176^0.5^SUCCESS$$"  # empty sub-trade part
        "##"  # doubled separator
        f"#2024050121001004270231872177^2.00^SUCCESS$a@b.com^2088101964737404^0.00^SUCCESS"
        "|x@y.com^2088102210397302^u@v.com^2088101568345155^0.01^SUCCESS$$10.00^10.00^SUCCESS"
        "#"  # trailing separator
    )
    reading = read_result_details(text)
    assert reading.complete
    assert [i.code for i in reading.items] == ["SUCCESS", "TRADE_HAS_CLOSED", "SUCCESS", "SUCCESS"]
    assert reading.items[1].amount == Decimal("1")
    assert reading.items[3].fee == "a@b.com^2088101964737404^0.00^SUCCESS"
    assert reading.items[3].sub_trades == ("10.00^10.00^SUCCESS",)


def test_odd_codes_are_kept_verbatim_and_count_as_failures() -> None:
    reading = read_result_details(f"{TRADE}^5.00^  REFUND_CHARGE_ERROR_X #{TRADE}1^1.00^success")
    odd, lower = reading.items
    assert (odd.code, odd.succeeded) == ("REFUND_CHARGE_ERROR_X", False)
    assert (lower.code, lower.succeeded) == ("success", True)


def test_trade_numbers_are_not_judged_by_their_shape() -> None:
    (item,) = read_result_details("ABC-not-digits^5.00^SUCCESS").items
    assert item.trade_no == "ABC-not-digits"


def test_an_unreadable_entry_is_reported_and_the_rest_is_read() -> None:
    reading = read_result_details(f"{TRADE}^5.00#{TRADE}9^1.00^SUCCESS#^1.00^SUCCESS")
    assert [i.trade_no for i in reading.items] == [f"{TRADE}9"]
    assert [u.reason for u in reading.unread] == [
        "trade part has fewer than 3 fields",
        "trade part has no trade number",
    ]


def test_a_bad_amount_keeps_the_result_and_leaves_the_amount_unknown() -> None:
    (item,) = read_result_details(f"{TRADE}^five^SUCCESS").items
    assert (item.amount, item.amount_text, item.succeeded) == (None, "five", True)


def test_nothing_readable_is_reported_not_raised() -> None:
    assert not read_result_details("").items
    assert read_result_details("").unread
    assert read_result_details(None).unread
    assert read_result_details("###").unread


def test_query_entries_carry_their_batch_and_extra_fields() -> None:
    reading = read_result_details(
        f"20240501001^{TRADE}^0.01^SUCCESS^true^S#20240502001^{TRADE}^0.02^TRADE_HAS_CLOSED$",
        query=True,
    )
    first, second = reading.items
    assert (first.batch_no, first.extra) == ("20240501001", ("true", "S"))
    assert (second.batch_no, second.code, second.succeeded) == (
        "20240502001",
        "TRADE_HAS_CLOSED",
        False,
    )


# --- the full legal grammar, generated -----------------------------------------------

_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789@._", min_size=1, max_size=12)
_amount = st.decimals(min_value=0, max_value=10000, places=2).map(
    lambda d: st.sampled_from([f"{d:.2f}", f"{d.normalize():f}"])
)
_code = st.sampled_from(
    ["SUCCESS", "success", "TRADE_HAS_CLOSED", "SELLER_BALANCE_NOT_ENOUGH", "ODD_CODE_1", "X"]
)


@st.composite
def _entry(draw: st.DrawFn, *, query: bool) -> tuple[str, tuple[str, str, str]]:
    trade_no = draw(st.from_regex(r"[0-9]{16,28}", fullmatch=True))
    amount = draw(draw(_amount))
    code = draw(_code)
    head = f"{trade_no}^{amount}^{code}"
    if query:
        head = f"20240501{draw(st.from_regex(r'[0-9A-Z]{3,8}', fullmatch=True))}^{head}"
        head += draw(st.sampled_from(["", "^true^S", "^false^null", "^N^"]))
    fee = draw(
        st.sampled_from(
            [
                "",
                "$",
                f"${draw(_text)}^2088101964737404^0.00^{draw(_code)}",
            ]
        )
    )
    royalties = "".join(
        draw(
            st.lists(
                st.sampled_from(
                    ["|", f"|{'^'.join(['a@b.c', '2088', 'x@y.z', '2088', '1', 'SUCCESS'])}"]
                ),
                max_size=3,
            )
        )
    )
    if royalties and not fee:
        fee = "$"  # royalty parts follow the fee part, which may be empty
    sub = draw(st.sampled_from(["", "$$", f"$$1.00^{draw(draw(_amount))}^{draw(_code)}"]))
    return head + fee + royalties + sub, (trade_no, amount, code)


@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=8).flatmap(
        lambda flags: st.tuples(
            st.just(flags), st.lists(_entry(query=False), min_size=len(flags), max_size=len(flags))
        )
    )
)
def test_every_generated_legal_notification_result_is_read_in_full(data: object) -> None:
    flags, entries = data  # type: ignore[misc]
    text = ""
    for (doubled, _trailing), (raw, _) in zip(flags, entries, strict=True):
        text += raw + ("##" if doubled else "#")
    if not flags[-1][1]:
        text = text.rstrip("#")
    reading = read_result_details(text)
    assert reading.complete
    assert [(i.trade_no, i.amount_text, i.code.strip()) for i in reading.items] == [
        expected for _, expected in entries
    ]
    for item in reading.items:
        assert item.succeeded is (item.code.upper() == "SUCCESS")
        assert item.amount == Decimal(item.amount_text)


@given(st.lists(_entry(query=True), min_size=1, max_size=6))
def test_every_generated_legal_query_result_is_read_in_full(
    entries: list[tuple[str, tuple[str, str, str]]],
) -> None:
    reading = read_result_details("#".join(raw for raw, _ in entries), query=True)
    assert reading.complete
    assert [(i.trade_no, i.amount_text, i.code) for i in reading.items] == [e for _, e in entries]
    assert all(i.batch_no and i.batch_no.startswith("20240501") for i in reading.items)


@given(st.text(max_size=300))
def test_any_text_is_read_without_raising(text: str) -> None:
    reading = read_result_details(text)
    assert reading.items or reading.unread


# --- bank-card return notifications -----------------------------------------------------


def test_dback_fields_are_read_and_the_card_is_masked() -> None:
    result = read_dback(
        {
            "trade_no": TRADE,
            "refund_batch_no": "20240501001",
            "card_no": "6222 0200 1234 5678",
            "bank_name": "ICBC",
            "status": "S",
        }
    )
    assert (result.trade_no, result.batch_no, result.card_last4, result.status_meaning) == (
        TRADE,
        "20240501001",
        "5678",
        "succeeded",
    )
    assert read_dback({"status": "x"}).status_meaning == "unknown"
    assert read_dback({}).trade_no is None


@given(st.text(max_size=40))
def test_masking_never_keeps_more_than_four_digits(card_no: str) -> None:
    masked = mask_card_no(card_no)
    assert masked is None or (len(masked) <= 4 and masked.isdigit())

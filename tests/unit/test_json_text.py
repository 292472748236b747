"""`compact`: what `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` writes, faster."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.contracts.json_text import compact

_PLAIN = json.dumps


def _reference(value: object) -> str:
    return _PLAIN(value, ensure_ascii=False, separators=(",", ":"))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_reads_back_as_what_the_standard_library_writes(value: object) -> None:
    assert json.loads(compact(value)) == json.loads(_reference(value))


def test_keeps_key_order_and_non_ascii_text_with_no_spaces() -> None:
    event = {"reason": "商品退货 return", "amount": "12.50", "a": [1, None, True]}
    assert compact(event) == '{"reason":"商品退货 return","amount":"12.50","a":[1,null,true]}'
    assert compact(event) == _reference(event)


def test_an_integer_beyond_64_bits_is_written_by_the_standard_library() -> None:
    metadata = {"big": 123456789012345678901234567890, "n": -(2**70)}
    assert compact(metadata) == _reference(metadata)


def test_a_value_neither_writes_is_refused_as_by_json_dumps() -> None:
    with pytest.raises(TypeError):
        compact({"amount": Decimal("1.00")})


def test_default_converts_other_objects() -> None:
    assert compact({"amount": Decimal("1.00")}, default=str) == '{"amount":"1.00"}'

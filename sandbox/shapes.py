"""`result_details` in the grammar's other legal shapes (the `result_shapes` fault).

The official grammar of one `result_details` entry is::

    trade part [ "$" fee part ] { "|" royalty part } [ "$$" sub-trade part ]

    trade part      trade_no^amount^CODE
    fee part        account^user_id^amount^CODE
    royalty part    out_account^out_user_id^in_account^in_user_id^amount^CODE
    sub-trade part  amount^sub-trade total top-up amount^status

with entries joined by `#`. Only the trade part is required; every other
part may be present and empty. Alipay writes amounts without trailing zero
decimals where it likes (`5`, `0.5`). So, besides the plain `T^A^CODE`, a
notification may legally carry `T^A^CODE$`, `T^A^CODE$|`,
`T^A^CODE$|out^oid^in^iid^0.01^CODE`, `T^A^CODE$$`, `T^A^CODE$$5^5^SUCCESS`,
`T^A^CODE$acct^uid^0^SUCCESS`, a trailing `#` or a doubled `##` between
entries.

`shaped_result_details` picks one such shape per entry with a
`random.Random(seed)`, so the same batch always gets the same text (resends
and restarts included). The trade part's trade_no, value of the amount and
code are exactly the batch's result; the other parts repeat the trade's code.

One combination is never written: an empty fee part directly followed by
the sub-trade part (`T^A^CODE$` + `$$...` would read `T^A^CODE$$$...`,
which splits differently); such an entry gets no fee part instead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

__all__ = ["shaped_result_details", "short_amount"]

_FEE_ACCOUNT: Final = "fee@sandbox.example"
_ROYALTY_OUT: Final = ("royalty@sandbox.example", "2088000000000002")
_ROYALTY_IN: Final = ("buyer@sandbox.example", "2088000000000003")


def short_amount(amount: str) -> str:
    """`5.00` -> `5`, `0.50` -> `0.5`; an amount without zero decimals stays as it is."""
    if amount.endswith(".00"):
        return amount[:-3]
    if "." in amount and amount.endswith("0"):
        return amount[:-1]
    return amount


def shaped_result_details(
    rows: Sequence[tuple[str, str, str]], seed: int, *, partner: str = "2088000000000001"
) -> str:
    """`result_details` for (trade_no, two-decimal amount, code) rows in varied legal shapes."""
    rng = random.Random(seed)
    out: list[str] = []
    for index, (trade_no, amount, code) in enumerate(rows):
        if index:
            out.append("##" if rng.random() < 0.15 else "#")
        out.append(_entry(rng, trade_no, amount, code, partner))
    if rows and rng.random() < 0.2:
        out.append("#")
    return "".join(out)


def _entry(rng: random.Random, trade_no: str, amount: str, code: str, partner: str) -> str:
    def amt(text: str) -> str:
        return short_amount(text) if rng.random() < 0.5 else text

    fee = rng.choice(("none", "empty", "full"))
    royalties = [
        "" if rng.random() < 0.3 else "^".join((*_ROYALTY_OUT, *_ROYALTY_IN, amt("0.00"), code))
        for _ in range(rng.choice((0, 0, 1, 2)))
    ]
    sub = rng.choice(("none", "none", "empty", "full"))
    if fee == "empty" and not royalties and sub != "none":
        fee = "none"
    parts = [f"{trade_no}^{amt(amount)}^{code}"]
    if fee == "empty":
        parts.append("$")
    elif fee == "full":
        parts.append(f"${_FEE_ACCOUNT}^{partner}^{amt('0.00')}^{code}")
    parts.extend(f"|{royalty}" for royalty in royalties)
    if sub == "empty":
        parts.append("$$")
    elif sub == "full":
        parts.append(f"$${amt(amount)}^{amt(amount)}^{code}")
    return "".join(parts)

"""Writing the OpenAPI gateway's JSON answers and signing them, as pure functions.

An answer is `{"<member>": {...}, "sign": "..."}`: the member is the method with
dots as underscores plus `_response` (`worker.openapi.member_name`), or
`error_response` for a gateway-level error. The signature is SHA256withRSA with
the sandbox's OpenAPI key over the member's text **exactly as written** here
(`worker.openapi.sign_content`), so whatever shape is chosen, the text signed is
the text sent. An unsigned answer carries `"sign": ""`.

`Shape` says how to write it; `PLAIN` is the compact form (keys in the given
order, no spaces, non-ASCII as it is, the result member first). `shape_from`
picks a legal variation from a number of the dice (setting
`openapi_answer_shapes: "vary"`): shuffled keys, spaces or line breaks, `\\/`
escapes of every `/`, non-ASCII as `\\uXXXX`, `sign` before the member.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass

from worker.openapi import sign_content

__all__ = ["PLAIN", "Shape", "member_text", "shape_from", "write_answer"]


@dataclass(frozen=True)
class Shape:
    """How an answer is written (see the module docstring)."""

    order_seed: int | None = None  # None: keys in the given order
    spacing: str = ""  # "", " " (after `:` and `,`) or "\n" (one key a line)
    escape_slash: bool = False
    ascii_only: bool = False
    sign_first: bool = False


PLAIN = Shape()


def shape_from(bits: int) -> Shape:
    """A legal shape chosen by `bits` (a number of the dice): the same bits, the same shape."""
    rng = random.Random(bits)
    return Shape(
        order_seed=rng.getrandbits(32) if rng.random() < 0.7 else None,
        spacing=rng.choice(("", " ", "\n")),
        escape_slash=rng.random() < 0.5,
        ascii_only=rng.random() < 0.5,
        sign_first=rng.random() < 0.5,
    )


def member_text(member: Mapping[str, str], shape: Shape = PLAIN) -> str:
    """The member object as text in `shape` (values are strings)."""
    keys = list(member)
    if shape.order_seed is not None:
        random.Random(shape.order_seed).shuffle(keys)
    parts = [f"{_string(k, shape)}:{_gap(shape)}{_string(member[k], shape)}" for k in keys]
    if shape.spacing == "\n":
        return "{\n    " + ",\n    ".join(parts) + "\n  }"
    return "{" + f",{shape.spacing}".join(parts) + "}"


def write_answer(
    name: str,
    member: Mapping[str, str],
    private_key_pem: bytes,
    shape: Shape = PLAIN,
    *,
    signed: bool = True,
) -> bytes:
    """The whole answer body (UTF-8): `name`'s member in `shape`, and its signature."""
    content = member_text(member, shape)
    sign = sign_content(content, private_key_pem) if signed else ""
    gap = _gap(shape)
    first = f"{json.dumps(name)}:{gap}{content}"
    second = f'"sign":{gap}{json.dumps(sign)}'
    if shape.sign_first:
        first, second = second, first
    if shape.spacing == "\n":
        return ("{\n  " + first + ",\n  " + second + "\n}\n").encode("utf-8")
    return ("{" + first + f",{shape.spacing}" + second + "}").encode("utf-8")


def _gap(shape: Shape) -> str:
    return " " if shape.spacing else ""


def _string(value: str, shape: Shape) -> str:
    text = json.dumps(value, ensure_ascii=shape.ascii_only)
    return text.replace("/", "\\/") if shape.escape_slash else text

"""Reading the gateway's JSON answer: the signed member, exactly as received, and its check.

An answer is one JSON object with two members, in either order:

    {"alipay_trade_refund_response": {"code": "10000", ...}, "sign": "base64..."}

The result member is named after the method (dots become underscores, then
`_response`); an `error_response` member may take its place, sometimes with an
empty `sign` or none. Alipay signs the member's value as it wrote it, so the
signature is checked over the **raw text** of that value, from its `{` to the
matching `}` (strings and escapes honoured while matching braces), never over
re-encoded JSON: whitespace, `\\/` escapes and key order all count.

`extract_signed` finds that text with a small scanner of the top-level members
and raises `AnswerShapeError` (naming the problem) when the body is not one JSON
object, holds the same member twice, has both the method's member and
`error_response`, has neither, or its `sign` is not a string. The whole body must
also be valid JSON and no larger than `MAX_ANSWER_CHARS`.

`read_answer` never raises: it gives a verified `Answer` or `Unverifiable`. An
answer with no signature, an empty one, or one that does not verify with Alipay's
public key (SHA-256 only) is `Unverifiable`, whatever it claims: the outcome of the
call is then unknown. Members may not repeat a key at any depth (ambiguous).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from worker.domain.errors import ProtocolError
from worker.openapi.answers import Answer, MemberKind, Unverifiable, read_body
from worker.openapi.signing import verify_rsa2

__all__ = [
    "ERROR_MEMBER",
    "MAX_ANSWER_CHARS",
    "AnswerShapeError",
    "SignedPart",
    "body_text",
    "extract_signed",
    "member_name",
    "read_answer",
]

ERROR_MEMBER = "error_response"
MAX_ANSWER_CHARS = 256 * 1024

_WS = frozenset(" \t\r\n")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(r"[^\s,{}\[\]:\"]+")
_STRUCTURAL = re.compile(r'["{}\[\]]')
_CLOSING = {"{": "}", "[": "]"}


class AnswerShapeError(ProtocolError):
    """The answer is not the signed JSON object the gateway sends; the message says why."""


@dataclass(frozen=True)
class SignedPart:
    """The signed member of an answer: its name, kind, raw value text and `sign`.

    `sign` is None when the answer has no `sign` member; it may be empty.
    """

    name: str
    kind: MemberKind
    content: str
    sign: str | None


def member_name(method: str) -> str:
    """The result member of `method`'s answer (`alipay.trade.refund` gives
    `alipay_trade_refund_response`)."""
    return method.replace(".", "_") + "_response"


def body_text(body: bytes) -> str | None:
    """The answer body as text (the gateway answers in UTF-8), or None if it is not UTF-8."""
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        return None


def extract_signed(raw: str, method: str) -> SignedPart:
    """The signed member of `raw`, the answer to `method` (rules in the module docstring)."""
    if not isinstance(raw, str):
        raise AnswerShapeError("the answer is not text")
    if len(raw) > MAX_ANSWER_CHARS:
        raise AnswerShapeError(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
    members = _top_level_members(raw)
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        raise AnswerShapeError("the answer is not valid JSON") from None
    expected = member_name(method)
    found = {name: (start, end) for name, start, end in members}
    if expected in found and ERROR_MEMBER in found:
        raise AnswerShapeError(f"the answer has both {expected} and {ERROR_MEMBER}")
    if expected in found:
        name, kind = expected, MemberKind.RESPONSE
    elif ERROR_MEMBER in found:
        name, kind = ERROR_MEMBER, MemberKind.ERROR
    else:
        raise AnswerShapeError(f"the answer has no {expected} member")
    start, end = found[name]
    if raw[start] != "{":
        raise AnswerShapeError(f"{name} is not a JSON object")
    sign: str | None = None
    if "sign" in found:
        sign_start, sign_end = found["sign"]
        value = json.loads(raw[sign_start:sign_end])
        if not isinstance(value, str):
            raise AnswerShapeError("sign is not a JSON string")
        sign = value
    return SignedPart(name=name, kind=kind, content=raw[start:end], sign=sign)


def read_answer(raw: str, method: str, public_key_pem: str | bytes) -> Answer | Unverifiable:
    """The verified answer to `method`, or `Unverifiable` saying why not (never raises)."""
    try:
        part = extract_signed(raw, method)
        member = _decode_member(part.content)
    except AnswerShapeError as exc:
        return Unverifiable(str(exc))
    code, sub_code = _text(member.get("code")), _text(member.get("sub_code"))
    if not part.sign:
        missing = "an empty sign" if part.sign == "" else "no sign"
        return Unverifiable(
            f"{part.name} with {missing}", part.kind, code, sub_code, unsigned=True
        )
    if not verify_rsa2(part.content, part.sign, public_key_pem):
        return Unverifiable(
            f"the signature of {part.name} does not verify", part.kind, code, sub_code
        )
    if code is None:
        return Unverifiable(f"{part.name} has no code", part.kind, None, sub_code)
    fields = MappingProxyType(_scalars(member))
    return Answer(
        method=method,
        member=part.kind,
        code=code,
        msg=_text(member.get("msg")) or "",
        sub_code=sub_code,
        sub_msg=_text(member.get("sub_msg")),
        fields=fields,
        body=read_body(method, fields) if part.kind is MemberKind.RESPONSE else None,
    )


def _top_level_members(raw: str) -> list[tuple[str, int, int]]:
    """(name, value start, value end) of each member of the one top-level object."""
    i = _skip(raw, 0)
    if i >= len(raw) or raw[i] != "{":
        raise AnswerShapeError("the answer is not a JSON object")
    members: list[tuple[str, int, int]] = []
    seen: set[str] = set()
    i = _skip(raw, i + 1)
    if i < len(raw) and raw[i] == "}":
        end = i + 1
    else:
        while True:
            key_end = _string_end(raw, i)
            try:
                name = json.loads(raw[i:key_end])
            except ValueError:
                raise AnswerShapeError("a member name is not a valid JSON string") from None
            if name in seen:
                raise AnswerShapeError(f"member {str(name)[:60]!r} appears twice")
            seen.add(name)
            i = _skip(raw, key_end)
            if i >= len(raw) or raw[i] != ":":
                raise AnswerShapeError("a member name is not followed by ':'")
            start = _skip(raw, i + 1)
            value_end = _value_end(raw, start)
            members.append((name, start, value_end))
            i = _skip(raw, value_end)
            if i < len(raw) and raw[i] == ",":
                i = _skip(raw, i + 1)
                continue
            if i < len(raw) and raw[i] == "}":
                end = i + 1
                break
            raise AnswerShapeError("the answer object is not closed")
    if _skip(raw, end) != len(raw):
        raise AnswerShapeError("text follows the answer object")
    return members


def _skip(raw: str, i: int) -> int:
    while i < len(raw) and raw[i] in _WS:
        i += 1
    return i


def _string_end(raw: str, i: int) -> int:
    match = _STRING.match(raw, i)
    if match is None:
        raise AnswerShapeError("a JSON string is broken or not closed")
    return match.end()


def _value_end(raw: str, i: int) -> int:
    """The end of the JSON value starting at `i` (objects and lists by matching brackets)."""
    if i >= len(raw):
        raise AnswerShapeError("a member has no value")
    first = raw[i]
    if first == '"':
        return _string_end(raw, i)
    if first not in _CLOSING:
        match = _SCALAR.match(raw, i)
        if match is None:
            raise AnswerShapeError("a member value is not JSON")
        return match.end()
    stack = [_CLOSING[first]]
    j = i + 1
    while stack:
        match = _STRUCTURAL.search(raw, j)
        if match is None:
            raise AnswerShapeError("an object or list is not closed")
        ch, j = match.group(), match.start()
        if ch == '"':
            j = _string_end(raw, j)
            continue
        if ch in _CLOSING:
            stack.append(_CLOSING[ch])
        elif ch != stack.pop():
            raise AnswerShapeError("brackets do not match")
        j += 1
    return j


def _decode_member(content: str) -> dict[str, Any]:
    try:
        value = json.loads(content, object_pairs_hook=_unique_keys, parse_float=str, parse_int=str)
    except (ValueError, RecursionError) as exc:
        raise AnswerShapeError(f"the answer member is not valid JSON ({_why(exc)})") from None
    if not isinstance(value, dict):
        raise AnswerShapeError("the answer member is not a JSON object")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key[:60]!r} appears twice")
        result[key] = value
    return result


def _why(exc: BaseException) -> str:
    return str(exc)[:120] if isinstance(exc, ValueError) else "nested too deeply"


def _scalars(member: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in member.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
    return out


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None

"""The synchronous XML answer and the notify_verify answer: never success by accident."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.mapi import SyncResponse, SyncStatus, parse_notify_verify, parse_sync_response

SEED_000_ANSWER = (
    '<?xml version="1.0" encoding="GBK"?> \n<alipay>\n<is_success>F</is_success>\n'
    "<error>DUPLICATE_BATCH_NO</error>\n</alipay>"
).encode("gbk")


def answer(body: str, encoding: str = "GBK") -> bytes:
    return f'<?xml version="1.0" encoding="{encoding}"?>{body}'.encode(
        "utf-8" if encoding.lower() in ("utf-8", "utf8") else "gbk"
    )


def test_seed_000_duplicate_batch_answer() -> None:
    result = parse_sync_response(SEED_000_ANSWER)
    assert result == SyncResponse(
        SyncStatus.REFUSED, "DUPLICATE_BATCH_NO", "gateway refused the batch: DUPLICATE_BATCH_NO"
    )
    assert not result.accepted


@pytest.mark.parametrize("encoding", ["GBK", "gbk", "UTF-8", "utf-8", "GB2312"])
def test_accepted_in_every_declared_encoding(encoding: str) -> None:
    result = parse_sync_response(answer("<alipay><is_success>T</is_success></alipay>", encoding))
    assert result.status is SyncStatus.ACCEPTED and result.error is None and result.accepted


def test_processing_counts_as_accepted() -> None:
    result = parse_sync_response(answer("<alipay><is_success>P</is_success></alipay>"))
    assert result.status is SyncStatus.PROCESSING and result.accepted


def test_whitespace_and_extra_elements_are_tolerated() -> None:
    body = answer(
        "<alipay>\n  <is_success> F </is_success>\n  <error>\nILLEGAL_SIGN </error>"
        '<request><param name="service">x</param></request><sign_type>MD5</sign_type></alipay>'
    )
    result = parse_sync_response(body)
    assert (result.status, result.error) == (SyncStatus.REFUSED, "ILLEGAL_SIGN")


def test_no_declaration_means_utf8() -> None:
    body = b"<alipay><is_success>F</is_success><error>HAS_NO_PRIVILEGE</error></alipay>"
    assert parse_sync_response(body).error == "HAS_NO_PRIVILEGE"
    assert parse_sync_response(b"\xef\xbb\xbf" + body).error == "HAS_NO_PRIVILEGE"


def test_gbk_text_in_elements_is_decoded() -> None:
    body = answer("<alipay><is_success>T</is_success><note>退款受理</note></alipay>")
    assert parse_sync_response(body).status is SyncStatus.ACCEPTED


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "empty"),
        (b"   \r\n", "empty"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "root element is <html>"),
        (b"<html><body><br></body></html>", "not well-formed"),
        (answer("<alipay><is_success>T</is_success>"), "not well-formed"),
        (answer("<alipay><is_succ"), "not well-formed"),
        (answer("<response><is_success>T</is_success></response>"), "root element"),
        (answer("<alipay><error>X</error></alipay>"), "0 <is_success>"),
        (answer("<alipay><is_success>T</is_success><is_success>F</is_success></alipay>"), "2 <is_"),
        (answer("<alipay><is_success>F</is_success></alipay>"), "without an error code"),
        (answer("<alipay><is_success>F</is_success><error> </error></alipay>"), "without an error"),
        (
            answer("<alipay><is_success>F</is_success><error>not a code!</error></alipay>"),
            "malformed",
        ),
        (
            answer("<alipay><is_success>F</is_success><error>A</error><error>B</error></alipay>"),
            "more than one <error>",
        ),
        (answer("<alipay><is_success>T</is_success><error>X</error></alipay>"), "together"),
        (answer("<alipay><is_success>Y</is_success></alipay>"), "not T, P or F"),
        (answer("<alipay><is_success>true</is_success></alipay>"), "not T, P or F"),
        (answer("<alipay><is_success></is_success></alipay>"), "not T, P or F"),
        (answer("<alipay><is_success>T</is_success></alipay><x/>"), "not well-formed"),
        (b'<?xml version="1.0" encoding="ISO-2022-JP"?><alipay/>', "unsupported XML encoding"),
        (b'<?xml version="1.0" encoding="UTF-8"?><alipay>\xff</alipay>', "not valid utf-8"),
        (b"x" * (64 * 1024 + 1), "larger than"),
        ("<alipay><is_success>T</is_success></alipay>".encode("utf-16"), "not valid utf-8"),
    ],
)
def test_anything_else_is_unknown_with_a_reason(body: bytes, detail: str) -> None:
    result = parse_sync_response(body)
    assert result.status is SyncStatus.UNKNOWN
    assert result.error is None and not result.accepted
    assert detail in result.detail


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE alipay [<!ENTITY a "T">]>'
        b"<alipay><is_success>&a;</is_success></alipay>",
        b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<alipay><is_success>&lol2;</is_success></alipay>",
        b'<!DOCTYPE alipay SYSTEM "http://example.invalid/x.dtd">'
        b"<alipay><is_success>T</is_success></alipay>",
        b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><alipay>&e;</alipay>',
    ],
)
def test_doctype_and_entities_are_refused(body: bytes) -> None:
    result = parse_sync_response(body)
    assert result.status is SyncStatus.UNKNOWN
    assert "DOCTYPE" in result.detail


@given(st.binary(max_size=300))
def test_random_bytes_never_raise_and_never_succeed(body: bytes) -> None:
    result = parse_sync_response(body)
    assert isinstance(result, SyncResponse)
    if result.status in (SyncStatus.ACCEPTED, SyncStatus.PROCESSING):
        # Only a body that really says T or P is an acceptance.
        letter = b"T" if result.status is SyncStatus.ACCEPTED else b"P"
        assert b"<is_success>" + letter + b"</is_success>" in body
    else:
        assert result.status in (SyncStatus.UNKNOWN, SyncStatus.REFUSED)


xml_pieces = st.sampled_from(
    [
        "<alipay>",
        "</alipay>",
        "<is_success>",
        "</is_success>",
        "<error>",
        "</error>",
        "T",
        "F",
        "P",
        "DUPLICATE_BATCH_NO",
        "<!DOCTYPE x>",
        "&amp;",
        "&x;",
        "<![CDATA[T]]>",
        " ",
        "\n",
    ]
)


@given(st.lists(xml_pieces, max_size=12).map("".join), st.sampled_from(["GBK", "UTF-8"]))
def test_xml_like_noise_never_raises(body: str, encoding: str) -> None:
    result = parse_sync_response(answer(body, encoding))
    assert isinstance(result, SyncResponse)
    if result.status is SyncStatus.REFUSED:
        assert result.error
    if result.status is not SyncStatus.UNKNOWN:
        assert body.count("<is_success>") == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"true", "true"),
        (b"true\n", "true"),
        (b" TRUE ", "true"),
        (b"false", "false"),
        (b"invalid", "invalid"),
        (b"", "unknown"),
        (b"truefalse", "unknown"),
        (b"<html>true</html>", "unknown"),
        (b"true true", "unknown"),
        (b"\xfftrue", "unknown"),
        ("true".encode("utf-16"), "unknown"),
    ],
)
def test_parse_notify_verify(body: bytes, expected: str) -> None:
    assert parse_notify_verify(body) == expected


@given(st.binary(max_size=50))
def test_notify_verify_is_true_only_for_true(body: bytes) -> None:
    answer_ = parse_notify_verify(body)
    assert answer_ in ("true", "false", "invalid", "unknown")
    assert (answer_ == "true") == (body.strip(b" \t\r\n").lower() == b"true")

"""The gateway's synchronous answers: batch submission XML and `notify_verify`.

Submission answer, XML usually declared GBK::

    <?xml version="1.0" encoding="GBK"?>
    <alipay><is_success>F</is_success><error>DUPLICATE_BATCH_NO</error></alipay>

* `T` -> ACCEPTED: the batch was taken for processing; results come by notification.
* `P` -> PROCESSING: seen from some gateways; treat it as accepted.
* `F` with an error code -> REFUSED (the code says why; see `worker.mapi.codes`).
* Anything else -> UNKNOWN: HTML error pages, an empty or truncated body, another
  root element, a missing or repeated `is_success`, `F` without a well-formed
  code, `T`/`P` that also carry an error. UNKNOWN means "the gateway may have
  the batch": retry with the same batch_no, never renumber.

The parser never raises and never expands entities: any DOCTYPE or entity
declaration makes the answer UNKNOWN. The body is decoded with its declared
encoding before expat reads it (`worker.mapi.xmldoc`).

`notify_verify` answer: the body `true` means the notification is
genuine; `false` and `invalid` mean it is not; anything else is `unknown`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

from worker.mapi.xmldoc import XmlDocument, XmlFailure, read_xml_answer

MAX_BODY_BYTES = 64 * 1024

_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}", re.ASCII)


class SyncStatus(enum.StrEnum):
    """What the submission answer says about the batch."""

    ACCEPTED = "accepted"  # is_success T
    PROCESSING = "processing"  # is_success P, handled like ACCEPTED
    REFUSED = "refused"  # is_success F with an error code
    UNKNOWN = "unknown"  # anything else: the outcome is not known


@dataclass(frozen=True)
class SyncResponse:
    """A parsed submission answer; `detail` is a short human sentence for logs."""

    status: SyncStatus
    error: str | None
    detail: str

    @property
    def accepted(self) -> bool:
        """True when the gateway took the batch (T or P)."""
        return self.status in (SyncStatus.ACCEPTED, SyncStatus.PROCESSING)


def parse_sync_response(body: bytes) -> SyncResponse:
    """Read the gateway's answer to a batch submission (rules in the module docstring)."""
    if not isinstance(body, bytes | bytearray):
        return _unknown("the answer is not bytes")
    if not body.strip():
        return _unknown("empty answer")
    if len(body) > MAX_BODY_BYTES:
        return _unknown(f"answer larger than {MAX_BODY_BYTES} bytes")
    document = read_xml_answer(bytes(body))
    if isinstance(document, XmlFailure):
        return _unknown(document.reason)
    return _interpret(document)


NotifyVerifyAnswer = Literal["true", "false", "invalid", "unknown"]


def parse_notify_verify(body: bytes) -> NotifyVerifyAnswer:
    """Read the gateway's `notify_verify` answer; only `true` vouches for a notification.

    Surrounding ASCII whitespace and letter case are ignored; any other body
    (HTML, an error page, an empty answer) is `unknown`.
    """
    if not isinstance(body, bytes | bytearray):
        return "unknown"
    text = bytes(body).strip(b" \t\r\n").lower()
    if text == b"true":
        return "true"
    if text == b"false":
        return "false"
    if text == b"invalid":
        return "invalid"
    return "unknown"


def _unknown(detail: str) -> SyncResponse:
    return SyncResponse(SyncStatus.UNKNOWN, None, detail)


def _interpret(document: XmlDocument) -> SyncResponse:
    if document.root != "alipay":
        return _unknown(f"root element is <{document.root[:40]}>, not <alipay>")
    flags = document.texts("is_success")
    if len(flags) != 1:
        return _unknown(f"answer has {len(flags)} <is_success> elements, expected 1")
    errors = document.texts("error")
    if len(errors) > 1:
        return _unknown("answer has more than one <error> element")
    flag = flags[0].strip()
    error = errors[0].strip() if errors else ""
    if flag in ("T", "P"):
        if error:
            return _unknown(f"is_success {flag} together with an error")
        if flag == "T":
            return SyncResponse(SyncStatus.ACCEPTED, None, "gateway accepted the batch")
        return SyncResponse(SyncStatus.PROCESSING, None, "gateway is processing the batch")
    if flag == "F":
        if not error:
            return _unknown("is_success F without an error code")
        if not _CODE.fullmatch(error):
            return _unknown("is_success F with a malformed error code")
        return SyncResponse(SyncStatus.REFUSED, error, f"gateway refused the batch: {error}")
    return _unknown(f"is_success is {flag[:10]!r}, not T, P or F")

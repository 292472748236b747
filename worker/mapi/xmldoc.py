"""Reading the gateway's small XML answers safely.

The gateway answers several services with a flat document such as::

    <?xml version="1.0" encoding="GBK"?>
    <alipay><is_success>F</is_success><error>DUPLICATE_BATCH_NO</error></alipay>

`read_xml_answer` gives the root element's name and the (tag, text) of its
direct children, or an XmlFailure saying why it could not. It never raises
and never expands entities: any DOCTYPE or entity declaration is a failure.

Expat cannot read GBK itself, so the body is decoded in Python first: a UTF-8
byte order mark means UTF-8, else the encoding named by the XML declaration
(`GBK`, `GB2312`, `cp936`, `GB18030`, `UTF-8`, `ASCII`, any case), else UTF-8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.parsers import expat

_DECLARATION = re.compile(
    rb"\A\s*<\?xml\s[^>]*?\bencoding\s*=\s*[\"']([A-Za-z0-9._-]{1,40})[\"']", re.ASCII
)
_ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "gbk": "gbk",
    "gb2312": "gbk",
    "cp936": "gbk",
    "gb18030": "gb18030",
    "us-ascii": "ascii",
    "ascii": "ascii",
}
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class XmlFailure:
    """Why a body could not be read as an XML answer (a short sentence for logs)."""

    reason: str


@dataclass(frozen=True)
class XmlDocument:
    """The root element's name and the (tag, text) of its direct children, in order."""

    root: str
    children: tuple[tuple[str, str], ...]

    def texts(self, tag: str) -> list[str]:
        """The texts of every direct child named `tag`."""
        return [text for name, text in self.children if name == tag]


class _Refused(Exception):
    """Raised from inside the expat callbacks to stop on a forbidden construct."""


def read_xml_answer(body: bytes) -> XmlDocument | XmlFailure:
    """Decode and parse `body` (rules in the module docstring)."""
    decoded = _decode(body)
    if isinstance(decoded, XmlFailure):
        return decoded
    return _parse(decoded)


def _decode(body: bytes) -> str | XmlFailure:
    if body.startswith(UTF8_BOM):
        body = body[len(UTF8_BOM) :]
        declared = "utf-8"
    else:
        match = _DECLARATION.match(body[:512])
        declared = match.group(1).decode("ascii").lower() if match else "utf-8"
    codec = _ENCODINGS.get(declared)
    if codec is None:
        return XmlFailure(f"unsupported XML encoding {declared!r}")
    try:
        return body.decode(codec)
    except UnicodeDecodeError:
        return XmlFailure(f"answer is not valid {declared}")


def _parse(text: str) -> XmlDocument | XmlFailure:
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    root: list[str] = []
    children: list[tuple[str, str]] = []
    depth = 0
    current: list[str] = []

    def refuse(*_args: object) -> None:
        raise _Refused

    def refuse_external(*_args: object) -> int:
        raise _Refused

    def start(name: str, _attrs: dict[str, str]) -> None:
        nonlocal depth, current
        depth += 1
        if depth == 1:
            root.append(name)
        elif depth == 2:
            current = []
            children.append((name, ""))

    def end(_name: str) -> None:
        nonlocal depth
        if depth == 2:
            tag, _ = children[-1]
            children[-1] = (tag, "".join(current))
        depth -= 1

    def characters(data: str) -> None:
        if depth == 2:
            current.append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse_external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        parser.Parse(text, True)
    except _Refused:
        return XmlFailure("answer declares a DOCTYPE or entities")
    except expat.ExpatError as exc:
        return XmlFailure(f"answer is not well-formed XML ({expat.ErrorString(exc.code)})")
    except (ValueError, RecursionError):
        return XmlFailure("answer cannot be parsed as XML")
    if not root:
        return XmlFailure("answer has no root element")
    return XmlDocument(root[0], tuple(children))

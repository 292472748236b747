"""Every file the repository's documents and docstrings point at exists in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A path into the repository's own tree, as documents write it.
_PATH = re.compile(
    r"(?<![\w/.-])((?:worker|sandbox|devtools|tests|bench|docs|schemas|deploy|scripts)/"
    r"[\w./-]*[\w/])"
)
_SOURCES = ("worker", "sandbox", "devtools", "tests", "bench", "docs")


def _documents() -> list[Path]:
    # The changelog is history: it names files as they were then.
    found = [ROOT / "README.md"]
    for folder in _SOURCES:
        found += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md")]
    return [p for p in found if "__pycache__" not in p.parts and "results" not in p.parts]


def test_every_path_cited_exists() -> None:
    missing: list[str] = []
    for document in _documents():
        text = document.read_text(encoding="utf-8")
        for match in _PATH.finditer(text):
            cited = match.group(1).rstrip(".")
            if any(ch in cited for ch in "*<>{}") or "/results/" in cited:
                continue  # a pattern, or a file the benchmarks and the suite write
            if not (ROOT / cited).exists():
                missing.append(f"{document.relative_to(ROOT)}: {cited}")
    assert missing == []

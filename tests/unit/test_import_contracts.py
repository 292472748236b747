"""The layer contracts of `pyproject.toml` hold, and a forbidden import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy_tree(target: Path) -> Path:
    for package in ("worker", "sandbox", "devtools"):
        shutil.copytree(
            ROOT / package,
            target / package,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("worker/domain/policy/attempts.py", "import psycopg", "Domain, protocol and contracts"),
        ("worker/mapi/signing.py", "import worker.adapters.postgres.pool", "Domain, protocol"),
        ("worker/openapi/responses.py", "import requests", "Domain, protocol"),
        ("worker/services/relay.py", "import pika", "Services use no driver"),
        ("worker/adapters/postgres/ledger.py", "import worker.services.intake", "Adapters do not"),
        ("worker/entrypoints/runtime.py", "import sandbox.client", "does not import the sandbox"),
        ("sandbox/ledger.py", "import worker.adapters.postgres.pool", "The sandbox imports only"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = _lint(tree)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if "BROKEN" in ln]
    assert any(contract in ln for ln in broken), result.stdout

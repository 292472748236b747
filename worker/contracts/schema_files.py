"""The JSON Schema files of the bus contracts (`schemas/`, README "Events").

They ship inside the package as `worker/contracts/schemas/`; a source checkout
reads the repository's `schemas/` directory itself.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from pathlib import Path
from typing import Any, Final

__all__ = ["REFUND_COMPLETED_SCHEMA", "REFUND_REQUESTED_SCHEMA", "load_schema", "schema"]

REFUND_REQUESTED_SCHEMA: Final = "refund.requested.v1.json"
REFUND_COMPLETED_SCHEMA: Final = "refund.completed.v1.json"


def _schema_text(name: str) -> str:
    """A schema file: from the installed package, else from the repository's `schemas/`."""
    try:
        return (importlib.resources.files("worker.contracts") / "schemas" / name).read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return (Path(__file__).resolve().parents[2] / "schemas" / name).read_text("utf-8")


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """The parsed schema file `name`, read once and shared: do not modify it."""
    loaded: dict[str, Any] = json.loads(_schema_text(name))
    return loaded


def load_schema(name: str) -> dict[str, Any]:
    """A copy of the parsed schema file `name` (e.g. `REFUND_REQUESTED_SCHEMA`)."""
    copied: dict[str, Any] = json.loads(json.dumps(schema(name)))
    return copied

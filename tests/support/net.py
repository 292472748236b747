"""Network helpers for the tests."""

from __future__ import annotations

from devtools.devstack import free_port

__all__ = ["free_port"]

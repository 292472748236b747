"""The logs' public names, for the worker's roles, the sandbox and the tools.

One job per module behind it:

* `worker/observability/redaction.py`: `redact`, the last processor before rendering,
  and `register_secret` (values hidden wherever they appear);
* `worker/observability/writer.py`: `LineWriter`, the buffered line writer, and
  `flush_logs`;
* `worker/observability/setup.py`: `configure_logging` (structlog and stdlib logging
  to one writer, JSON or console lines) and `bind_process`.

Callers import from here: the roles, the tools and the sandbox, which of the worker's
code uses only the protocol library, the errors and this module (README, "Layout").
"""

from __future__ import annotations

from worker.observability.redaction import (
    MIN_SECRET_LENGTH,
    REDACTED,
    is_secret_key,
    redact,
    register_secret,
)
from worker.observability.setup import NOISY_LOGGERS, bind_process, configure_logging
from worker.observability.writer import FLUSH_INTERVAL, MAX_PENDING_BYTES, LineWriter, flush_logs

__all__ = [
    "FLUSH_INTERVAL",
    "MAX_PENDING_BYTES",
    "MIN_SECRET_LENGTH",
    "NOISY_LOGGERS",
    "REDACTED",
    "LineWriter",
    "bind_process",
    "configure_logging",
    "flush_logs",
    "is_secret_key",
    "redact",
    "register_secret",
]

"""The project's own small error hierarchy.

Adapters translate their library's exceptions into these, so services and
actors reason about outcomes (retry, dead-letter, stop) rather than about
pika, psycopg or requests.
"""

from __future__ import annotations


class RefundWorkerError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(RefundWorkerError):
    """A setting is missing or invalid; the message names the variable."""


class ProtocolError(RefundWorkerError):
    """Input that does not follow the Alipay mapi protocol."""


class DetailDataError(ProtocolError):
    """`detail_data` / batch items that break a rule of the gateway."""


class NotifyFormatError(ProtocolError):
    """A notification or its `result_details` cannot be parsed."""


class SigningError(RefundWorkerError):
    """Signing is impossible with what was given (no key, unknown sign type)."""


class EventValidationError(RefundWorkerError):
    """A bus event is not valid JSON or breaks its schema.

    `reason` is a short stable code used as the dead-letter reason header,
    `detail` a human sentence naming the field.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(RefundWorkerError):
    """Something outside the process is unavailable for now; retrying may succeed."""


class BusUnavailable(TransientError):
    """RabbitMQ could not be reached or closed the connection."""


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not be reached or closed the connection."""


class GatewayError(RefundWorkerError):
    """Talking to the Alipay gateway failed."""


class GatewayNotSent(GatewayError):
    """The request certainly did not reach the gateway (connection refused, DNS)."""


class GatewayOutcomeUnknown(GatewayError):
    """The gateway may or may not have received the request (timeout, reset, 5xx, garbage)."""


class LedgerInvariantError(RefundWorkerError):
    """A statement would break a rule of the ledger; the transaction must be rolled back."""

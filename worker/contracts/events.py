"""The bus contracts in one import: `refund.requested.v1` in, `refund.completed.v1` out.

The names callers use, re-exported from the modules that define them
(README "Events"):

* `worker.contracts.requested`: `parse_refund_requested`, `RefundRequest`;
* `worker.contracts.completed`: `build_refund_completed`,
  `validate_refund_completed`, `completed_event_id`;
* `worker.contracts.decoding`: the strict JSON decoding of a message body;
* `worker.contracts.validation`: the schema files applied, `pattern` as ECMA-262;
* `worker.contracts.schema_files`: the schema files themselves;
* `worker.contracts.amounts`, `worker.contracts.rfc3339`: money and timestamps;
* `worker.contracts.reasons`: the dead-letter reasons.
"""

from __future__ import annotations

from worker.contracts.amounts import MAX_AMOUNT
from worker.contracts.completed import (
    COMPLETED_EVENT_NAMESPACE,
    build_refund_completed,
    completed_event_id,
    validate_refund_completed,
)
from worker.contracts.decoding import MAX_EVENT_BYTES
from worker.contracts.reasons import (
    REASON_AMOUNT_OUT_OF_RANGE,
    REASON_INVALID_ENCODING,
    REASON_INVALID_JSON,
    REASON_SCHEMA_VIOLATION,
    REASON_TOO_LARGE,
)
from worker.contracts.requested import MAX_METADATA_DEPTH, RefundRequest, parse_refund_requested
from worker.contracts.rfc3339 import parse_rfc3339
from worker.contracts.schema_files import (
    REFUND_COMPLETED_SCHEMA,
    REFUND_REQUESTED_SCHEMA,
    load_schema,
)

__all__ = [
    "COMPLETED_EVENT_NAMESPACE",
    "MAX_AMOUNT",
    "MAX_EVENT_BYTES",
    "MAX_METADATA_DEPTH",
    "REASON_AMOUNT_OUT_OF_RANGE",
    "REASON_INVALID_ENCODING",
    "REASON_INVALID_JSON",
    "REASON_SCHEMA_VIOLATION",
    "REASON_TOO_LARGE",
    "REFUND_COMPLETED_SCHEMA",
    "REFUND_REQUESTED_SCHEMA",
    "RefundRequest",
    "build_refund_completed",
    "completed_event_id",
    "load_schema",
    "parse_refund_requested",
    "parse_rfc3339",
    "validate_refund_completed",
]

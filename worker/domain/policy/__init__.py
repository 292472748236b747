"""The money-safety rules, pure: what to do after each submission attempt (`attempts`),
when a batch the gateway may have taken may be released (`release`), and what to do
after each call of the OpenAPI refund channels (`openapi`).

Everything else carries these decisions out; nothing else decides them.
"""

from worker.domain.policy.attempts import (
    DATE_CODES,
    DATE_REBATCH_DELAY_SECONDS,
    MAX_BATCHES_PER_REFUND,
    RELEASING,
    RETRY_BASE_SECONDS,
    RETRY_CAP_SECONDS,
    WAITING,
    Action,
    Attempt,
    Decision,
    Outcome,
    decide,
    decide_before_send,
    decide_unsendable,
    proves_refusal,
    retry_delay,
)
from worker.domain.policy.openapi import (
    Channel,
    OpenApiAction,
    OpenApiDecision,
    SendOutcome,
    decide_coupon_notification,
    decide_openapi,
)
from worker.domain.policy.release import (
    QUERY_DELAYS_SECONDS,
    QUERY_REPEAT_SECONDS,
    RELEASE_AFTER_SECONDS,
    RELEASE_NOT_EXIST_ANSWERS,
    QueryAnswer,
    ReleaseDecision,
    decide_release,
    next_query_delay,
)

__all__ = [
    "DATE_CODES",
    "DATE_REBATCH_DELAY_SECONDS",
    "MAX_BATCHES_PER_REFUND",
    "QUERY_DELAYS_SECONDS",
    "QUERY_REPEAT_SECONDS",
    "RELEASE_AFTER_SECONDS",
    "RELEASE_NOT_EXIST_ANSWERS",
    "RELEASING",
    "RETRY_BASE_SECONDS",
    "RETRY_CAP_SECONDS",
    "WAITING",
    "Action",
    "Attempt",
    "Channel",
    "Decision",
    "OpenApiAction",
    "OpenApiDecision",
    "Outcome",
    "QueryAnswer",
    "ReleaseDecision",
    "SendOutcome",
    "decide",
    "decide_before_send",
    "decide_coupon_notification",
    "decide_openapi",
    "decide_release",
    "decide_unsendable",
    "next_query_delay",
    "proves_refusal",
    "retry_delay",
]

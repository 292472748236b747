"""The bus's names and queue arguments, derived from one exchange name (pure).

RabbitMQ behaviour these arguments rely on (checked against RabbitMQ 3.10):

* Quorum queues count *every* return of a message as a failed delivery: a
  `basic.nack`/`basic.reject` with requeue, and also a consumer's channel or
  connection closing with the message unacked. With `x-delivery-limit: N` a message
  is delivered at most N + 1 times, then the broker dead-letters it itself with
  `x-first-death-reason: delivery_limit` (and none of this adapter's reason headers).
  The header `x-delivery-count` is present from the first delivery (value 0).
  That is why the consumer holds transient failures in process rather than nacking
  at once (see `worker.adapters.rabbitmq.consumer`).
* `x-dead-letter-strategy: at-least-once` (broker-side dead-lettering with internal
  publisher confirms) only takes effect together with `x-overflow: reject-publish`
  and a dead-letter exchange; with the default `drop-head` the queue silently falls
  back to at-most-once. No `x-max-length` is set, so `reject-publish` never rejects.
* Queue arguments are fixed at declaration: declaring an existing queue with any
  other argument closes the channel with 406 PRECONDITION_FAILED naming that
  argument. Changing `delivery_limit` or `queue_type` therefore means deleting the
  (empty) queue, or using a policy instead of arguments.
* A classic queue declared without `x-queue-type` accepts a later declaration with
  `x-queue-type: classic`; a quorum queue refuses one without `x-queue-type`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from worker.domain.errors import ConfigError

REQUESTED = "refund.requested"
COMPLETED = "refund.completed"

QueueType = Literal["quorum", "classic"]
_AMQP_SHORTSTR_MAX = 255


@dataclass(frozen=True)
class Topology:
    """Every name of the bus, derived from the exchange name.

    Deriving all names from `REFUND_EXCHANGE` means one setting isolates a whole
    deployment (or a test run with a random exchange name) from any other.
    """

    REQUESTED: ClassVar[str] = REQUESTED
    COMPLETED: ClassVar[str] = COMPLETED

    exchange: str
    intake_queue: str
    dead_letter_exchange: str
    dead_letter_queue: str

    @classmethod
    def for_exchange(cls, exchange: str) -> Topology:
        """Names for the bus exchange `exchange` (a durable topic exchange)."""
        if not exchange or exchange.startswith("amq."):
            raise ConfigError(f"exchange name {exchange!r} is empty or reserved (amq.*)")
        topology = cls(
            exchange=exchange,
            intake_queue=f"{exchange}.{REQUESTED}",
            dead_letter_exchange=f"{exchange}.dlx",
            dead_letter_queue=f"{exchange}.{REQUESTED}.dlq",
        )
        if len(topology.dead_letter_queue.encode()) > _AMQP_SHORTSTR_MAX:
            raise ConfigError(f"exchange name {exchange!r} is too long for AMQP names")
        return topology


def intake_queue_arguments(
    topology: Topology, queue_type: QueueType, delivery_limit: int
) -> dict[str, object]:
    """Arguments of the intake queue.

    Quorum: a delivery limit bounds crash loops on a poison message, and
    at-least-once dead-lettering (which needs `x-overflow: reject-publish`) makes
    the broker's own dead-lettering as safe as ours. Classic: only the DLX, since
    classic queues have no delivery limit.
    """
    if queue_type == "quorum":
        if delivery_limit < 0:
            raise ConfigError(f"delivery_limit must be >= 0, got {delivery_limit}")
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": topology.dead_letter_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    if queue_type == "classic":
        return {"x-dead-letter-exchange": topology.dead_letter_exchange}
    raise ConfigError(f"queue_type must be 'quorum' or 'classic', got {queue_type!r}")


def dead_letter_queue_arguments(queue_type: QueueType) -> dict[str, object]:
    """The dead-letter queue has the intake queue's type and no limits."""
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


def mismatch_message(kind: str, name: str, declared: Mapping[str, object], reply: str) -> str:
    """The ConfigError text for a 406 PRECONDITION_FAILED on a declaration."""
    wanted = ", ".join(f"{k}={v!r}" for k, v in sorted(declared.items())) or "no arguments"
    return (
        f"{kind} {name!r} already exists with other settings than this worker declares "
        f"({wanted}); the broker says: {reply}. Delete the {kind} (it must be empty) or "
        f"configure the worker to match."
    )

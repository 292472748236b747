"""RabbitMQ (pika): the order system's bus.

The only package that speaks pika to the bus. Services never see pika: they receive
`Delivery` objects in micro-batches from `run_consumer`, return the ones to
dead-letter as `DeadLetter`, and publish `OutMessage`s with `Publisher.publish_batch`
(the plain types live in `worker.services.ports`). Every pika or socket failure
leaves the adapter as `worker.domain.errors.BusUnavailable`; a queue or exchange that
already exists with other settings leaves it as `worker.domain.errors.ConfigError`.

One job per module:

* `topology`: the names and queue arguments, derived from one exchange name;
* `wire`: pika frames to and from the plain types, dead-letter headers;
* `connection`: connection parameters, error translation, `BusConnection` and the
  declarations;
* `publisher`: durable batch publishing and dead-lettering, each batch confirmed
  by the broker (publisher confirms);
* `consumer`: the micro-batch consumer and its retry rules (`run_consumer`);
* `admin`: readiness ping, draining and deleting queues (tests, tools, operators);
* `dead_letters`: peeking at the dead-letter queue and moving it back (operators).
"""

from worker.adapters.rabbitmq.admin import bus_ping, delete_topology, drain
from worker.adapters.rabbitmq.connection import (
    BusConnection,
    connection_parameters,
    default_connection_name,
    describe_endpoint,
)
from worker.adapters.rabbitmq.consumer import (
    POLL_SECONDS,
    Backoff,
    BatchHandler,
    ConsumerSettings,
    run_consumer,
)
from worker.adapters.rabbitmq.dead_letters import (
    DeadLetterPeek,
    move_dead_letters,
    peek_dead_letters,
)
from worker.adapters.rabbitmq.publisher import Publisher, dead_letter
from worker.adapters.rabbitmq.topology import (
    COMPLETED,
    REQUESTED,
    QueueType,
    Topology,
    dead_letter_queue_arguments,
    intake_queue_arguments,
    mismatch_message,
)
from worker.adapters.rabbitmq.wire import (
    DETAIL_MAX_BYTES,
    HEADER_DEAD_LETTERED_AT,
    HEADER_DETAIL,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_REASON,
    PERSISTENT,
    dead_letter_outgoing,
    delivery_from,
    outgoing_for,
    rfc3339,
    truncate_utf8,
)

__all__ = [
    "COMPLETED",
    "DETAIL_MAX_BYTES",
    "HEADER_DEAD_LETTERED_AT",
    "HEADER_DETAIL",
    "HEADER_ORIGINAL_ROUTING_KEY",
    "HEADER_REASON",
    "PERSISTENT",
    "POLL_SECONDS",
    "REQUESTED",
    "Backoff",
    "BatchHandler",
    "BusConnection",
    "ConsumerSettings",
    "DeadLetterPeek",
    "Publisher",
    "QueueType",
    "Topology",
    "bus_ping",
    "connection_parameters",
    "dead_letter",
    "dead_letter_outgoing",
    "dead_letter_queue_arguments",
    "default_connection_name",
    "delete_topology",
    "delivery_from",
    "describe_endpoint",
    "drain",
    "intake_queue_arguments",
    "mismatch_message",
    "move_dead_letters",
    "outgoing_for",
    "peek_dead_letters",
    "rfc3339",
    "run_consumer",
    "truncate_utf8",
]

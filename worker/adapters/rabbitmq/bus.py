"""The adapter's former single module, now split into the modules of this package.

Only the names that `worker/entrypoints/roles/relay.py` and `replay.py` import from
here remain, until those import the package; new code imports
`worker.adapters.rabbitmq` (and the plain types from `worker.services.ports`).
"""

from worker.adapters.rabbitmq.connection import BusConnection, default_connection_name
from worker.adapters.rabbitmq.publisher import Publisher
from worker.adapters.rabbitmq.topology import Topology
from worker.adapters.rabbitmq.wire import delivery_from
from worker.services.ports import OutMessage

__all__ = [
    "BusConnection",
    "OutMessage",
    "Publisher",
    "Topology",
    "default_connection_name",
    "delivery_from",
]

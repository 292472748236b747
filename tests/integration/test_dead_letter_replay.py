"""The dead-letter queue against the real broker: a peek leaves every message in place; a
replay moves them back to the bus without their dead-letter headers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from worker.adapters.rabbitmq import (
    HEADER_REASON,
    BusConnection,
    Publisher,
    Topology,
    dead_letter,
    delete_topology,
    drain,
    peek_dead_letters,
)
from worker.services.ports import DeadLetter, Delivery
from worker.services.replay import replay_dead_letters

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def topology() -> Iterator[Topology]:
    topo = Topology.for_exchange(f"test-dlq-{uuid.uuid4().hex[:8]}")
    with BusConnection(AMQP_URL) as bus:
        bus.declare_intake(topo, queue_type="quorum", delivery_limit=5)
    yield topo
    delete_topology(AMQP_URL, topo)


def dead(topology: Topology, reasons: list[str]) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in reasons]
    letters = [
        DeadLetter(
            Delivery(
                delivery_tag=i,
                body=f'{{"n": {i}}}'.encode(),
                message_id=mid,
                headers={"x-tenant": "t1"},
                redelivered=False,
                content_type="application/json",
                routing_key="refund.requested",
            ),
            reason,
            f"detail {i}",
        )
        for i, (reason, mid) in enumerate(zip(reasons, ids, strict=True))
    ]
    with BusConnection(AMQP_URL) as bus:
        dead_letter(Publisher(bus, topology), letters, now=datetime.now(UTC))
    return ids


def test_a_peek_takes_nothing_away(topology: Topology) -> None:
    dead(topology, ["invalid_json", "schema_violation", "invalid_json"])
    first = peek_dead_letters(AMQP_URL, topology, 2)
    assert first.total == 3
    assert [d.headers[HEADER_REASON] for d in first.sample] == ["invalid_json", "schema_violation"]
    again = peek_dead_letters(AMQP_URL, topology, 10)
    assert again.total == 3 and len(again.sample) == 3
    assert [d.body for d in again.sample[:2]] == [d.body for d in first.sample]


def test_a_replay_moves_them_back_to_intake_without_dead_letter_headers(
    topology: Topology,
) -> None:
    ids = dead(topology, ["invalid_json", "schema_violation", "conflicting_duplicate"])
    assert replay_dead_letters(AMQP_URL, topology, 2, operator="alice") == 2
    assert peek_dead_letters(AMQP_URL, topology, 10).total == 1
    back = drain(AMQP_URL, topology.intake_queue, expect=2)
    assert [d.message_id for d in back] == ids[:2]
    for delivery in back:
        assert dict(delivery.headers) == {"x-tenant": "t1"}
        assert delivery.routing_key == "refund.requested"
    assert replay_dead_letters(AMQP_URL, topology, 10) == 1
    assert peek_dead_letters(AMQP_URL, topology, 10).total == 0

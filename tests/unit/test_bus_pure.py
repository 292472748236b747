"""The pure parts of the RabbitMQ adapter: names, arguments, wire properties, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pika
import pika.spec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.adapters.rabbitmq import (
    COMPLETED,
    DETAIL_MAX_BYTES,
    HEADER_DEAD_LETTERED_AT,
    HEADER_DETAIL,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_REASON,
    REQUESTED,
    Backoff,
    ConsumerSettings,
    Topology,
    connection_parameters,
    dead_letter_outgoing,
    dead_letter_queue_arguments,
    delivery_from,
    describe_endpoint,
    intake_queue_arguments,
    mismatch_message,
    outgoing_for,
    rfc3339,
    truncate_utf8,
)
from worker.domain.errors import ConfigError
from worker.services.ports import DeadLetter, Delivery, OutMessage

URL = "amqp://user:s3cret-pass@rabbit.example:5673/orders"


def test_topology_names_derive_from_the_exchange() -> None:
    topo = Topology.for_exchange("refunds")
    assert topo.exchange == "refunds"
    assert topo.intake_queue == "refunds.refund.requested"
    assert topo.dead_letter_exchange == "refunds.dlx"
    assert topo.dead_letter_queue == "refunds.refund.requested.dlq"
    assert (Topology.REQUESTED, Topology.COMPLETED) == (REQUESTED, COMPLETED)
    assert (REQUESTED, COMPLETED) == ("refund.requested", "refund.completed")


@pytest.mark.parametrize("bad", ["", "amq.topic", "x" * 240])
def test_topology_refuses_unusable_exchange_names(bad: str) -> None:
    with pytest.raises(ConfigError):
        Topology.for_exchange(bad)


def test_quorum_intake_arguments_enable_safe_dead_lettering() -> None:
    args = intake_queue_arguments(Topology.for_exchange("r"), "quorum", 7)
    assert args == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": "r.dlx",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert dead_letter_queue_arguments("quorum") == {"x-queue-type": "quorum"}


def test_classic_intake_arguments_only_name_the_dlx() -> None:
    assert intake_queue_arguments(Topology.for_exchange("r"), "classic", 5) == {
        "x-dead-letter-exchange": "r.dlx"
    }
    assert dead_letter_queue_arguments("classic") == {}


def test_intake_arguments_refuse_bad_settings() -> None:
    topo = Topology.for_exchange("r")
    with pytest.raises(ConfigError, match="queue_type"):
        intake_queue_arguments(topo, "stream", 5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="delivery_limit"):
        intake_queue_arguments(topo, "quorum", -1)


def test_connection_parameters_name_the_connection_and_set_timeouts() -> None:
    params = connection_parameters(
        URL, connection_name="refund-worker.intake@h#1", heartbeat=30, blocked_connection_timeout=45
    )
    assert params.client_properties["connection_name"] == "refund-worker.intake@h#1"
    assert params.heartbeat == 30
    assert params.blocked_connection_timeout == 45
    assert describe_endpoint(params) == {"host": "rabbit.example", "port": 5673, "vhost": "orders"}
    assert "s3cret" not in repr(describe_endpoint(params))


def test_connection_parameters_let_the_url_query_win() -> None:
    params = connection_parameters(URL + "?heartbeat=10", connection_name="n", heartbeat=30)
    assert params.heartbeat == 10


def test_an_invalid_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        connection_parameters("amqp://u:s3cret@host:notaport/", connection_name="n")
    assert "AMQP_URL" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_out_message_goes_out_persistent_with_id_and_type() -> None:
    message = OutMessage(routing_key=COMPLETED, body=b"{}", message_id="e-1", headers={"k": "v"})
    wire = outgoing_for(message, "refunds")
    assert (wire.exchange, wire.routing_key, wire.body) == ("refunds", COMPLETED, b"{}")
    assert wire.properties.delivery_mode == 2
    assert wire.properties.message_id == "e-1"
    assert wire.properties.content_type == "application/json"
    assert wire.properties.headers == {"k": "v"}
    other = outgoing_for(OutMessage(COMPLETED, b"{}", "e-2", exchange="elsewhere"), "refunds")
    assert other.exchange == "elsewhere"
    assert other.properties.headers is None


def _pika_delivery(**properties: object) -> Delivery:
    method = pika.spec.Basic.Deliver(
        delivery_tag=42, redelivered=True, exchange="refunds", routing_key=REQUESTED
    )
    return delivery_from(method, pika.BasicProperties(**properties), b'{"a": 1}')


def test_delivery_from_pika_keeps_what_a_dead_letter_needs() -> None:
    delivery = _pika_delivery(
        message_id="m-1",
        content_type="application/json",
        headers={"h": 1},
        correlation_id="c-1",
        timestamp=1700000000,
        app_id="orders",
        expiration="60000",
        user_id="guest",
        delivery_mode=2,
    )
    assert delivery.delivery_tag == 42
    assert delivery.redelivered is True
    assert delivery.routing_key == REQUESTED
    assert delivery.body == b'{"a": 1}'
    assert (delivery.message_id, delivery.content_type) == ("m-1", "application/json")
    assert delivery.headers == {"h": 1}
    assert delivery.properties == {
        "correlation_id": "c-1",
        "timestamp": 1700000000,
        "app_id": "orders",
    }


def test_delivery_from_pika_without_properties() -> None:
    delivery = _pika_delivery()
    assert delivery.message_id is None
    assert delivery.content_type is None
    assert delivery.headers == {}
    assert delivery.properties == {}


def test_dead_letter_keeps_the_original_and_adds_the_reason_headers() -> None:
    original = _pika_delivery(
        message_id="m-1",
        content_type="text/plain",
        headers={"x-delivery-count": 2},
        correlation_id="c-1",
    )
    now = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    wire = dead_letter_outgoing(
        DeadLetter(original, "schema_violation", "amount must be > 0"),
        Topology.for_exchange("refunds"),
        now,
    )
    assert wire.exchange == "refunds.dlx"
    assert wire.routing_key == REQUESTED
    assert wire.body == original.body
    props = wire.properties
    assert (props.message_id, props.content_type, props.correlation_id) == (
        "m-1",
        "text/plain",
        "c-1",
    )
    assert props.delivery_mode == 2
    assert props.headers == {
        "x-delivery-count": 2,
        HEADER_REASON: "schema_violation",
        HEADER_DETAIL: "amount must be > 0",
        HEADER_DEAD_LETTERED_AT: "2024-05-06T07:08:09.123Z",
        HEADER_ORIGINAL_ROUTING_KEY: REQUESTED,
    }
    assert original.headers == {"x-delivery-count": 2}  # the delivery is untouched


def test_dead_letter_detail_is_cut_and_a_reason_is_required() -> None:
    original = _pika_delivery(message_id="m-1")
    topo = Topology.for_exchange("refunds")
    now = datetime.now(UTC)
    wire = dead_letter_outgoing(DeadLetter(original, "invalid_json", "é" * 5000), topo, now)
    detail = wire.properties.headers[HEADER_DETAIL]
    assert len(detail.encode()) <= DETAIL_MAX_BYTES
    assert detail.endswith("…")
    with pytest.raises(ValueError):
        dead_letter_outgoing(DeadLetter(original, "", "no reason"), topo, now)


@given(st.text(max_size=3000), st.integers(min_value=4, max_value=2000))
def test_truncate_utf8_is_a_bounded_prefix(text: str, limit: int) -> None:
    cut = truncate_utf8(text, limit)
    if len(text.encode()) <= limit:
        assert cut == text
    else:
        assert len(cut.encode()) <= limit
        assert cut.endswith("…")
        assert text.startswith(cut[:-1])


def test_rfc3339_is_utc_with_z() -> None:
    moment = datetime(2024, 1, 2, 11, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    assert rfc3339(moment) == "2024-01-02T03:00:00.000Z"


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=4.0)
    delays = [backoff.next() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next() <= 0.5
    assert Backoff(base=1.0, cap=0.1).next() <= 0.1  # a cap below the base wins


def test_mismatch_message_names_the_queue_and_the_broker_reason() -> None:
    text = mismatch_message(
        "queue",
        "refunds.refund.requested",
        {"x-delivery-limit": 3},
        "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue "
        "'refunds.refund.requested' in vhost '/': received '3' but current is '5'",
    )
    assert "queue 'refunds.refund.requested'" in text
    assert "x-delivery-limit=3" in text
    assert "current is '5'" in text


def test_consumer_settings_refuse_batches_larger_than_the_prefetch() -> None:
    with pytest.raises(ConfigError, match="prefetch"):
        ConsumerSettings(prefetch=100, max_batch=200, connection_name="n")
    with pytest.raises(ConfigError):
        ConsumerSettings(max_wait=-1, connection_name="n")
    with pytest.raises(ConfigError):
        ConsumerSettings(max_backoff=0, connection_name="n")
    assert ConsumerSettings(connection_name="n").max_batch == 500

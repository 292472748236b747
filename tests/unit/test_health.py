"""Loop heartbeats and the `/healthz` and `/readyz` answers of the roles without HTTP of their own.

The rules run on an injected clock; the HTTP tests serve them, with `/metrics`, from the
server the roles start on `METRICS_PORT`, on a free port.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from tests.support.net import free_port
from worker.adapters.dramatiq.jobs import _BeatingConsumer
from worker.domain.errors import DatabaseUnavailable
from worker.entrypoints.roles._common import run_loop
from worker.observability import health
from worker.observability.health import Heartbeats
from worker.observability.metrics import serve


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def beats(clock: FakeClock) -> Heartbeats:
    return Heartbeats(clock)


# --- the rules -------------------------------------------------------------------------


def test_a_loop_is_live_until_silent_longer_than_its_allowed_silence(
    clock: FakeClock, beats: Heartbeats
) -> None:
    loop = beats.loop("relay", allowed_silence=30)
    loop.beat()
    clock.now += 30
    assert beats.liveness().status == 200
    clock.now += 0.5
    answer = beats.liveness()
    assert answer.status == 503
    assert answer.body == "stale: relay silent for 30.5 s (allowed 30 s)\n"


def test_a_beat_makes_a_stale_loop_fresh_again(clock: FakeClock, beats: Heartbeats) -> None:
    loop = beats.loop("scheduler", allowed_silence=30)
    clock.now += 45
    assert beats.liveness().status == 503
    loop.beat()
    assert beats.liveness() == health.Answer(200, "ok\n")


def test_silence_is_counted_from_registration_until_the_first_beat(
    clock: FakeClock, beats: Heartbeats
) -> None:
    beats.loop("intake", allowed_silence=30)
    clock.now += 29
    assert beats.liveness().status == 200
    clock.now += 2
    assert "intake silent for 31.0 s" in beats.liveness().body


def test_each_loop_has_its_own_allowed_silence_and_only_stale_ones_are_named(
    clock: FakeClock, beats: Heartbeats
) -> None:
    fast = beats.loop("consumer q", allowed_silence=10)
    slow = beats.loop("consumer q.DQ", allowed_silence=60)
    clock.now += 20
    answer = beats.liveness()
    assert answer.status == 503
    assert "consumer q silent for 20.0 s (allowed 10 s)" in answer.body
    assert "q.DQ" not in answer.body
    fast.beat()
    clock.now += 45
    fast.beat()
    assert "consumer q.DQ silent for 65.0 s (allowed 60 s)" in beats.liveness().body
    slow.beat()
    assert beats.liveness().status == 200


def test_waiting_for_a_dependency_keeps_a_loop_live_but_does_not_make_it_ready(
    clock: FakeClock, beats: Heartbeats
) -> None:
    loop = beats.loop("intake", allowed_silence=30)
    for _ in range(10):  # the broker is away for five minutes; reconnect attempts beat
        clock.now += 29
        loop.beat(completed=False)
        assert beats.liveness().status == 200
    assert beats.readiness() == health.Answer(
        503, "starting: intake has not completed an iteration\n"
    )
    loop.beat()
    assert beats.readiness() == health.Answer(200, "ok\n")
    clock.now += 100  # readiness does not expire; liveness does
    loop.beat(completed=False)
    assert beats.readiness().status == 200


def test_the_role_is_ready_once_every_loop_completed_its_first_iteration(
    beats: Heartbeats,
) -> None:
    assert beats.readiness().status == 503  # no loop started yet
    assert beats.liveness().status == 200  # but nothing is stuck either
    first = beats.loop("consumer a")
    second = beats.loop("consumer b")
    first.beat()
    answer = beats.readiness()
    assert answer.status == 503 and "consumer b" in answer.body and "consumer a" not in answer.body
    second.beat()
    assert beats.readiness().status == 200


def test_a_name_registers_once(beats: Heartbeats) -> None:
    assert beats.loop("relay", 30) is beats.loop("relay", 99)
    with pytest.raises(ValueError):
        beats.loop("bad", 0)


def test_a_stale_loop_is_logged_under_a_stable_event(
    clock: FakeClock, beats: Heartbeats, capsys: pytest.CaptureFixture[str]
) -> None:
    beats.loop("relay", 30)
    clock.now += 31
    beats.liveness()
    assert "health.stale" in capsys.readouterr().out


# --- the loops that beat ---------------------------------------------------------------


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def process_beats(monkeypatch: pytest.MonkeyPatch, beats: Heartbeats) -> Heartbeats:
    monkeypatch.setattr(health, "HEARTBEATS", beats)
    return beats


def _running(step: Callable[[], float], stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=run_loop, args=("relay", step, stop), daemon=True)
    thread.start()
    return thread


def test_run_loop_stays_live_while_its_dependency_is_down(
    clock: FakeClock, process_beats: Heartbeats
) -> None:
    down = threading.Event()
    down.set()
    calls: list[float] = []

    def step() -> float:
        calls.append(clock.now)
        if down.is_set():
            raise DatabaseUnavailable("connection refused")
        return 0.01

    stop = threading.Event()
    thread = _running(step, stop)
    try:
        _wait(lambda: len(calls) >= 1)
        clock.now += 300  # five minutes of outage, the loop retrying all along
        _wait(lambda: calls[-1] == clock.now)
        _wait(lambda: process_beats.liveness().status == 200)
        assert process_beats.readiness().status == 503
        down.clear()
        _wait(lambda: process_beats.readiness().status == 200)
    finally:
        stop.set()
        thread.join(5)


def test_a_stuck_step_turns_liveness_to_503(clock: FakeClock, process_beats: Heartbeats) -> None:
    stuck = threading.Event()
    release = threading.Event()

    def step() -> float:
        stuck.set()
        release.wait(10)  # a deadlock, as far as the loop can tell
        return 0.0

    stop = threading.Event()
    thread = _running(step, stop)
    try:
        _wait(stuck.is_set)
        clock.now += 31
        answer = process_beats.liveness()
        assert answer.status == 503 and answer.body.startswith("stale: relay silent for 31.0 s")
    finally:
        stop.set()
        release.set()
        thread.join(5)


class ListConsumer:
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.acked: list[Any] = []
        self.closed = False

    def __next__(self) -> Any:
        if not self.items:
            raise StopIteration
        return self.items.pop(0)

    def ack(self, message: Any) -> None:
        self.acked.append(message)

    def close(self) -> None:
        self.closed = True


def test_every_turn_of_a_dramatiq_consumer_beats(clock: FakeClock, beats: Heartbeats) -> None:
    inner = ListConsumer(["m1", None])
    loop = beats.loop("consumer q", allowed_silence=30)
    consumer = _BeatingConsumer(inner, loop)  # type: ignore[arg-type]
    clock.now += 40
    assert next(consumer) == "m1"
    assert beats.liveness().status == 200 and beats.readiness().status == 200
    clock.now += 40
    assert next(consumer) is None  # idle: the consumer thread's loop still turns
    assert beats.liveness().status == 200
    consumer.ack("m1")
    consumer.close()
    assert inner.acked == ["m1"] and inner.closed


# --- served over HTTP with /metrics ----------------------------------------------------


@pytest.fixture
def server(beats: Heartbeats) -> Iterator[tuple[str, CollectorRegistry]]:
    registry = CollectorRegistry()
    counter = Counter("refund_test_things_total", "Things", ["kind"], registry=registry)
    counter.labels("a").inc(3)
    port = free_port()
    httpd = serve(port, "127.0.0.1", heartbeats=beats, registry=registry)
    try:
        yield f"http://127.0.0.1:{port}", registry
    finally:
        httpd.shutdown()
        httpd.server_close()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_a_loop_that_stops_beating_turns_healthz_to_503(
    server: tuple[str, CollectorRegistry], clock: FakeClock, beats: Heartbeats
) -> None:
    base, _ = server
    loop = beats.loop("scheduler", allowed_silence=30)
    assert get(f"{base}/readyz")[0] == 503
    loop.beat()
    assert get(f"{base}/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    assert get(f"{base}/readyz") == (200, "text/plain; charset=utf-8", "ok\n")
    clock.now += 31
    status, _, body = get(f"{base}/healthz")
    assert (status, body) == (503, "stale: scheduler silent for 31.0 s (allowed 30 s)\n")
    assert get(f"{base}/readyz")[0] == 200  # not restarted for being unready, nor the reverse
    loop.beat()
    assert get(f"{base}/healthz")[0] == 200


def test_metrics_are_served_as_prometheus_client_serves_them(
    server: tuple[str, CollectorRegistry],
) -> None:
    base, registry = server
    status, content_type, body = get(f"{base}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert body == generate_latest(registry).decode()
    assert 'refund_test_things_total{kind="a"} 3.0' in body

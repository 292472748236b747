"""Heartbeats of a role's loops, and the `/healthz` and `/readyz` answers built on them.

A role that serves no HTTP of its own (intake, worker, relay, scheduler) proves it is
making progress by its loops' heartbeats, served on `METRICS_PORT` beside `/metrics`
(`worker.observability.metrics.serve_if_configured`). Each loop registers once with the
silence it may keep before it counts as stuck, then beats on every turn:

* `beat()`: an iteration completed (a consumer poll, a packing round, a relay round);
* `beat(completed=False)`: the loop is alive but only waiting, to reconnect to the
  broker or the database, or to retry. A dependency outage must not restart every pod,
  so this keeps the loop live; it does not make the role ready.

`/healthz` (liveness) answers 200 `ok` while every registered loop beat within its
allowed silence (counted from its registration until its first beat), and 503 naming
each stale loop with its age otherwise. Only a loop that makes no turn at all, one
deadlocked or blocked without a timeout, goes stale.
`/readyz` (readiness) answers 200 once every registered loop has completed an iteration
(the role reached its broker or database at least once), 503 before that, and while
no loop has registered yet.

The loops and where they beat:

* intake: `worker.adapters.rabbitmq.consumer`; the session beats on every turn of its
  I/O (`_Session._events`: idle polls, filling a micro-batch, waits between retries
  while the database is away), the reconnect loop on every attempt to reach the broker.
* relay and scheduler: `worker.entrypoints.roles._common.run_loop`, once per step,
  `completed=False` when the step failed with a `TransientError`.
* worker (dramatiq): dramatiq's middleware hooks fire only around messages, and its
  worker threads wait on an in-process queue with no hook at all, so neither says
  anything about an idle worker. What turns at least every `worker_timeout` (1 s) idle
  or busy is each consumer thread's `for message in consumer` loop: the broker's
  consumer yields a message, or None after the idle timeout, and the thread enqueues
  due delayed messages between turns. `worker.adapters.dramatiq.jobs` wraps that
  consumer so each turn beats (one loop per queue, `consumer <queue>`), and each
  (re)connection attempt beats `completed=False`: dramatiq restarts a consumer that
  lost the broker every 3 s. An actor stuck inside a message is bounded by dramatiq's
  TimeLimit middleware and the gateway's timeouts, not by this probe.

Answers are plain text and name only loops and ages, never settings or errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The silence allowed to a loop that wakes at least every second or so: long enough for
# a slow transaction, a connection attempt that times out and a backoff, far shorter
# than the minutes a deadlock would last.
DEFAULT_SILENCE = 30.0


class Heartbeat:
    """One loop's beats; `beat` is cheap enough to call on every turn."""

    def __init__(self, name: str, allowed_silence: float, clock: Clock) -> None:
        if allowed_silence <= 0:
            raise ValueError("a loop's allowed silence must be positive")
        self.name = name
        self.allowed_silence = allowed_silence
        self._clock = clock
        self.last = clock()  # registration counts as the first sign of life
        self.completed = False

    def beat(self, completed: bool = True) -> None:
        """Record a turn of the loop: a completed iteration, or only waiting (`False`)."""
        self.last = self._clock()
        if completed:
            self.completed = True

    def age(self) -> float:
        return max(0.0, self._clock() - self.last)

    def stale(self) -> bool:
        return self.age() > self.allowed_silence


@dataclass(frozen=True)
class Answer:
    status: int  # 200 or 503
    body: str


class Heartbeats:
    """The loops of one process, by name."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._loops: dict[str, Heartbeat] = {}
        self._lock = threading.Lock()

    def loop(self, name: str, allowed_silence: float = DEFAULT_SILENCE) -> Heartbeat:
        """The heartbeat of loop `name`, registered on the first call (later calls share it)."""
        with self._lock:
            heartbeat = self._loops.get(name)
            if heartbeat is None:
                heartbeat = self._loops[name] = Heartbeat(name, allowed_silence, self._clock)
            return heartbeat

    def _snapshot(self) -> list[Heartbeat]:
        with self._lock:
            return sorted(self._loops.values(), key=lambda h: h.name)

    def liveness(self) -> Answer:
        """200 while no registered loop is silent longer than it may be, else 503."""
        stale = [(h, h.age()) for h in self._snapshot()]
        stale = [(h, age) for h, age in stale if age > h.allowed_silence]
        if not stale:
            return Answer(200, "ok\n")
        for heartbeat, age in stale:
            log.warning(
                "health.stale",
                loop=heartbeat.name,
                age_seconds=round(age, 1),
                allowed_seconds=heartbeat.allowed_silence,
            )
        lines = [
            f"stale: {h.name} silent for {age:.1f} s (allowed {h.allowed_silence:g} s)"
            for h, age in stale
        ]
        return Answer(503, "\n".join(lines) + "\n")

    def readiness(self) -> Answer:
        """200 once every registered loop has completed an iteration (and one has registered)."""
        loops = self._snapshot()
        if not loops:
            return Answer(503, "starting: no loop has started yet\n")
        waiting = [h.name for h in loops if not h.completed]
        if waiting:
            lines = [f"starting: {name} has not completed an iteration" for name in waiting]
            return Answer(503, "\n".join(lines) + "\n")
        return Answer(200, "ok\n")


HEARTBEATS = Heartbeats()


def loop(name: str, allowed_silence: float = DEFAULT_SILENCE) -> Heartbeat:
    """The heartbeat of loop `name` in this process (see the module docstring)."""
    return HEARTBEATS.loop(name, allowed_silence)


def with_health_routes(app: WSGIApp, heartbeats: Heartbeats | None = None) -> WSGIApp:
    """`app` with `GET /healthz` and `GET /readyz` answered from `heartbeats` in front of it."""

    def routed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz"):
            return app(environ, start_response)
        beats = heartbeats if heartbeats is not None else HEARTBEATS
        answer = beats.liveness() if path == "/healthz" else beats.readiness()
        body = answer.body.encode()
        reason = "OK" if answer.status == 200 else "Service Unavailable"
        start_response(
            f"{answer.status} {reason}",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return routed

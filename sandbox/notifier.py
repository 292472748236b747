"""Delivery of `batch_refund_notify`: a delay queue and a pool of sender threads.

Each accepted batch with a `notify_url` gets one notification. It is first
delivered after the processing delay, then again after each gap of the
resend schedule (`sandbox.protocol.RESEND_GAPS`, scaled by the time
factor) until a delivery is answered `200` with the body `success`
(surrounding whitespace allowed, as Alipay allows it:
`sandbox.protocol.is_acknowledgement`), or the eighth delivery went
unanswered (given up). The `notify_id` and
content stay the same across deliveries; `notify_time` and the signature
are made afresh for each.

The queue is a heap of (due, sequence, notify_id) guarded by one condition
variable; rescheduling pushes a new entry and makes the old one stale. The
sender threads pop due entries and deliver them (`Poster`), each through its
own `requests.Session`, so connections to a receiver are kept alive and
reused (one the receiver closed meanwhile is replaced before use). A
delivery has `min(3, timeout)` seconds to connect and `timeout` seconds for
every later socket operation; there are no retries, redirects are not
followed, proxy settings of the environment are ignored, and at most 1 KiB
of the answer is read. Failures are named as `requests` names them
(`ConnectionError`, `ConnectTimeout`, `ReadTimeout`, `SSLError`; a URL
that cannot be posted to is `InvalidURL`), and only a `200` whose body is
`success` (give or take whitespace) acknowledges. The delivery faults
(`notify_lost`, `notify_duplicate`, `notify_reorder`, `notify_bad_sign`) are
drawn here, per delivery attempt.

What to send and how it went is the service's business (`Deliveries`): this
module only knows about time, threads and HTTP.
"""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import requests
import structlog
import urllib3

from sandbox.faults import Fault
from sandbox.protocol import is_acknowledgement

__all__ = ["Deliveries", "Delivery", "Notifier", "Outcome", "Poster"]

log = structlog.get_logger(__name__)

_CONNECT_TIMEOUT = 3.0
_MAX_ANSWER_BYTES = 1024


@dataclass(frozen=True)
class Delivery:
    """One POST to make: where, the form body, its content type."""

    url: str
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Outcome:
    """How one POST went: status (None when no HTTP answer) and whether it said `success`."""

    status: int | None
    acknowledged: bool
    error: str | None


class Deliveries(Protocol):
    """What the notifier needs from the service."""

    def prepare(self, notify_id: str, *, forged: bool) -> Delivery | None:
        """The POST for a notification still pending, or None when it is settled."""

    def delivered(self, notify_id: str, kind: str, outcome: Outcome | None) -> float | None:
        """Record a delivery (`outcome` None for a lost one); the delay before the next, or None."""

    def draw(self, name: str) -> Fault | None:
        """Roll the dice for a delivery fault."""


class Notifier:
    """The delay queue and the sender threads (see the module docstring)."""

    def __init__(self, deliveries: Deliveries, *, senders: int, timeout: float) -> None:
        self._deliveries = deliveries
        self._senders = senders
        self._timeout = (min(_CONNECT_TIMEOUT, timeout), timeout)
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, int] = {}
        self._seq = 0
        self._running = False
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._delivered = 0
        # notify_id -> delivery count at which it is released; ids whose
        # current attempt was already held once are in _hold_done.
        self._held: dict[str, int] = {}
        self._hold_done: set[str] = set()

    # -- control ------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        for index in range(self._senders):
            thread = threading.Thread(target=self._run, name=f"sandbox-notify-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def schedule(self, notify_id: str, delay: float) -> None:
        """Deliver `notify_id` after `delay` seconds (replacing any earlier schedule)."""
        with self._cond:
            self._push(notify_id, delay)
            self._cond.notify()

    def queued(self) -> int:
        """Notifications waiting in the queue or being delivered right now."""
        with self._cond:
            return len(self._live) + self._busy

    # -- internals ----------------------------------------------------------

    def _push(self, notify_id: str, delay: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), self._seq, notify_id))
        self._live[notify_id] = self._seq

    def _next_due(self) -> str | None:
        """Block until an entry is due; None when stopping."""
        with self._cond:
            while self._running:
                now = time.monotonic()
                while self._heap and self._live.get(self._heap[0][2]) != self._heap[0][1]:
                    heapq.heappop(self._heap)  # stale entry
                if self._heap and self._heap[0][0] <= now:
                    _, _, notify_id = heapq.heappop(self._heap)
                    del self._live[notify_id]
                    if self._held.pop(notify_id, None) is not None:
                        self._hold_done.add(notify_id)  # its hold expired
                    self._busy += 1
                    return notify_id
                self._cond.wait(self._heap[0][0] - now if self._heap else None)
            return None

    def _run(self) -> None:
        poster = Poster(*self._timeout)
        try:
            while True:
                notify_id = self._next_due()
                if notify_id is None:
                    return
                try:
                    self._attempt(poster, notify_id)
                except Exception:  # a bug must not kill the sender thread
                    log.exception("sandbox.notify.crashed", notify_id=notify_id)
                    self.schedule(notify_id, 1.0)
                finally:
                    with self._cond:
                        self._busy -= 1
        finally:
            poster.close()

    def _attempt(self, poster: Poster, notify_id: str) -> None:
        with self._cond:
            was_held = notify_id in self._hold_done
            self._hold_done.discard(notify_id)
        if not was_held:
            reorder = self._deliveries.draw("notify_reorder")
            if reorder is not None:
                self._hold(notify_id, reorder)
                return
        delivery = self._deliveries.prepare(notify_id, forged=False)
        if delivery is None:
            return
        if self._deliveries.draw("notify_lost") is not None:
            log.info("sandbox.notify.lost", notify_id=notify_id)
            self._after(notify_id, self._deliveries.delivered(notify_id, "lost", None))
            return
        if self._deliveries.draw("notify_bad_sign") is not None:
            forged = self._deliveries.prepare(notify_id, forged=True)
            if forged is not None:
                self._deliveries.delivered(notify_id, "forged", poster.post(forged))
        outcome = poster.post(delivery)
        next_delay = self._deliveries.delivered(notify_id, "genuine", outcome)
        if self._deliveries.draw("notify_duplicate") is not None:
            next_delay = self._deliveries.delivered(notify_id, "duplicate", poster.post(delivery))
        self._after(notify_id, next_delay)

    def _hold(self, notify_id: str, fault: Fault) -> None:
        after = int(fault.option("after"))
        with self._cond:
            self._held[notify_id] = self._delivered + after
            self._push(notify_id, float(fault.option("max_hold_seconds")))
        log.info("sandbox.notify.held", notify_id=notify_id, release_after=after)

    def _after(self, notify_id: str, next_delay: float | None) -> None:
        with self._cond:
            self._delivered += 1
            released = [nid for nid, at in self._held.items() if at <= self._delivered]
            for nid in released:
                del self._held[nid]
                self._hold_done.add(nid)
                self._push(nid, 0.0)
            if next_delay is not None:
                self._push(notify_id, next_delay)
            # One waiter per new entry (a waiter recomputes its timeout from the
            # heap): waking every sender after every delivery cost a thread
            # switch per sender for each notification.
            pushed = len(released) + (next_delay is not None)
            if pushed:
                self._cond.notify(pushed)


class Poster:
    """POSTs deliveries through one `requests.Session`; one per sender thread.

    `connect_timeout` bounds opening a connection, `read_timeout` every
    later socket operation.
    """

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        self._session.trust_env = False  # no proxies or credentials from the environment

    def post(self, delivery: Delivery) -> Outcome:
        """Deliver one form; never raises for network trouble (the Outcome names it)."""
        try:
            with self._session.post(
                delivery.url,
                data=delivery.body,
                headers={"Content-Type": delivery.content_type},
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                # An answer longer than any acknowledgement is not read to its end
                # (and its connection is then closed, not reused).
                answer = response.raw.read(_MAX_ANSWER_BYTES + 1, decode_content=True)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            return Outcome(status=None, acknowledged=False, error=_error_name(exc))
        acknowledged = len(answer) <= _MAX_ANSWER_BYTES and is_acknowledgement(
            response.status_code, answer
        )
        return Outcome(status=response.status_code, acknowledged=acknowledged, error=None)

    def close(self) -> None:
        self._session.close()


_INVALID_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    urllib3.exceptions.LocationValueError,
)


def _error_name(exc: BaseException) -> str:
    """The ledger's name of a failed delivery: the `requests` exception it amounts to."""
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
        return "SSLError"
    if isinstance(exc, requests.ConnectTimeout):
        return "ConnectTimeout"
    if isinstance(exc, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
        return "ReadTimeout"  # the latter: the answer's body stalled
    if isinstance(exc, _INVALID_URL):
        return "InvalidURL"
    return "ConnectionError"

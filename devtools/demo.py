"""`refund-worker demo`: the whole pipeline on this machine against the sandbox gateway.

Starts the sandbox and every role with a fresh database and bus names, publishes a
few hundred sample refund requests (a trade refunded twice, a reason full of the
gateway's separator characters, a duplicate message, a conflicting duplicate, an
invalid message, a refund above its trade amount, a refund of a closed trade) and a
few OpenAPI ones (`trade`: `alipay.trade.refund`, a trade refunded twice, once named by
its order number, and a closed trade; `coupon`: `alipay.fund.coupon.order.refund`, a red
envelope refunded twice), waits for every `refund.completed`, prints a summary by channel
and removes what it created.

`--mode pwd` runs the password service instead (`refund_fastpay_by_platform_pwd`): the
operator console runs too, the demo prints its address, an operator name and a password
made for this run only, and the sandbox's payment password; every batch waits until
someone approves it in the console and types that payment password on the sandbox's
Alipay page. The demo ends when every refund completed or at `--timeout`.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devtools.devstack import ROLES, Stack, StackConfig

if TYPE_CHECKING:
    from sandbox.client import SandboxClient

DEMO_OPERATOR = "demo"
# The sandbox's default payment password (`refund-worker sandbox --help`).
SANDBOX_PAYMENT_PASSWORD = "sandbox-pay-123456"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refunds", type=int, default=300, help="sample refunds (default 300)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait (default 120; 900 with --mode pwd, where a person approves)",
    )
    parser.add_argument(
        "--mode",
        choices=("nopwd", "pwd"),
        default="nopwd",
        help="the refund service: nopwd (server to server, default) or pwd (approved in the"
        " console, paid on the sandbox's password page)",
    )
    parser.add_argument(
        "--workdir", default="var/demo", help="logs and sandbox state (default var/demo)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and queues afterwards"
    )
    parser.add_argument("--seed", type=int, default=7)


def trade_no(n: int) -> str:
    return f"2026112221{n:014d}"


def sample_requests(count: int, rng: random.Random) -> tuple[list[Any], set[str], str]:
    """(messages to publish, refund_ids that must complete, the closed trade)."""
    messages: list[Any] = []
    expected: set[str] = set()

    def refund(refund_id: str, trade: str, amount: str, **extra: Any) -> dict[str, Any]:
        event = {
            "event_id": str(uuid.uuid4()),
            "refund_id": refund_id,
            "trade_no": trade,
            "amount": amount,
            "order_id": f"order-{refund_id}",
            "reason": "客户退货",
            **extra,
        }
        messages.append(event)
        expected.add(refund_id)
        return event

    plain = max(count - 10, 10)
    trades = max(plain * 2 // 3, 1)
    order = list(range(plain))
    rng.shuffle(order)
    for i in order:  # every trade below `plain - trades` is refunded twice
        cents = rng.randint(1, 50_000)
        refund(f"demo-{i:05d}", trade_no(i % trades), f"{Decimal(cents) / 100:.2f}")
    refund("demo-separators", trade_no(900001), "8.88", reason="破损 #3 ^ 部分退款 | $ 运费")
    first = refund("demo-twice-1", trade_no(900002), "10.00", trade_amount="15.00")
    refund("demo-twice-2", trade_no(900002), "5.00", trade_amount="15.00")
    refund("demo-over-total", trade_no(900002), "0.01", trade_amount="15.00")
    closed = trade_no(900003)
    refund("demo-closed-trade", closed, "3.00")
    duplicate = dict(first, event_id=str(uuid.uuid4()))
    messages.append(duplicate)
    messages.append(dict(first, amount="11.00", event_id=str(uuid.uuid4())))  # conflicting
    messages.append(b'{"refund_id": "demo-broken", "amount": ')  # not JSON
    messages.append(
        {"event_id": str(uuid.uuid4()), "refund_id": "demo-bad", "trade_no": "12", "amount": "-1"}
    )
    return messages, expected, closed


@dataclass
class OpenApiSamples:
    """The OpenAPI refund requests and the trades and red envelopes they refund."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    trades: list[tuple[str, str, str, str]] = field(default_factory=list)  # no, out, paid, status
    envelopes: list[tuple[str, str]] = field(default_factory=list)  # auth_no, amount

    def create_books(self, sandbox: SandboxClient) -> None:
        for number, out, paid, status in self.trades:
            sandbox.create_openapi_trade(paid, trade_no=number, out_trade_no=out, status=status)
        for auth_no, amount in self.envelopes:
            sandbox.create_envelope(amount, auth_no=auth_no)


def openapi_requests() -> OpenApiSamples:
    """A few `trade` and `coupon` refunds: every amount fits, one trade is closed."""
    samples = OpenApiSamples()
    twice, once, closed = trade_no(910001), trade_no(910002), trade_no(910003)
    samples.trades += [
        (twice, "demo-order-910001", "50.00", "paid"),
        (once, "demo-order-910002", "9.99", "paid"),
        (closed, "demo-order-910003", "5.00", "closed"),
    ]
    envelope, small = "2026112210002001000000001", "2026112210002001000000002"
    samples.envelopes += [(envelope, "10.00"), (small, "2.50")]

    def refund(refund_id: str, amount: str, channel: str, **names: str) -> None:
        samples.messages.append(
            {
                "event_id": str(uuid.uuid4()),
                "refund_id": refund_id,
                "channel": channel,
                "amount": amount,
                "order_id": f"order-{refund_id}",
                "reason": "客户退货" if channel == "trade" else "红包未领取部分退回",
                **names,
            }
        )

    refund("demo-trade-1", "30.00", "trade", trade_no=twice)
    refund("demo-trade-2", "20.00", "trade", out_trade_no="demo-order-910001")
    refund("demo-trade-3", "9.99", "trade", trade_no=once, out_trade_no="demo-order-910002")
    refund("demo-trade-closed", "1.00", "trade", trade_no=closed)
    refund("demo-coupon-1", "6.00", "coupon", auth_no=envelope)
    refund("demo-coupon-2", "4.00", "coupon", auth_no=envelope)
    refund("demo-coupon-3", "2.50", "coupon", auth_no=small)
    return samples


def run(args: argparse.Namespace) -> int:
    from sandbox.client import SandboxClient
    from worker.observability.logging import configure_logging

    configure_logging("WARNING", "console", stream=sys.stderr)
    rng = random.Random(args.seed)
    messages, expected, closed = sample_requests(args.refunds, rng)
    openapi = openapi_requests()
    messages += openapi.messages
    expected |= {str(m["refund_id"]) for m in openapi.messages}
    workdir = Path(args.workdir) / time.strftime("%Y%m%d-%H%M%S")
    print(f"demo: starting sandbox gateway and every role (logs in {workdir}/logs)")
    started = time.monotonic()
    pwd = args.mode == "pwd"
    timeout = args.timeout if args.timeout is not None else (900.0 if pwd else 120.0)
    config = StackConfig(
        workdir=workdir,
        keep=args.keep,
        batch_max_wait=0.5,
        md5_key=os.environ.get("ALIPAY_MD5_KEY") or None,
        roles={**{role: 1 for role in ROLES}, **({"console": 1} if pwd else {})},
        extra_env={"ALIPAY_REFUND_SERVICE": "pwd"} if pwd else {},
    )
    with Stack(config) as stack:
        SandboxClient(stack.sandbox_url).create_trade(closed, "100.00", status="closed")
        openapi.create_books(SandboxClient(stack.sandbox_url))
        if pwd:
            password = secrets.token_urlsafe(12)
            stack.add_operator(DEMO_OPERATOR, password)
            print(f"demo: operator console at {stack.console_url}/approvals", flush=True)
            print(f"demo: sign in as {DEMO_OPERATOR!r} with password {password}", flush=True)
            print(
                "demo: approve each batch; on the sandbox's Alipay page sign in as"
                f" {stack.default_partner} with payment password {SANDBOX_PAYMENT_PASSWORD}",
                flush=True,
            )
        sent = stack.publish(messages)
        print(
            f"demo: published {sent} refund.requested messages; waiting for refund.completed"
            f" (at most {timeout:.0f} s)",
            flush=True,
        )
        completed = stack.collect(expected, timeout)
        dead = stack.dead_letters()
        summary = SandboxClient(stack.sandbox_url).summary()
        batches = stack.query("SELECT count(*) FROM batches")[0][0]
    elapsed = time.monotonic() - started

    missing = sorted(expected - set(completed))
    channels = ("batch", "trade", "coupon")
    counts = Counter(
        (channels.index(e[0].get("channel", "batch")), e[0]["status"], e[0]["code"])
        for e in completed.values()
    )
    print()
    print(f"{'channel':<7} {'status':<10} {'code':<36} {'refunds':>7}")
    print(f"{'-' * 7} {'-' * 10} {'-' * 36} {'-' * 7}")
    for (channel, status, code), n in sorted(counts.items()):
        print(f"{channels[channel]:<7} {status:<10} {code:<36} {n:>7}")
    reasons = Counter(str(d.headers.get("x-refund-dead-letter-reason")) for d in dead)
    print()
    by_reason = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    print(f"dead-lettered messages: {len(dead)} ({by_reason})")
    print(
        f"batches submitted: {batches}; gateway double executions: {summary.get('double_executed')}"
    )
    books = summary.get("openapi", {})
    print(
        f"OpenAPI refunds made: {books.get('refunds_executed')};"
        f" OpenAPI double executions: {books.get('double_executed')}"
    )
    print(f"refunds completed: {len(completed)}/{len(expected)}; elapsed {elapsed:.1f} s")
    story = "demo-separators"
    print(f'one refund\'s story: grep \'"refund_id": "{story}"\' {workdir}/logs/*.log')
    if missing:
        print(f"demo: {len(missing)} refunds did not complete, e.g. {missing[:5]}", file=sys.stderr)
        return 1
    return 0

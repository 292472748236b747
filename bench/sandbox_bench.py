"""Benchmark of the sandbox gateway: batch submissions/s and notifications delivered/s.

    .venv/bin/python bench/sandbox_bench.py [--batches 600] [--clients 1,4,8] [--items 1000]
                                            [--repeat 1]

For each scenario it starts a fresh sandbox (`refund-worker sandbox`, time
factor 0.001) and a trivial notify receiver in its own process (answers
`success` to everything, verifies nothing), builds and signs every request
beforehand, each with a fresh batch_no (so the client's own encoding and
signing cost is not measured), then lets C client threads post them as fast
as the sandbox answers, each over one kept-alive `http.client` connection (a
`requests` session would take a noticeable share of the same two cores).
Each batch holds `--items` refunds of distinct trades; trades are reused
across batches (at most 50 refunds each, below the 99 limit) so the books
stay a sensible size.

Scenarios: the first sign type/charset with every client count, the others
with the largest count, and one "gated" run in which the receiver holds
every notification until all batches are in (submissions measured without
notification work, then the whole backlog drained at once).

Columns: submissions/s and items/s over the submission phase, answer
latency (p50/p99), refused answers (should be 0), notifications
acknowledged/s (normal runs: from the first submission to the last
acknowledgement; gated runs: the drain alone), the notification backlog when
the last answer came back, the seconds it took to drain after that, the
sandbox server's CPU time per batch (user + system, from the first
submission until every notification was acknowledged: the better figure to
compare changes by, as it depends much less than the rates on what else runs
on the machine), and the
1-minute load average when the scenario started (other work on the machine
shares its cores: compare rates at similar load). With `--repeat N` every
scenario runs N times (in rounds) and a summary gives the best and the
median submissions/s and notifications/s of each.

The signed requests and the receiver are in `bench.sandbox_traffic`.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sandbox_traffic import prepare, receiver_main
from tests.support.sandbox import free_port, merchant_rsa_keys, run_sandbox
from worker.mapi import parse_sync_response

# --------------------------------------------------------------------------
# One scenario
# --------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    batches: int
    items: int
    submit_seconds: float
    latencies: list[float]
    refused: int
    notify_seconds: float
    backlog_at_end: int
    drain_seconds: float
    load: float
    cpu_seconds: float | None

    @property
    def submit_rate(self) -> float:
        return self.batches / self.submit_seconds

    @property
    def notify_rate(self) -> float:
        return self.batches / self.notify_seconds

    def row(self) -> list[str]:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        return [
            self.name,
            str(self.batches),
            f"{self.batches / self.submit_seconds:.0f}",
            f"{self.batches * self.items / self.submit_seconds:,.0f}",
            f"{p50:.1f}",
            f"{p99:.1f}",
            str(self.refused),
            f"{self.batches / self.notify_seconds:.0f}",
            str(self.backlog_at_end),
            f"{self.drain_seconds:.2f}",
            "-" if self.cpu_seconds is None else f"{self.cpu_seconds / self.batches * 1000:.2f}",
            f"{self.load:.1f}",
        ]


HEADER = [
    "scenario",
    "batches",
    "submit/s",
    "items/s",
    "p50 ms",
    "p99 ms",
    "refused",
    "notify/s",
    "backlog",
    "drain s",
    "cpu ms",
    "load",
]


def run_scenario(
    name: str,
    *,
    clients: int,
    batches: int,
    items: int,
    sign_type: str,
    charset: str,
    gated: bool = False,
) -> Result:
    """One fresh sandbox and receiver; submit every batch, wait until all are acknowledged.

    `gated`: the receiver holds every notification until the submissions are
    over, so the submission rate is measured without notification work and
    the notification rate is the drain of the whole backlog at once.
    """
    load = os.getloadavg()[0]
    receiver_port = free_port()
    ready = multiprocessing.Event()
    gate = multiprocessing.Event()
    if not gated:
        gate.set()
    receiver = multiprocessing.Process(
        target=receiver_main, args=(receiver_port, ready, gate), daemon=True
    )
    receiver.start()
    ready.wait(10)
    try:
        with run_sandbox(
            time_factor=0.001,
            process_delay=1.0,
            seed=None,
            extra_args=[
                "--threads",
                "32",
                "--senders",
                "8",
                "--notify-timeout",
                "300",
                "--log-level",
                "WARNING",
            ],
        ) as sb:
            private_key = merchant_rsa_keys()[0]
            prepared = prepare(
                count=batches,
                items=items,
                sign_type=sign_type,
                charset=charset,
                md5_key=sb.md5_key,
                private_key=private_key,
                partner=sb.partner,
                gateway_url=sb.gateway_url,
                notify_url=f"http://127.0.0.1:{receiver_port}/alipay/notify",
            )
            server_pid = int(sb.client.info()["pid"])
            cpu_before = process_cpu_seconds(server_pid)
            latencies: list[float] = []
            refused = 0
            lock = threading.Lock()
            cursor = iter(prepared)

            def client() -> None:
                # A bare keep-alive http.client connection: a fraction of the
                # CPU of a requests session, which this machine's second core
                # would otherwise spend on the client instead of the sandbox.
                nonlocal refused
                target = urlsplit(prepared[0].url)
                conn = http.client.HTTPConnection(target.netloc, timeout=60)
                path = f"{target.path}?{target.query}"
                try:
                    while True:
                        with lock:
                            request = next(cursor, None)
                        if request is None:
                            return
                        started = time.perf_counter()
                        conn.request("POST", path, body=request.body, headers=request.headers)
                        answer = conn.getresponse().read()
                        took = time.perf_counter() - started
                        ok = parse_sync_response(answer).accepted
                        with lock:
                            latencies.append(took)
                            refused += 0 if ok else 1
                finally:
                    conn.close()

            threads = [threading.Thread(target=client) for _ in range(clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            submit_seconds = time.perf_counter() - started
            backlog = sb.client.summary()["notifications"]["pending"]
            notify_from = started
            if gated:
                notify_from = time.perf_counter()
                gate.set()
            sb.client.wait_idle(timeout=600, poll=0.02)
            idle_at = time.perf_counter()
            cpu_after = process_cpu_seconds(server_pid)
            summary = sb.client.summary()
            assert summary["double_executed"] == [], summary["double_executed"]
            assert summary["notifications"]["acknowledged"] == batches - refused
            return Result(
                name=name,
                batches=batches,
                items=items,
                submit_seconds=submit_seconds,
                latencies=latencies,
                refused=refused,
                notify_seconds=idle_at - notify_from,
                backlog_at_end=backlog,
                drain_seconds=idle_at - started - submit_seconds,
                load=load,
                cpu_seconds=(
                    None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
                ),
            )
    finally:
        receiver.terminate()
        receiver.join(5)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_table(rows: list[list[str]], header: list[str] = HEADER) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def summary_rows(results: list[Result]) -> list[list[str]]:
    """Per scenario: runs, best and median submissions/s and notifications/s, load range."""
    rows = []
    for name in dict.fromkeys(r.name for r in results):
        runs = [r for r in results if r.name == name]
        submit = [r.submit_rate for r in runs]
        notify = [r.notify_rate for r in runs]
        loads = [r.load for r in runs]
        rows.append(
            [
                name,
                str(len(runs)),
                f"{max(submit):.0f}",
                f"{statistics.median(submit):.0f}",
                f"{max(notify):.0f}",
                f"{statistics.median(notify):.0f}",
                f"{min(loads):.1f}-{max(loads):.1f}",
            ]
        )
    return rows


SUMMARY_HEADER = ["scenario", "runs", "best submit/s", "median", "best notify/s", "median", "load"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=600, help="batches per scenario")
    parser.add_argument("--items", type=int, default=1000, help="items per batch")
    parser.add_argument("--clients", default="1,4,8", help="client thread counts to try")
    parser.add_argument(
        "--variants",
        default="MD5/utf-8,RSA/gbk",
        help="sign type / charset pairs; the first runs with every client count",
    )
    parser.add_argument(
        "--no-gated",
        action="store_true",
        help="skip the run that holds notifications back until every batch is in",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds over all scenarios")
    args = parser.parse_args()
    variants = [tuple(v.split("/")) for v in args.variants.split(",") if v]
    client_counts = [int(c) for c in args.clients.split(",") if c]
    print(
        f"sandbox benchmark: {args.batches} batches x {args.items} items per scenario, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    results: list[Result] = []
    plan = [(variants[0], c) for c in client_counts]
    plan += [(v, max(client_counts)) for v in variants[1:]]
    runs = [(v, c, False) for v, c in plan]
    if not args.no_gated:
        runs.append((variants[0], max(client_counts), True))
    for (sign_type, charset), clients, gated in runs * max(1, args.repeat):
        name = f"{sign_type}/{charset} x{clients}" + (" gated" if gated else "")
        print(f"running {name} (load {os.getloadavg()[0]:.1f}) ...", flush=True)
        results.append(
            run_scenario(
                name,
                clients=clients,
                batches=args.batches,
                items=args.items,
                sign_type=sign_type,
                charset=charset,
                gated=gated,
            )
        )
    print()
    print_table([r.row() for r in results])
    if args.repeat > 1:
        print()
        print_table(summary_rows(results), SUMMARY_HEADER)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Several merchants in one `refund-worker all`, against one sandbox serving each partner.

Three merchants: shop-a signs MD5 in UTF-8, shop-b RSA in GBK, shop-c MD5 with a key the
gateway does not know. The refunds of shop-a and shop-b complete exactly once and are
paid once; shop-c's submission halts after its first ILLEGAL_SIGN and only shop-c's.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from devtools.devstack import Stack, StackConfig
from sandbox.client import SandboxClient
from tests.support.events import refund_request, trade
from tests.support.sandbox import merchant_rsa_keys
from worker.contracts.events import completed_event_id

pytestmark = pytest.mark.e2e

SHOP_A, SHOP_B, SHOP_C = "2088000000000011", "2088000000000022", "2088000000000033"


def write_keys(folder: Path) -> tuple[Path, Path]:
    """shop-b's RSA key pair: the private half for the worker, the public for the gateway."""
    private_pem, public_pem = merchant_rsa_keys()
    private = folder / "shop_b_private_key.pem"
    private.write_bytes(private_pem)
    public = folder / "shop_b_public_key.pem"
    public.write_bytes(public_pem)
    return private, public


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    return path


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def test_two_merchants_complete_exactly_once_and_a_broken_key_halts_only_its_merchant(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    private, public = write_keys(keys)
    key_a = write_secret(keys / "shop_a_md5", secrets.token_hex(16))
    key_c = write_secret(keys / "shop_c_md5", secrets.token_hex(16))
    key_c_at_gateway = write_secret(keys / "shop_c_md5_gateway", secrets.token_hex(16))
    partners = tmp_path / "partners.toml"
    partners.write_text(
        f"""
[[partners]]
partner = "{SHOP_A}"
md5_key_file = "{key_a}"
[[partners]]
partner = "{SHOP_B}"
merchant_public_key_file = "{public}"
[[partners]]
partner = "{SHOP_C}"
md5_key_file = "{key_c_at_gateway}"
"""
    )
    merchants = tmp_path / "merchants.toml"
    config = StackConfig(
        workdir=tmp_path,
        roles={},
        batch_max_wait=0.2,
        sandbox_args=("--partners-file", str(partners)),
        merchants_file=merchants,
        default_partner=SHOP_A,
    )
    with Stack(config) as stack:
        alipay_public_key = tmp_path / "sandbox" / "alipay_public_key.pem"
        assert alipay_public_key.exists()
        merchants.write_text(
            f"""
default = "shop-a"
[[merchants]]
id = "shop-a"
partner = "{SHOP_A}"
md5_key_file = "{key_a}"
[[merchants]]
id = "shop-b"
partner = "{SHOP_B}"
sign_type = "RSA"
charset = "gbk"
private_key_file = "{private}"
alipay_public_key_file = "{alipay_public_key}"
[[merchants]]
id = "shop-c"
partner = "{SHOP_C}"
md5_key_file = "{key_c}"
"""
        )
        log = (tmp_path / "all.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.entrypoints.cli", "all"],
            env=stack.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            a = [refund_request(f"a-{i}", trade(800 + i), "1.10") for i in range(30)]
            b = [
                refund_request(
                    f"b-{i}", trade(900 + i), "2.20", merchant="shop-b", reason="退款 商品破损"
                )
                for i in range(30)
            ]
            c = [
                refund_request(f"c-{i}", trade(950 + i), "3.30", merchant=SHOP_C) for i in range(5)
            ]
            stack.publish([*a, *b, *c])
            done = stack.collect({r["refund_id"] for r in a + b}, timeout=120)

            assert len(done) == 60
            for refund_id, events in done.items():
                assert {e["event_id"] for e in events} == {completed_event_id(refund_id)}
                assert events[0]["status"] == "succeeded", events[0]
            assert Counter(events[0]["merchant"] for events in done.values()) == {
                SHOP_A: 30,
                SHOP_B: 30,
            }
            books = SandboxClient(stack.sandbox_url).ledger()
            paid = Counter(
                t for t, trade_book in books["trades"].items() for _ in trade_book["executions"]
            )
            assert {paid[r["trade_no"]] for r in a + b} == {1}

            # shop-c is halted, its refunds kept; nothing of it was ever paid.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                halts = stack.query(
                    "SELECT name FROM control WHERE starts_with(name, 'submission_halted:')"
                )
                if halts:
                    break
                time.sleep(0.2)
            assert halts == [(f"submission_halted:{SHOP_C}",)]
            states = dict(
                stack.query("SELECT partner || ':' || state, count(*) FROM refunds GROUP BY 1")
            )
            assert states == {
                f"{SHOP_A}:succeeded": 30,
                f"{SHOP_B}:succeeded": 30,
                f"{SHOP_C}:batched": 5,
            }
            assert all(paid[r["trade_no"]] == 0 for r in c)
            text = scrape(stack.notify_port)  # the notify-server's, with the ledger gauges
            assert f'refund_submission_halted{{merchant="{SHOP_C}"}} 1.0' in text
            assert f'refund_submission_halted{{merchant="{SHOP_A}"}} 0.0' in text
            assert f'refund_waiting{{merchant="{SHOP_C}",state="batched"}} 5.0' in text
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
            log.close()
        assert code == 0
        lines = [
            json.loads(x)
            for x in (tmp_path / "all.log").read_text().splitlines()
            if x.startswith("{")
        ]
        halted = [x for x in lines if x.get("event") == "submission.halted"]
        assert halted and {x["merchant"] for x in halted} == {SHOP_C}
        text = (tmp_path / "all.log").read_text()
        for secret in (key_a.read_text().strip(), key_c.read_text().strip()):
            assert secret not in text

"""`refund-worker sandbox`: run the local emulation of the Alipay mapi gateway.

The merchant settings default to the worker's own environment variables
(`ALIPAY_PARTNER`, `ALIPAY_MD5_KEY`, `ALIPAY_MD5_KEY_FILE`), so one
environment configures both sides. The gateway rules that tests switch
default to `SANDBOX_NOTIFY_VERIFY_SECONDS` and `SANDBOX_REFUND_LIMIT_MODE`.
On first start the sandbox generates its own RSA key pair standing in for
Alipay's in the state directory and logs the path of the public half
(`ALIPAY_PUBLIC_KEY_FILE` for the worker); it is the same for every partner.

Several partners: `--partners-file PATH` names a TOML file of
`[[partners]]` entries, each with its own keys (`sandbox.partners`). The
single-partner options (`--partner`, `--md5-key`, `--md5-key-file`,
`--merchant-public-key-file`) then describe one more partner only when at
least one of them is on the command line: that partner is built exactly as
without the file (the environment still supplies what the options leave
out) and is served first, i.e. it is the default partner (journal entries
of older versions, the top level of `GET /_sandbox/info`), followed by the
file's partners in file order. Without any of them on the command line the
environment (`ALIPAY_PARTNER`, `ALIPAY_MD5_KEY`, `ALIPAY_MD5_KEY_FILE`) is
not read and the file's first partner is the default one. An id given
twice is refused.

The password refund service (`refund_fastpay_by_platform_pwd`, a browser's
form) is answered with the cashier's password page (`sandbox.cashier`); the
payment password it wants is `--payment-password` (default
`sandbox-pay-123456`), or a partner's own `payment_password` in the partners
file, and can be changed at run time (`PUT /_sandbox/settings
{"payment_password": ...}`). The seller account is the partner id or its
`seller_email` (default `seller-<partner>@sandbox.test`). These are test
credentials of the emulation, never an Alipay password.

The OpenAPI gateway (`/openapi/gateway.do`, `sandbox.openapi`) serves the
app of each partner that has one: `--app-id` and `--app-public-key-file` (the
app's RSA public key, PEM) for the partner of the single-partner options, or
`app_id` / `app_public_key_file` in a partners file. Its own key pair standing
in for Alipay's OpenAPI key is made in the state directory on first start
(`openapi_alipay_public_key.pem` verifies its answers and notifications).

Settings that cannot be used (a bad option value, an unreadable key file, a
bad partners file) end the command with one line on stderr naming the
option (for the partners file: the entry and its field), never a key, and
exit status 78 (EX_CONFIG, as the other roles use); argparse's own usage
errors exit 2.

The partners are read from the options by `sandbox.cli_partners`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import structlog

from sandbox.cashier import CONFIRM_PATH
from sandbox.cli_partners import GivenPartner, partners_from_args, read_option_file
from sandbox.config import (
    DEFAULT_AUTO_TRADE_AMOUNT,
    DEFAULT_BIND,
    DEFAULT_NOTIFY_VERIFY_SECONDS,
    DEFAULT_PARTNER,
    DEFAULT_PAYMENT_PASSWORD,
    REFUND_LIMIT_MODES,
    SandboxConfig,
    check_payment_password,
    parse_bind,
)
from sandbox.faults import FAULT_NAMES, FaultSet, parse_fault_set
from sandbox.openapi.fault_names import OPENAPI_FAULTS
from worker.domain.errors import ConfigError
from worker.observability.logging import configure_logging, register_secret

__all__ = ["add_arguments", "build_config", "run"]

log = structlog.get_logger(__name__)

EXIT_CONFIG = 78  # EX_CONFIG, as the other roles use


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare every option of `refund-worker sandbox` (all documented in --help)."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.epilog = (
        "Gateway: /gateway.do (refund_fastpay_by_platform_nopwd, refund_fastpay_query, "
        "notify_verify; refund_fastpay_by_platform_pwd answers the cashier's password "
        f"page, whose form posts to {CONFIRM_PATH}). "
        "OpenAPI gateway: POST /openapi/gateway.do (alipay.trade.refund, "
        "alipay.trade.fastpay.refund.query, alipay.fund.coupon.order.refund, "
        "alipay.fund.coupon.operation.query). "
        "Control API: /_sandbox/{health,info,trades,external_refunds,faults,settings,"
        "clock,ledger,summary} and /_sandbox/openapi/{trades,envelopes,ledger}. "
        f"Faults: {', '.join(FAULT_NAMES)} (see sandbox/faults.py); OpenAPI faults under "
        f"the key openapi: {', '.join(OPENAPI_FAULTS)} (see sandbox/openapi/fault_names.py)."
    )
    env = os.environ.get
    parser.add_argument("--bind", default=DEFAULT_BIND, help="host:port to listen on")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("./var/sandbox"),
        help="where the journal and the sandbox's Alipay key pair live (created if missing)",
    )
    parser.add_argument(
        "--partner",
        action=GivenPartner,
        default=env("ALIPAY_PARTNER") or DEFAULT_PARTNER,
        help="the partner id the gateway serves (env ALIPAY_PARTNER); with "
        "--partners-file, one more partner, served first",
    )
    parser.add_argument(
        "--md5-key",
        default=None,
        help="the partner's MD5 key; without this option and --md5-key-file, env "
        "ALIPAY_MD5_KEY or ALIPAY_MD5_KEY_FILE (prefer those: a command line is "
        "visible to every user of the machine)",
    )
    parser.add_argument(
        "--md5-key-file",
        type=Path,
        default=None,
        help="file holding the partner's MD5 key (one line)",
    )
    parser.add_argument(
        "--merchant-public-key-file",
        type=Path,
        default=None,
        help="the merchant's RSA public key (PEM) to verify RSA-signed requests",
    )
    parser.add_argument(
        "--app-id",
        default=None,
        help="the OpenAPI app id (8-32 digits) of the partner of --partner, served by "
        "/openapi/gateway.do; needs --app-public-key-file",
    )
    parser.add_argument(
        "--app-public-key-file",
        type=Path,
        default=None,
        help="the OpenAPI app's RSA public key (PEM), verifying its requests",
    )
    parser.add_argument(
        "--partners-file",
        type=Path,
        default=None,
        help="TOML file of [[partners]] entries (partner, md5_key_file or md5_key, "
        "merchant_public_key_file; optional seller_email, payment_password, app_id and "
        "app_public_key_file) to serve several "
        "partners; --partner and the key "
        "options, when given, add one more, served first; when none is given, the "
        "environment's partner and MD5 key are not used (see sandbox/partners.py)",
    )
    parser.add_argument(
        "--time-factor",
        type=float,
        default=1.0,
        help="scales the processing delay and the resend schedule (e.g. 0.001)",
    )
    parser.add_argument(
        "--process-delay",
        type=float,
        default=1.0,
        help="seconds (before scaling) between accepting a batch and its first notification",
    )
    parser.add_argument(
        "--auto-trades",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="create unknown trades as paid on first refund (else TRADE_NOT_EXIST)",
    )
    parser.add_argument(
        "--auto-trade-amount",
        default=str(DEFAULT_AUTO_TRADE_AMOUNT),
        help="paid amount of auto-created trades",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault dice")
    parser.add_argument(
        "--faults",
        default=None,
        help='faults in force at start: JSON (\'{"http_5xx": {"rate": 0.1}}\') or @file',
    )
    parser.add_argument("--threads", type=int, default=32, help="request threads")
    parser.add_argument("--senders", type=int, default=8, help="notification sender threads")
    parser.add_argument(
        "--notify-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the merchant's answer to a notification",
    )
    parser.add_argument(
        "--notify-verify-seconds",
        type=float,
        default=env("SANDBOX_NOTIFY_VERIFY_SECONDS") or DEFAULT_NOTIFY_VERIFY_SECONDS,
        help="real seconds (not scaled) a notify_id stays verifiable after its latest "
        "delivery attempt, as Alipay's one minute (env SANDBOX_NOTIFY_VERIFY_SECONDS)",
    )
    parser.add_argument(
        "--refund-limit-mode",
        choices=REFUND_LIMIT_MODES,
        default=env("SANDBOX_REFUND_LIMIT_MODE") or "refuse",
        help="the 100th refund of a trade: refuse (TRADE_STATUS_ERROR) or skip (neither "
        "refunded nor notified) (env SANDBOX_REFUND_LIMIT_MODE)",
    )
    parser.add_argument(
        "--payment-password",
        default=DEFAULT_PAYMENT_PASSWORD,
        metavar="TEXT",
        help="the cashier's payment password, %(default)s unless given: what the page of "
        "the password refund service (refund_fastpay_by_platform_pwd) wants for every "
        "partner without its own payment_password in --partners-file; the account is the "
        "partner id or its seller_email (default seller-<partner>@sandbox.test); 5 wrong "
        "tries spend the page",
    )
    parser.add_argument(
        "--log-level", default=env("LOG_LEVEL") or "INFO", help="log level (env LOG_LEVEL)"
    )
    parser.add_argument(
        "--log-format",
        default=env("LOG_FORMAT") or "auto",
        choices=("auto", "json", "console"),
        help="log format (env LOG_FORMAT)",
    )


def build_config(args: argparse.Namespace) -> SandboxConfig:
    """Turn parsed options into a validated SandboxConfig (ConfigError names the option)."""
    host, port = parse_bind(args.bind)
    partners = partners_from_args(args)
    try:
        amount = Decimal(args.auto_trade_amount)
    except InvalidOperation:
        raise ConfigError("--auto-trade-amount must be a decimal such as 1000000.00") from None
    return SandboxConfig(
        host=host,
        port=port,
        state_dir=Path(args.state_dir),
        partners=partners,
        time_factor=args.time_factor,
        process_delay=args.process_delay,
        auto_trades=args.auto_trades,
        auto_trade_amount=amount,
        seed=args.seed,
        faults=_faults(args.faults),
        threads=args.threads,
        senders=args.senders,
        notify_timeout=args.notify_timeout,
        notify_verify_seconds=args.notify_verify_seconds,
        refund_limit_mode=args.refund_limit_mode,
        payment_password=_payment_password(args.payment_password),
    )


def run(args: argparse.Namespace) -> int:
    """Start the sandbox and serve until SIGTERM/SIGINT."""
    try:
        configure_logging(args.log_level, args.log_format)
    except ValueError as exc:
        print(f"refund-worker sandbox: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = build_config(args)
        register_secret(config.payment_password)
        for partner in config.partners:
            if partner.md5_key:
                register_secret(partner.md5_key)
            if partner.payment_password:
                register_secret(partner.payment_password)
        from sandbox.keys import ensure_alipay_keys, ensure_openapi_keys

        keys = ensure_alipay_keys(config.state_dir)
        openapi_keys = ensure_openapi_keys(config.state_dir)
    except ConfigError as exc:
        print(f"refund-worker sandbox: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    log.info(
        "sandbox.starting",
        bind=config.bind,
        partner=config.partner,
        partners={p.partner: list(p.sign_types) for p in config.partners},
        state_dir=str(config.state_dir),
        alipay_public_key_file=str(keys.public_path),
        openapi_apps={p.app_id: p.partner for p in config.partners if p.app_id},
        openapi_public_key_file=str(openapi_keys.public_path),
        md5=bool(config.md5_key),
        rsa=bool(config.merchant_public_key),
        time_factor=config.time_factor,
        process_delay=config.process_delay,
        auto_trades=config.auto_trades,
        notify_verify_seconds=config.notify_verify_seconds,
        refund_limit_mode=config.refund_limit_mode,
        faults=sorted(config.faults.faults),
    )
    from sandbox.server import SandboxServer

    SandboxServer(config, keys).run()
    log.info("sandbox.stopped")
    return 0


def _payment_password(text: str) -> str:
    try:
        return check_payment_password(text)
    except ConfigError:
        raise ConfigError(
            "--payment-password must be 1-128 printable characters (value not shown)"
        ) from None


def _faults(text: str | None) -> FaultSet:
    if not text:
        return FaultSet()
    if text.startswith("@"):
        text = read_option_file(Path(text[1:]), "--faults")
    try:
        spec = json.loads(text)
    except ValueError:
        raise ConfigError("--faults is neither JSON nor @file holding JSON") from None
    return parse_fault_set(spec)

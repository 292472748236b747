"""The `refund-worker` console script: one subcommand per role.

Each subcommand lives in its own module, imported only when that subcommand
runs, and exposes `add_arguments(parser)` and `run(args) -> int`. Nothing is
loaded or connected before the chosen subcommand asks for it.

`sandbox` and `demo` come from the packages `sandbox` and `devtools`, which are
part of the source distribution but not of the production image; where they are
not installed the command says how to get them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# Packages of the distribution that the production image does not install.
OPTIONAL_PACKAGES = frozenset({"sandbox", "devtools"})

# name -> (module, one-line help). Order is the order `--help` lists them in.
COMMANDS: dict[str, tuple[str, str]] = {
    "intake": (
        "worker.entrypoints.roles.intake",
        "consume refund.requested from the bus into the ledger",
    ),
    "worker": (
        "worker.entrypoints.roles.worker",
        "run the dramatiq actors (submit_batch, process_notify, reconcile_batch)",
    ),
    "notify-server": (
        "worker.entrypoints.roles.notify_server",
        "serve Alipay's notifications over HTTP",
    ),
    "console": (
        "worker.entrypoints.roles.console",
        "serve the operator console (sign-in, overview, decisions) over HTTP",
    ),
    "operators": (
        "worker.entrypoints.roles.operators",
        "manage the console's operators: add, list, unlock, disable",
    ),
    "relay": (
        "worker.entrypoints.roles.relay",
        "publish outbox rows (refund.completed) to the bus",
    ),
    "scheduler": (
        "worker.entrypoints.roles.scheduler",
        "pack batches, re-drive stuck work, flag overdue",
    ),
    "all": ("worker.entrypoints.roles.all", "run every role in one process tree (for a laptop)"),
    "migrate": ("worker.entrypoints.roles.migrate", "create or upgrade the database schema"),
    "sandbox": ("sandbox.cli", "run the local emulation of the Alipay mapi gateway"),
    "demo": (
        "devtools.demo",
        "run sandbox + every role, push sample refunds, print a summary",
    ),
    "status": ("worker.entrypoints.roles.ops", "show the state of a refund or a batch"),
    "batches": ("worker.entrypoints.roles.batches", "list batches: waiting, flagged or overdue"),
    "reconcile": (
        "worker.entrypoints.roles.reconcile",
        "query the gateway about a batch now and apply it",
    ),
    "resolve": (
        "worker.entrypoints.roles.resolve",
        "an operator's decision on a batch the worker cannot prove",
    ),
    "replay": ("worker.entrypoints.roles.replay", "replay dead letters or stored notifications"),
    "resume": (
        "worker.entrypoints.roles.resume",
        "resume submission after a configuration error was fixed",
    ),
}


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(name) for name in COMMANDS)
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return argparse.ArgumentParser(
        prog="refund-worker",
        description="Alipay batch refund worker.",
        epilog=f"commands:\n{listing}\n\n'refund-worker COMMAND --help' shows a command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not args or args[0] in ("-h", "--help"):
        top.print_help()
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}")
    module_name, text = COMMANDS[name]
    try:
        command: _Command = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in OPTIONAL_PACKAGES:
            raise
        print(
            f"refund-worker {name}: the {exc.name!r} package is not installed here (the"
            " production image leaves it out); install alipay-refund-worker from a source"
            " checkout (pip install .) to get it",
            file=sys.stderr,
        )
        return 2
    parser = argparse.ArgumentParser(prog=f"refund-worker {name}", description=text)
    command.add_arguments(parser)
    return command.run(parser.parse_args(rest))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

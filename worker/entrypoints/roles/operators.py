"""`refund-worker operators`: the people who may sign in to the console.

- `operators add NAME`: asks for the password twice (no echo); `--password-stdin` reads
  it from the first line of standard input instead, and `--generate` makes a random one
  and prints it once (it is never stored or shown again, only its argon2 hash is kept);
- `operators list`: name, created, last sign-in, failures, locked until, disabled;
- `operators unlock NAME`: lift a lock-out after too many wrong passwords;
- `operators disable NAME`: no more sign-ins; the operator's sessions end at their next
  request.

Each change is written to the audit log as done by `cli:<user>`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from worker.adapters.postgres import operators as store
from worker.adapters.postgres.pool import Database
from worker.domain.errors import DatabaseUnavailable
from worker.entrypoints.roles._common import boot
from worker.services.signin import (
    PasswordRefused,
    audit,
    check_new_password,
    generate_password,
    hash_password,
    valid_name,
)

PROG = "refund-worker operators"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = commands.add_parser("add", help="create an operator")
    add.add_argument("name", help="1-64 letters, digits and _ . @ -")
    how = add.add_mutually_exclusive_group()
    how.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    how.add_argument(
        "--generate", action="store_true", help="make a random password and print it once"
    )
    commands.add_parser("list", help="list the operators")
    for action, text in (("unlock", "lift a lock-out"), ("disable", "refuse further sign-ins")):
        sub = commands.add_parser(action, help=text)
        sub.add_argument("name")


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def read_password(args: argparse.Namespace) -> str:
    """The new password from stdin, the terminal (twice) or generated; PasswordRefused."""
    if args.generate:
        return generate_password()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise PasswordRefused("the two passwords differ")
    check_new_password(password)
    return password


def run(args: argparse.Namespace) -> int:
    settings = boot("operators")
    name: str | None = getattr(args, "name", None)
    if name is not None and not valid_name(name):
        print(f"{PROG}: a name is 1-64 letters, digits and _ . @ - (got {name[:70]!r})")
        return 2
    password = None
    if args.action == "add":
        try:
            password = read_password(args)
        except PasswordRefused as exc:
            print(f"{PROG} add: {exc}")
            return 2
    db = Database(settings.database_url, max_size=1, name="refund-worker-operators")
    try:
        return _act(db, args.action, name, password, generated=bool(getattr(args, "generate", 0)))
    except DatabaseUnavailable as exc:
        print(f"{PROG}: {exc}")
        return 1
    finally:
        db.close()


def _act(
    db: Database, action: str, name: str | None, password: str | None, *, generated: bool
) -> int:
    if action == "list":
        with db.transaction() as conn:
            rows = store.list_operators(conn)
        for r in rows:
            last = r.last_login_at.isoformat(timespec="seconds") if r.last_login_at else "-"
            locked = (
                r.locked_until.isoformat(timespec="seconds") if r.locked_until and r.locked else "-"
            )
            print(
                f"{r.name:<24} created={r.created_at:%Y-%m-%d} last_sign_in={last}"
                f" failures={r.failed_logins} locked_until={locked}"
                f" disabled={'yes' if r.disabled else 'no'}"
            )
        if not rows:
            print("no operators")
        return 0
    assert name is not None
    with db.transaction() as conn:
        if action == "add":
            assert password is not None
            done = store.add_operator(conn, name, hash_password(password))
        elif action == "unlock":
            done = store.unlock_operator(conn, name)
        else:
            done = store.disable_operator(conn, name)
    outcome = "ok" if done else "refused"
    detail = None if done else ("name taken" if action == "add" else "no such operator")
    audit(
        db,
        operator=_who(),
        action=f"operators.{action}",
        target=name,
        outcome=outcome,
        detail=detail,
    )
    if not done:
        problem = (
            f"an operator {name!r} exists already" if action == "add" else f"no operator {name!r}"
        )
        print(f"{PROG} {action}: {problem}")
        return 1
    if action == "add" and generated:
        print(f"operator {name} added; password (shown only now): {password}")
    else:
        print(f"operator {name}: {action} done")
    return 0

"""The partners `refund-worker sandbox` serves, read from its options (`sandbox.cli`).

The single partner of `--partner`, `--md5-key` / `--md5-key-file` (or the
environment), `--merchant-public-key-file`, `--app-id` and
`--app-public-key-file`, and the partners of `--partners-file`, combined as
the docstring of `sandbox.cli` says. Moved out of `sandbox.cli`, which keeps
the options themselves; a `ConfigError` names the option at fault.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sandbox.config import PartnerConfig
from sandbox.partners import load_partners_file, md5_key_problem
from worker.domain.errors import ConfigError
from worker.mapi.keys import KeyFormatError, load_public_key

__all__ = ["GivenPartner", "partners_from_args", "read_option_file"]


class GivenPartner(argparse.Action):
    """Stores `--partner` and notes that it was given (`partner_given`), not defaulted."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.partner_given = True


_KEY_OPTIONS = ("md5_key", "md5_key_file", "merchant_public_key_file")


def partners_from_args(args: argparse.Namespace) -> tuple[PartnerConfig, ...]:
    """The partners to serve: the single one the options describe, then the file's (module doc)."""
    single_given = getattr(args, "partner_given", False) or any(
        getattr(args, name) is not None for name in _KEY_OPTIONS
    )
    from_file: tuple[PartnerConfig, ...] = ()
    if args.partners_file is not None:
        from_file = load_partners_file(Path(args.partners_file))
        if not single_given:
            if args.app_id is not None or args.app_public_key_file is not None:
                raise ConfigError(
                    "--app-id: applies to the partner of --partner and the key options; "
                    "give app_id and app_public_key_file in --partners-file instead"
                )
            return from_file
    single = _single_partner(args)
    if any(p.partner == single.partner for p in from_file):
        raise ConfigError(
            f"--partner {single.partner}: partner: also in --partners-file {args.partners_file}"
        )
    return (single, *from_file)


def _single_partner(args: argparse.Namespace) -> PartnerConfig:
    """The partner of --partner / --md5-key(-file) / --merchant-public-key-file (or env)."""
    partner = str(args.partner)
    md5_key = _md5_key(args)
    public_key = None
    if args.merchant_public_key_file is not None:
        public_key = read_option_file(
            args.merchant_public_key_file, "--merchant-public-key-file"
        ).encode()
    app_key = None
    if args.app_public_key_file is not None:
        app_key = read_option_file(args.app_public_key_file, "--app-public-key-file").encode()
        try:
            load_public_key(app_key)
        except KeyFormatError:
            raise ConfigError("--app-public-key-file: not an RSA public key (PEM)") from None
    if (args.app_id is None) != (app_key is None):
        raise ConfigError("--app-id and --app-public-key-file go together: give both or neither")
    single = PartnerConfig(
        partner=partner,
        md5_key=md5_key,
        merchant_public_key=public_key,
        app_id=args.app_id,
        app_public_key=app_key,
    )
    if not single.sign_types:
        raise ConfigError(
            "no merchant key: give --md5-key / --md5-key-file (or ALIPAY_MD5_KEY / "
            "ALIPAY_MD5_KEY_FILE) or --merchant-public-key-file"
        )
    return single


def _md5_key(args: argparse.Namespace) -> str | None:
    """The MD5 key from the options, else from the environment, read as the worker reads it.

    One source only (like the worker's settings): the inline key as it is, or
    a file's content without its line break. Printable ASCII without spaces.
    """
    if args.md5_key is not None or args.md5_key_file is not None:
        inline, path, names = args.md5_key, args.md5_key_file, ("--md5-key", "--md5-key-file")
    else:
        file_env = os.environ.get("ALIPAY_MD5_KEY_FILE")
        inline = os.environ.get("ALIPAY_MD5_KEY")
        path = Path(file_env) if file_env else None
        names = ("ALIPAY_MD5_KEY", "ALIPAY_MD5_KEY_FILE")
    if inline is not None and path is not None:
        raise ConfigError(f"set only one of {names[0]} and {names[1]}, not both")
    if path is not None:
        inline = read_option_file(Path(path), names[1]).rstrip("\r\n")
        source = names[1]
    else:
        source = names[0]
    if inline is None:
        return None
    problem = md5_key_problem(str(inline))
    if problem:
        raise ConfigError(f"{source} {problem}")
    return str(inline)


def read_option_file(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{option}: cannot read {path} ({type(exc).__name__})") from None

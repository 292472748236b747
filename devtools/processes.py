"""The processes of a development stack (`devtools.devstack`): a free port, a role
process and how to stop its whole process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from contextlib import suppress
from dataclasses import dataclass
from typing import IO

__all__ = ["RoleProcess", "free_port", "signal_group", "stop_process"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RoleProcess:
    role: str
    index: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]


def signal_group(proc: RoleProcess, sig: int) -> None:
    """Send `sig` to the process's whole group (it was started in a session of its own)."""
    if proc.process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.process.pid, sig)


def stop_process(proc: RoleProcess, sig: int, grace: float = 20.0) -> None:
    """`sig`, then SIGKILL after `grace` seconds; closes its log."""
    signal_group(proc, sig)
    try:
        proc.process.wait(grace)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        proc.process.wait()
    proc.log.close()

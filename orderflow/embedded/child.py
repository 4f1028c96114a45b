"""Starting a server binary as a child that cannot outlive its parent."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM when our parent dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    log: Path | None,
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (Ctrl-C reaches only us, and we stop children
    in order), dying with us if we are killed. Output goes to ``log``, or to our own."""
    handle = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            list(argv),
            stdout=handle,
            stderr=subprocess.STDOUT if handle else None,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            user=user,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
    finally:
        if handle is not None:
            handle.close()


def stop(process: subprocess.Popen[bytes], sig: int, timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    what: str,
    log: Path,
    timeout: float = 60.0,
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with code {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready within {timeout:.0f} s (log: {log})")
        time.sleep(0.1)

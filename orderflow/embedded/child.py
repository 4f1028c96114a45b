"""Server binaries run as our children: each in a session of its own, dying with us even when
we are SIGKILLed, and stopped together with whatever it forked."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
#: Resolved once here: the child may only call it between fork and exec, where loading a
#: library could deadlock on a lock some other thread of ours held at the fork.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _dying_with_parent(sig: int, nice: int = 0) -> Callable[[], None] | None:
    """The kernel sends ``sig`` to the child when the thread that started it ends (so start
    servers from the main thread). Runs after ``setuid``, which would clear it otherwise.
    With ``nice``, the child (and all it forks) also runs that much below our priority."""
    prctl = _prctl
    if prctl is None and not nice:
        return None

    def arm() -> None:
        if nice:
            os.nice(nice)
            _nice_autogroup(nice)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, sig)

    return arm


#: Where Linux keeps the nice value of the calling process's autogroup.
AUTOGROUP = Path("/proc/self/autogroup")


def _nice_autogroup(nice: int) -> None:
    """Where the kernel groups processes by session (``kernel.sched_autogroup_enabled``, on
    by default in Debian's and most distributions' kernels), it shares the CPU between the
    groups first and weighs a process's own nice only against its group's other members.
    The child has a session, so a group, of its own: its nice alone would count for nothing
    against the API's. Measured: workers at nice 10 took a whole core from the API as if
    at nice 0. The group's nice does count; raising it needs no privilege. Without
    autogroups (no such file, or writes refused) the process's nice is all there is."""
    with contextlib.suppress(OSError):
        AUTOGROUP.write_text(str(nice))


def spawn(
    argv: Sequence[str],
    log: Path | None,
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
    cwd: Path | None = None,
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, so a Ctrl-C reaches only us and we stop the
    children in order. ``env`` is added to ours. Output goes to ``log``, or to our own.
    ``cwd`` is entered before switching to ``user``, so ``user`` need not reach it.
    ``nice``: how much lower the child's scheduling priority is than ours (0..19)."""
    handle = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            list(argv),
            stdout=handle,
            stderr=subprocess.STDOUT if handle else None,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=_dying_with_parent(death_signal, nice),
            start_new_session=True,
            **identity(user),
        )
    finally:
        if handle is not None:
            handle.close()


def identity(user: str | None) -> dict[str, Any]:
    """``Popen`` arguments to run as ``user``: its uid, its group and no other groups (keeping
    root's group 0 would put it in the group class of root's folders, denying access)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def stop(process: subprocess.Popen[bytes], sig: int, timeout: float = 15.0) -> None:
    """Send ``sig``, wait up to ``timeout``, then SIGKILL the child's whole process group
    (a Celery worker's pool processes too). Sweeps the group even after a clean exit."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            process.wait(10)
    kill_group(process)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


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
            raise RuntimeError(
                f"{what} exited with code {process.returncode}; log {log}:\n{log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready within {timeout:.0f} s (log: {log})")
        time.sleep(0.05)


def log_tail(log: Path, size: int = 2000) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


class DirLock:
    """An exclusive lock beside a server's data folder, held while we run the server, so a
    second ``make run`` on the same folder fails clearly instead of corrupting the data.
    The kernel drops it when we die."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir.with_name(f"{data_dir.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(
                f"{self.path.parent / self.path.stem} is in use by another process "
                "(another `make run`?); stop it or point ORDERFLOW_STATE_DIR elsewhere"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ServerChild:
    """A server we run as a child process on a data folder held by a ``DirLock``."""

    process: subprocess.Popen[bytes] | None
    _lock: DirLock

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _halt(self, sig: int, timeout: float = 15.0) -> None:
        """Stop the server with ``sig``, waiting up to ``timeout``, and free its folder."""
        if self.process is not None:
            stop(self.process, sig, timeout)
            self.process = None
        self._lock.release()


def await_leftover(pidfile: Path, data_dir: Path, what: str, timeout: float = 15.0) -> None:
    """A server of a previous run that died with its parent may still be shutting down on
    ``data_dir``: wait for it to finish. A pid file whose pid now belongs to another process
    is removed, or PostgreSQL would take that process for a live postmaster; a pid file of a
    dead server stays, for the server's own checks (PostgreSQL uses it to find backends of a
    crashed postmaster still attached to its shared memory)."""
    deadline = time.monotonic() + timeout
    while (owner := _pid_owner(pidfile, data_dir)) == "server":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} still runs on {data_dir}; stop it first")
        time.sleep(0.1)
    if owner == "other":
        pidfile.unlink(missing_ok=True)


def _pid_owner(pidfile: Path, data_dir: Path) -> str | None:
    """Who has the pid in ``pidfile``: ``"server"`` (a live process working in ``data_dir``:
    both servers make it their working directory), ``"other"`` (the pid was reused), or
    None (nobody: no pid file, or the process is gone)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except PermissionError:
        return "other"  # our servers run as us (or, as root, are within our reach)
    except (OSError, ValueError, IndexError):
        return None
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): assume the worst, it is the server
        return "server"
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None  # exited, not yet reaped
        return "server" if os.readlink(proc / "cwd") == str(data_dir) else "other"
    except PermissionError:
        return "other"  # not ours to look at, so not our server
    except (OSError, IndexError):
        return None

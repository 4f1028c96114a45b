"""Real processes of the system under test: the API, Celery workers, beat and the outbox
relay, started as subprocesses against the test's own database and Redis db."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from celeryconfig import STEP_QUEUES
from orderflow.embedded.child import spawn


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class SystemProcesses:
    """Starts, kills and restarts the worker-side processes; stops them all at the end."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        process = spawn([sys.executable, *args], self.log_dir / f"{name}.log", env=self.env)
        self.processes[name] = process
        return process

    def start_worker(self, name: str = "worker", concurrency: int = 2) -> subprocess.Popen[bytes]:
        """Start a worker on every queue and wait until it consumes."""
        log = self.log_dir / f"{name}.log"
        seen = log.read_text(errors="replace").count(" ready.") if log.exists() else 0
        process = self._start(
            name, "-m", "celery", "-A", "workers.app", "worker",
            "-Q", ",".join(STEP_QUEUES), "-c", str(concurrency), "--loglevel", "INFO",
            "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        )  # fmt: skip
        wait_until(lambda: log.read_text(errors="replace").count(" ready.") > seen, 60)
        return process

    def start_relay(self, name: str = "relay") -> subprocess.Popen[bytes]:
        return self._start(name, "-m", "workers.relay")

    def start_beat(self, name: str = "beat") -> subprocess.Popen[bytes]:
        schedule = self.log_dir / f"{name}-schedule"
        return self._start(
            name,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "beat",
            "--schedule",
            str(schedule),
            "--loglevel",
            "INFO",
        )

    def start_api(self, port: int, name: str = "api") -> subprocess.Popen[bytes]:
        process = self._start(
            name,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        )
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 30)
        return process

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a process and everything it started (a worker's pool processes too)."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def pool_pids(self, name: str = "worker") -> list[int]:
        parent = self.processes[name].pid
        children = Path(f"/proc/{parent}/task/{parent}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False

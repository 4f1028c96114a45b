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
from orderflow.settings import get_settings
from workers.launcher import api_command


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
    #: How each process was started, so that ``revive_exited`` can start it again.
    recipes: dict[str, Callable[[], subprocess.Popen[bytes]]] = field(default_factory=dict)
    revived: list[str] = field(default_factory=list)

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        process = spawn([sys.executable, *args], self.log_dir / f"{name}.log", env=self.env)
        self.processes[name] = process
        return process

    def start_worker(self, name: str = "worker", concurrency: int = 2) -> subprocess.Popen[bytes]:
        """Start a worker on every queue and wait until it consumes."""
        self.recipes[name] = lambda: self.start_worker(name, concurrency)
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

    def start_webhook_worker(
        self, name: str = "webhooks", concurrency: int = 4
    ) -> subprocess.Popen[bytes]:
        """Start a worker on the ``webhooks`` queue only (threads, as the launcher runs it)."""
        self.recipes[name] = lambda: self.start_webhook_worker(name, concurrency)
        log = self.log_dir / f"{name}.log"
        seen = log.read_text(errors="replace").count(" ready.") if log.exists() else 0
        process = self._start(
            name, "-m", "celery", "-A", "workers.app", "worker",
            "-Q", "webhooks", "--pool", "threads", "-c", str(concurrency), "--loglevel", "INFO",
            "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        )  # fmt: skip
        wait_until(lambda: log.read_text(errors="replace").count(" ready.") > seen, 60)
        return process

    def start_relay(self, name: str = "relay") -> subprocess.Popen[bytes]:
        self.recipes[name] = lambda: self.start_relay(name)
        return self._start(name, "-m", "workers.relay")

    def start_beat(self, name: str = "beat") -> subprocess.Popen[bytes]:
        self.recipes[name] = lambda: self.start_beat(name)
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
        command = api_command(get_settings(), "127.0.0.1", port)
        process = self._start(name, *command, "--log-level", "warning")
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 90)
        return process

    def revive_exited(self) -> None:
        """Start again what exited on its own, as a supervisor does in production (compose's
        ``restart: unless-stopped``). A process the test killed is not in ``processes``."""
        for name, process in list(self.processes.items()):
            if process.poll() is not None and name in self.recipes:
                self.revived.append(name)
                self.recipes[name]()

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

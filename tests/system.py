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

from celeryconfig import CPU_QUEUES, PROVIDER_QUEUES, STEP_QUEUES
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

    def start_worker(
        self,
        name: str = "worker",
        concurrency: int = 2,
        *,
        queues: tuple[str, ...] = STEP_QUEUES,
        pool: str = "prefork",
    ) -> subprocess.Popen[bytes]:
        """Start a worker (on every step queue unless told) and wait until it consumes."""
        self.recipes[name] = lambda: self.start_worker(name, concurrency, queues=queues, pool=pool)
        log = self.log_dir / f"{name}.log"
        seen = log.read_text(errors="replace").count(" ready.") if log.exists() else 0
        process = self._start(
            name, "-m", "celery", "-A", "workers.app", "worker", "--pool", pool,
            "-Q", ",".join(queues), "-c", str(concurrency), "--loglevel", "INFO",
            "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        )  # fmt: skip
        wait_until(lambda: log.read_text(errors="replace").count(" ready.") > seen, 60)
        return process

    def start_workers(
        self, name: str = "worker", processes: int = 2, threads: int = 16
    ) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        """The pipeline's workers as ``make run`` starts them: ``name`` on prefork for the
        CPU-bound queues, ``{name}-io`` on threads for the provider-bound ones."""
        return (
            self.start_worker(name, processes, queues=CPU_QUEUES),
            self.start_worker(f"{name}-io", threads, queues=PROVIDER_QUEUES, pool="threads"),
        )

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
        # One process, whose pid is the server's: a test that kills the API kills it all.
        one = get_settings().model_copy(update={"api_processes": 1})
        command = api_command(one, "127.0.0.1", port)
        process = self._start(name, *command, "--log-level", "warning")
        # Generous: importing the app alone took 80 s on a shared machine at load 30.
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 120)
        return process

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start a process that was killed again, as it was started the first time."""
        return self.recipes[name]()

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

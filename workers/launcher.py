"""The one-command run (``make run``): embedded PostgreSQL and Redis unless
``ORDERFLOW_DATABASE_URL`` / ``ORDERFLOW_REDIS_URL`` point elsewhere, migrations, the admin,
demo products, then the API, a worker, the outbox relay, beat and Flower in the foreground.
Ctrl-C or SIGTERM stops everything it started; so does any child exiting on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import FrameType

from celeryconfig import STEP_QUEUES
from orderflow.embedded.child import spawn, stop
from orderflow.embedded.postgres import EmbeddedPostgres
from orderflow.embedded.redis import EmbeddedRedis
from orderflow.settings import ConfigError, Settings

DATABASE_NAME = "orderflow"


@dataclass
class ProcessGroup:
    """The long-running children, watched together and stopped together."""

    env: dict[str, str]
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        self.children[name] = spawn([sys.executable, *args], None, env=self.env)

    def first_exited(self) -> str | None:
        return next((n for n, p in self.children.items() if p.poll() is not None), None)

    def stop_all(self) -> None:
        """SIGTERM to all at once (a worker finishes its task), SIGKILL to what lingers."""
        for process in self.children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 8
        for process in self.children.values():
            stop(process, signal.SIGTERM, timeout=max(0.1, deadline - time.monotonic()))


def _embedded_services(settings: Settings, stack: ExitStack) -> dict[str, str]:
    """Start what is not configured; answer the URLs for the children."""
    env: dict[str, str] = {}
    state = settings.state_dir.resolve()
    if not settings.database_url:
        postgres = stack.enter_context(EmbeddedPostgres(state / "postgres"))
        env["ORDERFLOW_DATABASE_URL"] = postgres.ensure_database(DATABASE_NAME)
        print(f"embedded PostgreSQL on 127.0.0.1:{postgres.port} (data in {state / 'postgres'})")
    if not settings.redis_url:
        store = stack.enter_context(EmbeddedRedis(state / "redis", persist=True))
        env["ORDERFLOW_REDIS_URL"] = store.url(0)
        print(f"embedded Redis-compatible server on 127.0.0.1:{store.port}")
    return env


def _prepare(env: dict[str, str]) -> bool:
    """The same ``orderflow`` commands an operator runs; they print their own errors."""
    for command in ("migrate", "create-admin", "seed-demo"):
        done = subprocess.run([sys.executable, "-m", "orderflow.cli", command], env=env)
        if done.returncode != 0:
            print(f"orderflow {command} failed; not starting", file=sys.stderr)
            return False
    return True


def _start_system(group: ProcessGroup, settings: Settings) -> None:
    group.start(
        "api",
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
    )
    group.start(
        "worker",
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--loglevel",
        "INFO",
        "-E",
        "-Q",
        ",".join(STEP_QUEUES),
    )
    group.start("relay", "-m", "workers.relay")
    schedule = str(settings.state_dir.resolve() / "celerybeat-schedule")
    group.start("beat", "-m", "celery", "-A", "workers.app", "beat", "--schedule", schedule)
    flower = [
        "-m",
        "celery",
        "-A",
        "workers.app",
        "flower",
        f"--port={settings.flower_port}",
        "--address=127.0.0.1",
    ]
    if settings.flower_basic_auth is not None:
        group.env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    group.start("flower", *flower)


def _banner(settings: Settings) -> None:
    api = f"http://{settings.host}:{settings.port}"
    print(
        f"\norderflow is up:\n  API      {api}/api/v1\n  OpenAPI  {api}/docs\n"
        f"  Flower   http://127.0.0.1:{settings.flower_port}\n  admin    {settings.admin_email}\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )


def run() -> int:
    try:
        settings = Settings()
    except (ConfigError, ValueError) as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with ExitStack() as stack:
        env = {**os.environ, **_embedded_services(settings, stack)}
        if not _prepare(env):
            return 1
        group = ProcessGroup(env)
        stack.callback(group.stop_all)
        _start_system(group, settings)
        _banner(settings)
        while not stopping:
            exited = group.first_exited()
            if exited is not None:
                print(f"{exited} exited unexpectedly; stopping everything", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print("stopping...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run())

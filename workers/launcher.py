"""The one-command run (``make run``): ``python -m workers.launcher``.

Starts an embedded PostgreSQL and Redis-compatible server unless ``ORDERFLOW_DATABASE_URL`` /
``ORDERFLOW_REDIS_URL`` point elsewhere, runs the migrations, the admin and the demo products,
then supervises the API, the Celery workers (prefork for the CPU-bound steps, threads for
those waiting on a provider and for webhooks), the outbox relay, beat and Flower in the
foreground.
Ctrl-C, SIGTERM or SIGHUP stops everything it started; so does any child exiting on its own
(then it exits non-zero naming the child). Every child also dies with the launcher
(``PR_SET_PDEATHSIG``), so even a SIGKILLed launcher leaves no orphan."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from orderflow.embedded.child import kill_group, spawn
from orderflow.embedded.postgres import EmbeddedPostgres
from orderflow.embedded.redis import EmbeddedRedis
from orderflow.settings import ConfigError, Settings
from orderflow.startup import load_settings

DATABASE_NAME = "orderflow"
#: How long children get to finish after SIGTERM (a worker completes its current task).
GRACE_SECONDS = 8.0
PREPARE_COMMANDS = ("migrate", "create-admin", "seed-demo")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WEBHOOK_SECRET_ENV = "ORDERFLOW_STRIPE_WEBHOOK_SECRET"
#: Under the state dir: the local webhook signing secret, kept from one run to the next.
WEBHOOK_SECRET_FILE = "stripe-webhook-secret"
#: In the state folder while ``make run`` runs: the embedded servers' addresses, to source.
RUN_ENV = "run.env"


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP arrived while starting up or running."""


class ChildExited(Exception):
    """A supervised child stopped on its own."""


@dataclass
class Supervisor:
    """The long-running children, watched together and stopped together."""

    env: dict[str, str]
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    hurry: bool = False

    def start(
        self,
        name: str,
        args: list[str],
        extra_env: dict[str, str] | None = None,
        nice: int = 0,
    ) -> None:
        env = {**self.env, **(extra_env or {})}
        self.children[name] = spawn([sys.executable, *args], None, env=env, nice=nice)

    def check(self) -> None:
        """Raise ``ChildExited`` naming the first child that is no longer running."""
        for name, process in self.children.items():
            code = process.poll()
            if code is not None:
                raise ChildExited(f"{name} exited unexpectedly ({_describe(code)})")

    def stop_all(self) -> None:
        """SIGTERM to all at once, SIGKILL to whatever still runs after the grace period
        (or at once when ``hurry`` is set by a second Ctrl-C), and to their process groups."""
        for process in self.children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and not self.hurry:
            if all(process.poll() is not None for process in self.children.values()):
                break
            time.sleep(0.1)
        for name, process in self.children.items():
            if process.poll() is None:
                print(f"{name} did not stop in time; killing it", file=sys.stderr, flush=True)
            kill_group(process)
            with suppress(subprocess.TimeoutExpired):
                process.wait(5)


def _describe(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def _services(settings: Settings, stack: ExitStack) -> dict[str, str]:
    """Start the embedded servers that are not configured; answer the children's variables."""
    state = settings.state_dir.resolve()
    env = {"ORDERFLOW_STATE_DIR": str(state)}
    if not settings.database_url:
        postgres = EmbeddedPostgres(state / "postgres")
        stack.callback(postgres.stop)
        postgres.start()
        env["ORDERFLOW_DATABASE_URL"] = postgres.ensure_database(DATABASE_NAME)
        print(f"embedded PostgreSQL 18 running, data in {postgres.data_dir}", flush=True)
    if not settings.redis_url:
        store = EmbeddedRedis(state / "redis", persist=True)
        stack.callback(store.stop)
        store.start()
        env["ORDERFLOW_REDIS_URL"] = store.url(0)
        print(f"embedded Valkey running on port {store.port}, data in {store.data_dir}")
    return env


def _metrics_dirs(settings: Settings) -> tuple[Path, Path]:
    """The prometheus-client multiprocess directory every orderflow process shares (the
    API's ``/metrics`` then adds up the worker's, the relay's and beat's values), and one
    for Flower alone, both emptied: values of processes from an earlier run would
    otherwise be added to this one's. ``PROMETHEUS_MULTIPROC_DIR``, when set, names the
    shared one."""
    state = settings.state_dir.resolve()
    shared = Path(os.environ.get(MULTIPROC_ENV) or state / "metrics").resolve()
    flower = state / "metrics-flower"
    for directory in (shared, flower):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    return shared, flower


def _local_webhook_secret(settings: Settings) -> str | None:
    """With the local payment provider and no ``ORDERFLOW_STRIPE_WEBHOOK_SECRET``, a signing
    secret made once and kept in the state dir, so the local customer-action page can sign
    the webhooks it sends (as Stripe would) and the API can check them. None when one is
    configured or the provider is Stripe (whose own secret is then required)."""
    if settings.stripe_webhook_secret is not None or settings.payment_provider != "local":
        return None
    path = settings.state_dir.resolve() / WEBHOOK_SECRET_FILE
    if not path.exists():
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret + "\n")
        print(f"local webhook signing secret made, kept in {path}", flush=True)
    return path.read_text().strip()


def _prepare(env: dict[str, str]) -> None:
    """The same ``orderflow`` commands an operator runs; they print their own errors."""
    for command in PREPARE_COMMANDS:
        done = subprocess.run([sys.executable, "-m", "orderflow.cli", command], env=env)
        if done.returncode != 0:
            raise ChildExited(f"orderflow {command} failed ({_describe(done.returncode)})")


def api_command(settings: Settings, host: str, port: int) -> list[str]:
    """The API's server: uvicorn with the app factory. An idle connection is kept
    ``ORDERFLOW_API_KEEPALIVE_SECONDS`` (uvicorn's own default is 5 s): a server that closes an
    idle keep-alive connection races the client's next request on it, which then fails with
    "server disconnected" (a 502 behind a proxy). Kept longer than the clients' and proxies'
    idle timeouts, it is always their side that closes. ``ORDERFLOW_API_PROCESSES`` above 1
    serves it with that many processes (``--workers``)."""
    processes = settings.api_processes
    return [
        "-m", "uvicorn", "api.app:create_app", "--factory", "--host", host, "--port", str(port),
        "--timeout-keep-alive", str(settings.api_keepalive_seconds),
        *(["--workers", str(processes)] if processes > 1 else []),
    ]  # fmt: skip


def _start_system(supervisor: Supervisor, settings: Settings, flower_metrics: Path) -> None:
    from celeryconfig import CPU_QUEUES, PROVIDER_QUEUES, WEBHOOK_QUEUE  # reads the settings

    celery = ["-m", "celery", "-A", "workers.app"]
    supervisor.start("api", api_command(settings, settings.host, settings.port))
    # Everything else fulfils orders: on a shared host it yields the CPU to the API, which
    # accepts them (ORDERFLOW_WORKER_NICE; inherited by the pool processes they fork).
    nice = settings.worker_nice
    # Reservation, invoice PDF, upkeep: our own CPU and database, prefork (a process a core).
    supervisor.start(
        "worker",
        [*celery, "worker", "--loglevel", "INFO", "-E", "-Q", ",".join(CPU_QUEUES)],
        nice=nice,
    )
    # Charge, refund, e-mail, labels: waiting on a provider, so threads (a thread waits on
    # Stripe, not a process): ORDERFLOW_PROVIDER_WORKER_THREADS of them.
    supervisor.start(
        "worker-io",
        [*celery, "worker", "--loglevel", "INFO", "-E", "-Q", ",".join(PROVIDER_QUEUES),
         "--pool", "threads", "-c", str(settings.provider_worker_threads), "-n", "io@%h"],
        nice=nice,
    )  # fmt: skip
    # Outgoing webhooks: a worker of their own, so a dead receiver never holds a pipeline
    # worker. Its dispatcher sends the deliveries from ORDERFLOW_WEBHOOK_SENDING_THREADS
    # threads of its own; the pool's two threads serve the admins' notices.
    supervisor.start(
        "webhooks",
        [*celery, "worker", "--loglevel", "INFO", "-Q", WEBHOOK_QUEUE, "--pool", "threads",
         "-c", "2", "-n", "webhooks@%h"],
        nice=nice,
    )  # fmt: skip
    supervisor.start("relay", ["-m", "workers.relay"], nice=nice)
    schedule = settings.state_dir.resolve() / "celerybeat-schedule"
    beat = [*celery, "beat", "--loglevel", "INFO", "--schedule", str(schedule)]
    supervisor.start("beat", beat, nice=nice)
    # Flower keeps its own metrics (its /metrics page); they are not the pipeline's.
    flower_env = {MULTIPROC_ENV: str(flower_metrics)}
    supervisor.start("flower", ["-m", "workers.flower"], flower_env, nice=nice)  # credentials: env


def _check_ports_free(settings: Settings, patience: float = 10.0) -> None:
    """Fail before starting anything rather than with a child's bind error later. Waits a
    little: the children of a launcher killed a moment ago may still be letting go."""
    for host, port, variable in (
        (settings.host, settings.port, "ORDERFLOW_PORT"),
        ("127.0.0.1", settings.flower_port, "ORDERFLOW_FLOWER_PORT"),
    ):
        deadline = time.monotonic() + patience
        while (error := _bind_error(host, port)) and time.monotonic() < deadline:
            time.sleep(0.25)
        if error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error}); stop what uses it or set {variable}"
            )


def _bind_error(host: str, port: int) -> str | None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_until_up(supervisor: Supervisor, settings: Settings, timeout: float = 90.0) -> bool:
    api_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.check()
        if _answers(api_host, settings.port) and _answers("127.0.0.1", settings.flower_port):
            return True
        time.sleep(0.2)
    return False


def _banner(settings: Settings, run_env: Path | None, up: bool) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    api = f"http://{host}:{settings.port}"
    state = "is up" if up else "is starting (the API or Flower is not answering yet)"
    print(
        f"\norderflow {state}:\n"
        f"  API      {api}/api/v1\n"
        f"  OpenAPI  {api}/docs\n"
        f"  Flower   http://127.0.0.1:{settings.flower_port}\n"
        f"  admin    {settings.admin_email}",
        flush=True,
    )
    print(*operator_commands(run_env), sep="\n")
    print("Ctrl-C stops everything.\n", flush=True)


def operator_commands(run_env: Path | None) -> list[str]:
    """How to reach the ``orderflow`` command from another shell: it is installed in the
    virtual environment (``.venv/bin``), not on the PATH, and needs this run's addresses of
    the embedded servers (``run_env``, when any was started)."""
    command = _shown_path(Path(sys.executable).parent / "orderflow")
    activate = _shown_path(Path(sys.prefix) / "bin" / "activate")
    sourced = [f"  . {_shown_path(run_env)}    # this run's database and Redis"] if run_env else []
    return [
        "For the `orderflow` command (audit, redrive, outbox, ...) in another shell here:",
        *sourced,
        f"  {command} audit    # or: source {activate}, then: orderflow audit",
    ]


def write_run_env(state_dir: Path, embedded: dict[str, str]) -> Path | None:
    """This run's addresses of the embedded servers as a file a shell can source (``.``),
    readable by its owner only (the Redis URL holds a password); None when none started."""
    exports = [f"export {name}='{value}'" for name, value in embedded.items() if "URL" in name]
    if not exports:
        return None
    path = state_dir.resolve() / RUN_ENV
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write("# written by make run for this run; removed when it stops\n")
        file.write("\n".join(exports) + "\n")
    return path


def _shown_path(path: Path) -> str:
    """``path`` relative to the current directory when it is below it (``.venv/bin/…``)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _supervise(supervisor: Supervisor) -> None:
    while True:
        supervisor.check()
        time.sleep(0.3)


def _on_signals(handler: Callable[[int, FrameType | None], None]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _start(supervisor: Supervisor, stack: ExitStack) -> None:
    """Everything up to the banner; what is started is registered on ``stack`` to stop."""
    settings = load_settings()
    _check_ports_free(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    embedded = _services(settings, stack)
    run_env = write_run_env(settings.state_dir, embedded)
    if run_env is not None:
        stack.callback(run_env.unlink, missing_ok=True)
    shared_metrics, flower_metrics = _metrics_dirs(settings)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **embedded, MULTIPROC_ENV: str(shared_metrics)}
    env.setdefault("ORDERFLOW_DATABASE_URL", settings.database_url)
    env.setdefault("ORDERFLOW_REDIS_URL", settings.redis_url)
    webhook_secret = _local_webhook_secret(settings)
    if webhook_secret is not None:
        env[WEBHOOK_SECRET_ENV] = webhook_secret
    _prepare(env)
    supervisor.env = env
    stack.callback(supervisor.stop_all)
    _start_system(supervisor, settings, flower_metrics)
    _banner(settings, run_env, _wait_until_up(supervisor, settings))


def run() -> int:
    supervisor = Supervisor(env={})

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    def hurry(signum: int, frame: FrameType | None) -> None:
        supervisor.hurry = True

    _on_signals(interrupt)
    code = 0
    with ExitStack() as stack:
        try:
            _start(supervisor, stack)
            _supervise(supervisor)
        except Interrupted as signal_name:
            print(f"\n{signal_name}: stopping every process started...", flush=True)
        except ConfigError as error:
            print(f"configuration error: {error}", file=sys.stderr, flush=True)
            code = 2
        except ChildExited as error:
            print(f"orderflow: {error}; stopping everything", file=sys.stderr, flush=True)
            code = 1
        except RuntimeError as error:  # an embedded server would not start
            print(f"orderflow: {error}", file=sys.stderr, flush=True)
            code = 1
        finally:
            _on_signals(hurry)  # a second Ctrl-C cuts the grace period short
    if code != 2:  # something was started, and is stopped now
        print("stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(run())

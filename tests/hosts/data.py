"""The data host's servers: the embedded PostgreSQL and Valkey that ``make run`` uses,
started inside the host's namespace and listening on its address as well.

The test process itself reaches PostgreSQL through its unix socket (a file: no network
namespace in the way), the other hosts through TCP on the data host's address."""

from __future__ import annotations

from pathlib import Path

from orderflow.embedded.postgres import SUPERUSER, EmbeddedPostgres
from orderflow.embedded.redis import HOST, EmbeddedRedis
from tests.hosts.network import Lab

POSTGRES_PORT = 5432
REDIS_PORT = 6379
#: How PostgreSQL finds a peer that vanished (a host cut off): TCP keepalives on an idle
#: connection (5 s, then 3 probes 2 s apart), and a 10 s limit on unacknowledged data.
#: Without them a session of a dead host holds its locks until the kernel gives up
#: (about two hours for an idle connection), and every order it touched waits as long.
SERVER_DEAD_PEER_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


class HostPostgres(EmbeddedPostgres):
    """Also listening on ``address`` (trust: the lab's network is the test's alone)."""

    def __init__(self, data_dir: Path, address: str) -> None:
        super().__init__(data_dir, port=POSTGRES_PORT, durable=False)
        self.address = address

    def tcp_url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.address}:{self.port}/{dbname}"

    def _server_argv(self) -> list[str]:
        settings = {"listen_addresses": self.address, **SERVER_DEAD_PEER_SETTINGS}
        argv = super()._server_argv()  # a later -c wins over an earlier one
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _prepare(self) -> None:
        super()._prepare()
        hba = self.data_dir / "pg_hba.conf"
        line = "host all all 10.77.0.0/16 trust\n"
        if line not in hba.read_text():
            with hba.open("a") as handle:
                handle.write(line)


class HostRedis(EmbeddedRedis):
    """Also listening on ``address``; protected mode off (it refuses other hosts without
    a password, and the lab's network is the test's alone)."""

    def __init__(self, data_dir: Path, address: str) -> None:
        super().__init__(data_dir, persist=False, port=REDIS_PORT)
        self.address = address

    def tcp_url(self, db: int = 0) -> str:
        return f"redis://{self.address}:{self.port}/{db}"

    def _argv(self) -> list[str]:
        argv = super()._argv()
        argv[argv.index("--bind") + 1 : argv.index("--bind") + 2] = [HOST, self.address]
        argv[argv.index("--protected-mode") + 1] = "no"
        return argv


def start_data_host(lab: Lab, root: Path) -> tuple[HostPostgres, HostRedis]:
    """Both servers on the ``data`` host; the caller stops them."""
    address = lab.hosts["data"].address
    postgres = HostPostgres(root / "postgres", address)
    store = HostRedis(root / "redis", address)
    with lab.inside("data"):  # they are forked, and checked for, from the data host
        postgres.start()
        store.start()
    return postgres, store

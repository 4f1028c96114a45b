"""The embedded PostgreSQL and Valkey that ``make run`` (and ``make test`` on a bare machine)
starts: they answer, keep their data across a restart, refuse a second owner of their data
folder, and leave no process behind, not even when their parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import create_engine, text

from orderflow.embedded.postgres import EmbeddedPostgres
from orderflow.embedded.redis import EmbeddedRedis

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process checks read /proc"
)


def _processes_using(folder: Path) -> list[str]:
    """Command lines of live processes that name ``folder`` (the servers pass it as an
    argument; zombies have an empty command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(folder).encode() in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _descendants(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    direct = {int(child) for child in children.read_text().split()} if children.exists() else set()
    return direct.union(*(_descendants(child) for child in direct))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (alive := {pid for pid in pids if _alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, EmbeddedRedis]]:
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    store = EmbeddedRedis(tmp_path / "redis", persist=True)
    yield postgres, store
    store.stop()
    postgres.stop()


def test_servers_answer_keep_data_across_restart_and_leave_nothing(
    tmp_path: Path, servers: tuple[EmbeddedPostgres, EmbeddedRedis]
) -> None:
    postgres, store = servers
    postgres.start()
    store.start()
    url = postgres.ensure_database("shop")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE kept (note text)"))
        connection.execute(text("INSERT INTO kept VALUES ('survives')"))
    engine.dispose()
    client = redis.Redis.from_url(store.url(3))
    assert client.ping()
    client.rpush("queued", "job-1")
    client.close()
    assert postgres.process is not None
    assert store.process is not None
    pids = {postgres.process.pid, store.process.pid, *_descendants(postgres.process.pid)}

    postgres.stop()
    store.stop()
    assert _wait_gone(pids, timeout=1.0) == set()
    assert _processes_using(tmp_path) == []

    again_pg = EmbeddedPostgres(tmp_path / "postgres")  # as a new `make run` would
    again_store = EmbeddedRedis(tmp_path / "redis", persist=True)
    with again_pg, again_store:
        assert again_pg.ensure_database("shop") == url
        with psycopg.connect(again_pg.dsn("shop")) as connection:
            assert connection.execute("SELECT note FROM kept").fetchall() == [("survives",)]
        with redis.Redis.from_url(again_store.url(3)) as client:
            assert client.lrange("queued", 0, -1) == [b"job-1"]
    assert _processes_using(tmp_path) == []


def test_a_data_folder_has_one_owner(servers: tuple[EmbeddedPostgres, EmbeddedRedis]) -> None:
    postgres, store = servers
    postgres.start()
    store.start()
    with pytest.raises(RuntimeError, match="in use by another process"):
        EmbeddedPostgres(postgres.data_dir).start()
    with pytest.raises(RuntimeError, match="in use by another process"):
        EmbeddedRedis(store.data_dir, persist=True).start()
    assert postgres.running
    assert store.running


def test_servers_die_with_a_killed_parent(tmp_path: Path) -> None:
    """What keeps a SIGKILLed ``make run`` from leaving servers behind (PR_SET_PDEATHSIG)."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from orderflow.embedded.postgres import EmbeddedPostgres
        from orderflow.embedded.redis import EmbeddedRedis
        postgres = EmbeddedPostgres(Path({str(tmp_path / "postgres")!r}), durable=False)
        store = EmbeddedRedis(Path({str(tmp_path / "redis")!r}), persist=False)
        postgres.start()
        store.start()
        print(postgres.process.pid, store.process.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert parent.stdout is not None
        pids = {int(pid) for pid in parent.stdout.readline().split()}
        assert len(pids) == 2, "the servers did not start"
        pids |= {child for pid in pids for child in _descendants(pid)}
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert _wait_gone(pids) == set()
    assert _processes_using(tmp_path) == []

"""What ``make run`` tells an operator about the ``orderflow`` command, and how it starts
the system: the API ahead of everything that fulfils orders."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from orderflow.embedded.child import AUTOGROUP, spawn
from orderflow.settings import Settings
from workers.launcher import Supervisor, _start_system, operator_commands, write_run_env


class Recorded(Supervisor):
    """What would be started, with which priority, without starting it."""

    def start(
        self,
        name: str,
        args: list[str],
        extra_env: dict[str, str] | None = None,
        nice: int = 0,
    ) -> None:
        self.started[name] = (args, nice)

    def __init__(self) -> None:
        super().__init__(env={})
        self.started: dict[str, tuple[list[str], int]] = {}


def test_the_banner_shows_where_the_orderflow_command_is(tmp_path: Path) -> None:
    shown = "\n".join(operator_commands(tmp_path / "run.env"))
    command = Path(sys.executable).parent / "orderflow"
    assert command.exists()  # the console script of the virtual environment
    assert f"{command.relative_to(Path.cwd())} audit" in shown  # .venv/bin/orderflow
    assert "source .venv/bin/activate" in shown
    assert f". {tmp_path / 'run.env'}" in shown


def test_without_embedded_servers_nothing_is_sourced() -> None:
    assert not any(line.lstrip().startswith(". ") for line in operator_commands(None))


def test_the_run_env_file_exports_the_embedded_servers_for_the_owner_only(
    tmp_path: Path,
) -> None:
    embedded = {
        "ORDERFLOW_STATE_DIR": str(tmp_path),
        "ORDERFLOW_DATABASE_URL": "postgresql+psycopg://orderflow@/orderflow?host=/x",
        "ORDERFLOW_REDIS_URL": "redis://:secret@127.0.0.1:6390/0",
    }
    path = write_run_env(tmp_path, embedded)
    assert path == tmp_path / "run.env"
    text = path.read_text()
    assert (
        "export ORDERFLOW_DATABASE_URL='postgresql+psycopg://orderflow@/orderflow?host=/x'" in text
    )
    assert "export ORDERFLOW_REDIS_URL='redis://:secret@127.0.0.1:6390/0'" in text
    assert "STATE_DIR" not in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert write_run_env(tmp_path, embedded) == path  # a new run replaces it


@pytest.mark.parametrize("embedded", [{}, {"ORDERFLOW_STATE_DIR": "/x"}])
def test_no_file_when_no_server_was_started(tmp_path: Path, embedded: dict[str, str]) -> None:
    assert write_run_env(tmp_path, embedded) is None
    assert not (tmp_path / "run.env").exists()


@pytest.mark.parametrize(("nice", "processes"), [(10, 1), (15, 3), (0, 1)])
def test_everything_but_the_api_yields_the_cpu(tmp_path: Path, nice: int, processes: int) -> None:
    settings = Settings(worker_nice=nice, api_processes=processes, state_dir=tmp_path)
    supervisor = Recorded()
    _start_system(supervisor, settings, tmp_path / "flower-metrics")
    api_args, api_nice = supervisor.started.pop("api")
    assert api_nice == 0
    assert ("--workers" in api_args) == (processes > 1)
    if processes > 1:
        assert api_args[api_args.index("--workers") + 1] == str(processes)
    assert {"worker", "webhooks", "relay", "beat", "flower"} <= set(supervisor.started)
    assert {name: n for name, (_, n) in supervisor.started.items()} == dict.fromkeys(
        supervisor.started, nice
    )


def test_a_child_started_nicer_runs_at_that_priority_and_so_do_its_own(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    # The child reports its niceness and that of a process it forks (a Celery pool's case).
    script = (
        "import os, subprocess, sys; print(os.nice(0)); sys.stdout.flush(); "
        "subprocess.run([sys.executable, '-c', 'import os; print(os.nice(0))'])"
    )
    child = spawn([sys.executable, "-c", script], log, nice=7)
    assert child.wait(30) == 0
    expected = min(os.nice(0) + 7, 19)
    assert log.read_text().split() == [str(expected), str(expected)]


def test_a_child_started_nicer_also_lowers_its_session_group(tmp_path: Path) -> None:
    """With the kernel's autogroups, a session's group shares the CPU with the others by its
    own nice, whatever its processes' nice: the child's group must be niced too."""
    if not AUTOGROUP.exists() or "nice" not in AUTOGROUP.read_text():
        pytest.skip("this kernel does not group processes by session (no /proc/self/autogroup)")
    log = tmp_path / "child.log"
    script = "from pathlib import Path; print(Path('/proc/self/autogroup').read_text())"
    child = spawn([sys.executable, "-c", script], log, nice=7)
    assert child.wait(30) == 0
    ours = AUTOGROUP.read_text().split()
    theirs = log.read_text().split()
    assert theirs[0] != ours[0], "the child should be in a group of its own"
    assert theirs[-1] == "7"  # a new session's group starts at 0

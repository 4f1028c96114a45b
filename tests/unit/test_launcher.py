"""What ``make run`` tells an operator about the ``orderflow`` command."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from workers.launcher import operator_commands, write_run_env


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

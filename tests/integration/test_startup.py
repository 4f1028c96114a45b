"""Start-up with bad settings: the API (``uvicorn --factory``), a Celery worker, beat and the
relay each print one line naming the setting and the fix, exit 2, and show no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orderflow.settings import Settings
from tests.system import free_port

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE_DATABASE = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/orderflow"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"

COMMANDS = {
    "api": ["-m", "uvicorn", "api.app:create_app", "--factory", "--port", "{port}"],
    "worker": ["-m", "celery", "-A", "workers.app", "worker", "-c", "1", "--without-mingle"],
    "beat": ["-m", "celery", "-A", "workers.app", "beat", "--schedule", "{tmp}/beat"],
    "relay": ["-m", "workers.relay"],
}


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "ORDERFLOW_ENVIRONMENT": "test",
        "ORDERFLOW_DATABASE_URL": settings.database_url,
        "ORDERFLOW_REDIS_URL": settings.redis_url,
        "ORDERFLOW_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        **extra,
    }


def _start(program: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    argv = [arg.format(port=free_port(), tmp=tmp_path) for arg in COMMANDS[program]]
    return subprocess.run(
        [sys.executable, *argv],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_one_line(done: subprocess.CompletedProcess[str], setting: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    ours = [line for line in output.splitlines() if "configuration error:" in line]
    assert len(ours) == 1, output
    assert setting in ours[0]
    assert "Traceback" not in output
    assert "hunter2" not in output


CASES = [
    ("api", {"ORDERFLOW_PORT": "eighty"}, "ORDERFLOW_PORT"),
    ("api", {"ORDERFLOW_PAYMENT_PROVIDER": "stripe"}, "ORDERFLOW_STRIPE_API_KEY"),
    ("api", {"ORDERFLOW_DATABASE_URL": UNREACHABLE_DATABASE}, "ORDERFLOW_DATABASE_URL"),
    ("api", {"ORDERFLOW_REDIS_URL": UNREACHABLE_REDIS}, "ORDERFLOW_REDIS_URL"),
    ("api", {"ORDERFLOW_REDIS_URL": "http://127.0.0.1:6379"}, "ORDERFLOW_REDIS_URL"),
    ("worker", {"ORDERFLOW_EMAIL_PROVIDER": "sendgrid"}, "ORDERFLOW_SENDGRID_API_KEY"),
    ("worker", {"ORDERFLOW_DATABASE_URL": UNREACHABLE_DATABASE}, "ORDERFLOW_DATABASE_URL"),
    ("worker", {"ORDERFLOW_REDIS_URL": UNREACHABLE_REDIS}, "ORDERFLOW_REDIS_URL"),
    ("beat", {"ORDERFLOW_REDIS_URL": UNREACHABLE_REDIS}, "ORDERFLOW_REDIS_URL"),
    ("relay", {"ORDERFLOW_DATABASE_URL": "mysql://nobody@nowhere/db"}, "ORDERFLOW_DATABASE_URL"),
]


@pytest.mark.parametrize(("program", "extra", "setting"), CASES)
def test_bad_settings_stop_start_up_in_one_line(
    settings: Settings, tmp_path: Path, program: str, extra: dict[str, str], setting: str
) -> None:
    _assert_one_line(_start(program, _env(settings, **extra), tmp_path), setting)

"""Flower on the orderflow settings: ``python -m workers.flower``.

Reads ``ORDERFLOW_FLOWER_PORT``, ``ORDERFLOW_FLOWER_HOST`` and ``ORDERFLOW_FLOWER_BASIC_AUTH``
(``user:password``, several separated by commas) and runs ``celery -A workers.app flower``.
The credentials travel in Flower's environment (``FLOWER_BASIC_AUTH``), never on the
command line where ``ps`` would show them. Flower's HTTP API (``/api/...``) answers scripts
with the same basic auth; without credentials it is opened only on a loopback address."""

from __future__ import annotations

import os
import sys

from orderflow.settings import Settings
from orderflow.startup import exit_on_config_error, load_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def flower_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The argv and the extra environment Flower is started with."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "flower",
        f"--port={settings.flower_port}",
        f"--address={settings.flower_host}",
        "--purge_offline_workers=300",
    ]
    env: dict[str, str] = {}
    if settings.flower_basic_auth is not None:
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    elif settings.flower_host in LOOPBACK:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
    return argv, env


def main() -> None:
    settings = exit_on_config_error(load_settings, program="orderflow flower")
    argv, env = flower_command(settings)
    os.execve(sys.executable, argv, {**os.environ, **env})


if __name__ == "__main__":
    main()

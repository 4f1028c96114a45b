"""``docker-compose.yml`` without a Docker engine: valid against the Compose Specification's
JSON schema (``data/compose-spec.json``, from github.com/compose-spec/compose-spec,
Apache-2.0), consistent with the system (queues, settings, health checks), every command one
the README documents, and accepted by ``docker compose config`` when a client is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from celeryconfig import STEP_QUEUES, WEBHOOK_QUEUE
from orderflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
#: Variables ``docker compose`` interpolates; the file refuses to start without the secrets.
COMPOSE_ENV = {
    "ORDERFLOW_DB_PASSWORD": "db-password",
    "ORDERFLOW_JWT_SECRET": "x" * 40,
    "ORDERFLOW_ADMIN_PASSWORD": "admin-password",
    "ORDERFLOW_FLOWER_BASIC_AUTH": "ops:flower-password",
}
#: Interpolated by compose itself, not a setting of the application.
COMPOSE_ONLY = {"ORDERFLOW_DB_PASSWORD"}
INFRASTRUCTURE = {"postgres", "redis"}
#: Read by a library, not by our settings: prometheus-client's directory where a server's
#: processes keep the metrics that /metrics sums (the API's uvicorn --workers).
LIBRARY_ONLY = {"PROMETHEUS_MULTIPROC_DIR"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _ours(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if name not in INFRASTRUCTURE}


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    errors = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["depends_on"]["redis"]["condition"] = "whenever"
    broken["services"]["api"]["restart_policy"] = "always"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_the_system_is_all_there(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", "migrate", "api", "relay", "beat", "flower"} <= set(services)
    assert any(name.startswith("worker") for name in services)
    assert (REPO / "Dockerfile").is_file()
    for service in _ours(services).values():
        assert service["build"] == "."


def test_databases_have_health_checks_and_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name in INFRASTRUCTURE:
        assert services[name]["healthcheck"]["test"], name
        volume = services[name]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], name


def test_start_order_waits_for_health_and_migrations(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name, service in _ours(services).items():
        if name == "migrate":
            continue
        rules = service["depends_on"]
        assert rules["migrate"]["condition"] == "service_completed_successfully", name
        assert rules["redis"]["condition"] == "service_healthy", name


def test_configuration_is_orderflow_settings_only(
    services: dict[str, dict[str, Any]],
) -> None:
    fields = set(Settings.model_fields)
    for name, service in _ours(services).items():
        for variable in set(service["environment"]) - LIBRARY_ONLY:
            assert variable.startswith("ORDERFLOW_"), f"{name}: {variable}"
            assert variable.removeprefix("ORDERFLOW_").lower() in fields, f"{name}: {variable}"
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert interpolated, "secrets come from the environment"
    for variable in interpolated - COMPOSE_ONLY:
        assert variable.startswith("ORDERFLOW_"), variable
        assert variable.removeprefix("ORDERFLOW_").lower() in fields, variable


def test_workers_cover_every_queue_once_with_events_on(
    services: dict[str, dict[str, Any]],
) -> None:
    consumed: list[str] = []
    for name, service in services.items():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "workers.app", "worker"]:
            assert "-E" in command, name
            consumed += command[command.index("-Q") + 1].split(",")
            assert service["environment"]["ORDERFLOW_WORKER_METRICS_PORT"], name
    assert sorted(consumed) == sorted((*STEP_QUEUES, WEBHOOK_QUEUE))


def test_flower_has_basic_auth_and_its_port(services: dict[str, dict[str, Any]]) -> None:
    flower = services["flower"]
    assert flower["command"] == ["python", "-m", "workers.flower"]
    assert "ORDERFLOW_FLOWER_BASIC_AUTH" in flower["environment"]
    assert flower["ports"][0].endswith(":5555")


def _documented_forms(command: list[str] | str) -> list[str]:
    """The part of a command the README must show: the program and what it runs."""
    if isinstance(command, str):
        command = command.split()
    if command[:2] == ["sh", "-c"]:
        return [part.strip() for part in command[2].split("&&")]
    if command[0] == "celery":
        return [" ".join(command[:4])]
    if command[0] == "python":
        return [" ".join(command[:3])]
    if command[0] == "uvicorn":
        return [" ".join(command[:3])]
    return [" ".join(command[:2])]


def test_every_command_is_one_the_readme_documents(services: dict[str, dict[str, Any]]) -> None:
    readme = (REPO / "README.md").read_text()
    for name, service in _ours(services).items():
        for form in _documented_forms(service["command"]):
            assert form in readme, f"{name}: {form!r} is not in README.md"


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("no docker compose client installed (the schema test still ran)")
    done = subprocess.run(
        [*client, "-f", str(COMPOSE), "config", "--quiet"],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), **COMPOSE_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_the_api_outweighs_everything_that_fulfils(services: dict[str, dict[str, Any]]) -> None:
    """On a busy host accepting orders goes first: cpu_shares as make run's nice does."""
    api = services["api"].get("cpu_shares", 1024)
    fulfilling = [n for n in _ours(services) if n.startswith("worker") or n in
                  ("relay", "beat", "flower")]  # fmt: skip
    assert len(fulfilling) >= 5
    for name in fulfilling:
        assert services[name]["cpu_shares"] * 4 <= api, name

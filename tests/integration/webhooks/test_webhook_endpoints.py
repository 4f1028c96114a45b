"""The /webhook-endpoints API: the secret shown once, changes, pause, delete, rotation,
deliveries, replay and retry answers, and who may use it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from orderflow.db import Database
from orderflow.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD


@pytest.fixture
def dev_admin(
    settings: Settings, clean_database: Database, admin: httpx.Client
) -> Iterator[TestClient]:
    """An admin of an API that accepts private URLs (development), in process."""
    dev = settings.model_copy(update={"webhook_allow_private_urls": True})
    with TestClient(create_app(dev), base_url="http://test/api/v1/") as client:
        login = client.post("auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        client.cookies.clear()
        yield client


def _create(client: TestClient, **body: Any) -> Any:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["order.*"], **body}
    return client.post("webhook-endpoints", json=body)


def test_create_read_change_delete(dev_admin: TestClient) -> None:
    created = _create(dev_admin, description="ERP")
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["id"].startswith("we_")
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["status"] == "enabled"
    assert endpoint["event_types"] == ["order.*"]
    read = dev_admin.get(f"webhook-endpoints/{endpoint['id']}").json()
    assert "secret" not in read
    listed = dev_admin.get("webhook-endpoints").json()
    assert listed["total"] == 1
    assert "secret" not in listed["items"][0]
    changed = dev_admin.patch(
        f"webhook-endpoints/{endpoint['id']}",
        json={"event_types": ["payment.*", "refund.succeeded"], "status": "paused"},
    ).json()
    assert changed["event_types"] == ["payment.*", "refund.succeeded"]
    assert changed["status"] == "paused"
    refused = dev_admin.patch(f"webhook-endpoints/{endpoint['id']}", json={"status": "disabled"})
    assert refused.status_code == 422
    assert (
        dev_admin.patch(f"webhook-endpoints/{endpoint['id']}", json={"url": None}).status_code
        == 422
    )
    rotated = dev_admin.post(f"webhook-endpoints/{endpoint['id']}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["previous_secret_expires_at"] is not None
    deliveries = dev_admin.get(f"webhook-endpoints/{endpoint['id']}/deliveries")
    assert deliveries.json()["total"] == 0
    replay = dev_admin.post(
        f"webhook-endpoints/{endpoint['id']}/replay", json={"since": "2026-01-01T00:00:00Z"}
    )
    assert replay.status_code == 202
    assert replay.json() == {"deliveries": 0}
    assert dev_admin.delete(f"webhook-endpoints/{endpoint['id']}").status_code == 204
    assert dev_admin.get(f"webhook-endpoints/{endpoint['id']}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "webhook-endpoints/we_missing"),
        ("PATCH", "webhook-endpoints/we_missing"),
        ("DELETE", "webhook-endpoints/we_missing"),
        ("POST", "webhook-endpoints/we_missing/rotate-secret"),
        ("GET", "webhook-endpoints/we_missing/deliveries"),
        ("POST", "webhook-deliveries/whd_999/retry"),
        ("POST", "webhook-deliveries/nonsense/retry"),
    ],
)
def test_missing_is_404(dev_admin: TestClient, method: str, path: str) -> None:
    body = {"status": "paused"} if method == "PATCH" else None
    assert dev_admin.request(method, path, json=body).status_code == 404


def test_clients_may_not_manage_webhooks(customer: httpx.Client, api: httpx.Client) -> None:
    body = {"url": "https://93.184.216.34/", "event_types": ["order.*"]}
    assert customer.post("/webhook-endpoints", json=body).status_code == 403
    assert customer.get("/webhook-endpoints").status_code == 403
    assert api.get("/webhook-endpoints").status_code == 401

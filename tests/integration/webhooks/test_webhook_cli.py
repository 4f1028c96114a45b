"""``orderflow webhooks``: endpoints with their health, retrying exhausted deliveries,
replaying a window."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import text

from orderflow.db import Database
from orderflow.models import Product
from orderflow.settings import Settings
from orderflow.webhooks import endpoints
from tests.conftest import order_body
from tests.integration.test_cli import orderflow


def test_list_retry_failed_and_replay(
    settings: Settings,
    clean_database: Database,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    assert "no webhook endpoints" in orderflow(settings, "webhooks", "list").stdout
    with clean_database.unit_of_work() as session:
        endpoint_id = endpoints.create_endpoint(
            session, "http://127.0.0.1:9/hook", ["order.placed"], None, allow_private=True
        ).endpoint.id
        session.commit()
    product = make_product()
    for _ in range(2):
        assert customer.post("/orders", json=order_body((product.id, 1))).status_code == 201
    with clean_database.unit_of_work() as session:
        session.execute(text("UPDATE webhook_deliveries SET status = 'exhausted', attempts = 3"))
        session.commit()
    listed = orderflow(settings, "webhooks", "list")
    assert listed.exit_code == 0, listed.output
    assert endpoint_id in listed.stdout
    assert "open=0" in listed.stdout
    assert "exhausted=2" in listed.stdout

    retried = orderflow(settings, "webhooks", "retry-failed", "--endpoint", endpoint_id)
    assert "2 exhausted deliveries will be sent again" in retried.stdout
    with clean_database.unit_of_work() as session:
        statuses = session.scalars(text("SELECT status FROM webhook_deliveries")).all()
    assert statuses == ["failed", "failed"]

    replayed = orderflow(
        settings, "webhooks", "replay", endpoint_id, "--since", "2000-01-01T00:00:00+00:00"
    )
    assert replayed.exit_code == 0, replayed.output
    assert "2 events will be sent again" in replayed.stdout
    with clean_database.unit_of_work() as session:
        assert session.scalar(text("SELECT count(*) FROM webhook_deliveries")) == 4

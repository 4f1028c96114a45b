"""Request ids, the access log and ``/metrics`` of the API (no worker processes: the scrape-time
gauges are checked against rows and queue entries the test makes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import httpx
import redis
from prometheus_client import generate_latest
from sqlalchemy import text

from api.metrics import build_registry
from orderflow.db import Database
from orderflow.fulfilment.redrive import STUCK_REASONS
from orderflow.models import OutboxMessage, Product
from orderflow.outbox import REQUEST_ID_KEY, task_call
from tests.conftest import order_body
from tests.scrape import captured_logs, json_lines, sample


def _metrics(api: httpx.Client, path: str = "/metrics") -> str:
    answer = httpx.get(f"{str(api.base_url).removesuffix('/api/v1/')}{path}", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def test_a_valid_request_id_is_echoed_and_a_bad_one_replaced(api: httpx.Client) -> None:
    given = api.get("/products", headers={"X-Request-ID": "checkout-7f3a.b_1:2"})
    assert given.headers["x-request-id"] == "checkout-7f3a.b_1:2"
    made = api.get("/products").headers["x-request-id"]
    assert len(made) == 32
    assert made != api.get("/products").headers["x-request-id"]
    for bad in ("x" * 129, "has space", "tab\there", "ünïcode"):
        answer = api.get("/products", headers={"X-Request-ID": bad.encode()})
        assert answer.headers["x-request-id"] not in (bad, ""), bad
        assert len(answer.headers["x-request-id"]) == 32
    # Errors too, including those answered before routing (413) and unknown routes.
    assert "x-request-id" in api.get("/nowhere").headers
    too_big = api.post("/auth/register", content=b"x" * 2_000_000)
    assert too_big.status_code == 413
    assert "x-request-id" in too_big.headers


def test_every_request_is_counted_by_route_template(
    api: httpx.Client, customer: httpx.Client
) -> None:
    before = _metrics(api)
    labels = {"method": "GET", "route": "/api/v1/orders/{order_id}", "status": "404"}
    start = sample(before, "orderflow_http_requests_total", **labels) or 0
    for _ in range(3):
        assert customer.get("/orders/ord_doesnotexist").status_code == 404
    after = _metrics(api)
    assert sample(after, "orderflow_http_requests_total", **labels) == start + 3
    count = sample(
        after,
        "orderflow_http_request_duration_seconds_count",
        method="GET",
        route="/api/v1/orders/{order_id}",
    )
    assert count is not None
    assert count >= 3
    # Unknown paths share one series instead of one per path.
    api.get("/no/such/path/123")
    assert sample(_metrics(api), "orderflow_http_requests_total", route="<unmatched>")
    assert _metrics(api, "/api/v1/metrics").startswith("# HELP")


def test_orders_placed_and_scrape_time_gauges(
    api: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
    redis_url: str,
) -> None:
    product = make_product(stock=10)
    placed_before = sample(_metrics(api), "orderflow_orders_placed_total", currency="usd") or 0
    assert customer.post("/orders", json=order_body((product.id, 1))).status_code == 201
    second = customer.post("/orders", json=order_body((product.id, 2))).json()
    scraped = _metrics(api)
    assert sample(scraped, "orderflow_orders_placed_total", currency="usd") == placed_before + 2
    # No relay runs here: both orders' first step waits in the outbox.
    assert sample(scraped, "orderflow_outbox_backlog") == 2
    assert (sample(scraped, "orderflow_outbox_oldest_age_seconds") or -1) >= 0
    assert sample(scraped, "orderflow_metrics_source_up", source="database") == 1
    assert sample(scraped, "orderflow_metrics_source_up", source="broker") == 1
    for reason in STUCK_REASONS:  # every reason is shown, at zero when nothing is stuck
        assert sample(scraped, "orderflow_orders_stuck", reason=reason) == 0
    assert sample(scraped, "orderflow_shipments", status="in_transit") == 0
    assert sample(scraped, "orderflow_shipment_labels", status="purchased") == 0

    broker = redis.Redis.from_url(redis_url)
    broker.lpush("send_email", "a", "b", "c")
    with clean_database.unit_of_work() as session:
        session.execute(
            text(
                "UPDATE orders SET failure_reason = 'payment_provider_unavailable' WHERE id = :id"
            ),
            {"id": second["id"]},
        )
        session.commit()
    scraped = _metrics(api)
    assert sample(scraped, "orderflow_queue_depth", queue="send_email") == 3
    assert sample(scraped, "orderflow_queue_depth", queue="reserve_stock") == 0
    # Stuck means not moved (no new event) for the sweeper's threshold: 30 s for the served
    # app; a registry with a threshold of 0.2 s sees both orders once that has passed.
    assert sample(scraped, "orderflow_orders_stuck", reason="stalled") == 0
    time.sleep(0.3)
    quick = build_registry(SimpleNamespace(database=clean_database, redis=broker), 0.2)
    scraped = generate_latest(quick).decode()
    assert sample(scraped, "orderflow_orders_stuck", reason="stalled") == 1
    assert sample(scraped, "orderflow_orders_stuck", reason="payment_provider_unavailable") == 1
    assert sample(scraped, "orderflow_orders_stuck", reason="awaiting_customer_action") == 0
    assert sample(scraped, "orderflow_stalled_work", step="orderflow.reserve_stock") == 1


def test_touching_a_stuck_order_does_not_hide_it(
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
    redis_url: str,
) -> None:
    """The sweeper touches ``updated_at`` of every order it re-drives (and of every order
    waiting for the customer, whose payment it looks up): that must not take the order out
    of the stuck gauges, or an alert "for 5 m" on them never fires."""
    order = customer.post("/orders", json=order_body((make_product().id, 1))).json()
    time.sleep(0.3)
    state = SimpleNamespace(database=clean_database, redis=redis.Redis.from_url(redis_url))
    registry = build_registry(state, 0.2)
    for _ in range(5):
        with clean_database.unit_of_work() as session:  # what a re-drive does to the row
            session.execute(
                text("UPDATE orders SET updated_at = now() WHERE id = :id"), {"id": order["id"]}
            )
        scraped = generate_latest(registry).decode()
        assert sample(scraped, "orderflow_orders_stuck", reason="stalled") == 1
        assert sample(scraped, "orderflow_stalled_work", step="orderflow.reserve_stock") == 1


def test_access_log_carries_request_and_order_ids(
    api: httpx.Client, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product()
    with captured_logs() as lines:
        created = customer.post(
            "/orders", json=order_body((product.id, 1)), headers={"X-Request-ID": "req-create-1"}
        )
        order_id = created.json()["id"]
        customer.get(f"/orders/{order_id}", headers={"X-Request-ID": "req-read-1"})
    access = [line for line in json_lines("\n".join(lines)) if line.get("logger") == "api.access"]
    by_request = {line["request_id"]: line for line in access}
    create, read = by_request["req-create-1"], by_request["req-read-1"]
    assert (create["method"], create["path"], create["status"]) == ("POST", "/api/v1/orders", 201)
    assert create["order_id"] == order_id
    assert (read["route"], read["status"], read["order_id"]) == (
        "/api/v1/orders/{order_id}",
        200,
        order_id,
    )
    assert all(isinstance(line["duration_ms"], int | float) for line in (create, read))


def test_the_request_id_rides_the_outbox_into_task_headers(
    api: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    product = make_product()
    customer.post(
        "/orders", json=order_body((product.id, 1)), headers={"X-Request-ID": "req-outbox-1"}
    )
    with clean_database.unit_of_work() as session:
        message = session.query(OutboxMessage).one()
        assert message.payload[REQUEST_ID_KEY] == "req-outbox-1"
        kwargs, headers = task_call(message.payload)
        session.commit()
    assert REQUEST_ID_KEY not in kwargs
    assert kwargs["order_id"] == message.order_id
    assert headers == {"request_id": "req-outbox-1"}

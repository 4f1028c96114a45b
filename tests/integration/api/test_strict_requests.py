"""Strict, clear requests, over real HTTP: unknown query parameters are named and refused, a
body that is not JSON is a 415, malformed JSON is located by line and column, a 405 names
what is allowed, HEAD is answered wherever GET is, an order's missing invoice is explained
truthfully, and nothing a client sends is echoed back at any length."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import update

from orderflow.db import Database
from orderflow.fulfilment import stock
from orderflow.models import Product, User
from tests.conftest import order_body
from tests.integration.api.test_bad_input import _assert_problem, _row_counts


@pytest.fixture
def nothing_written(database: Database, customer: httpx.Client) -> Iterator[None]:
    before = _row_counts(database)
    yield
    assert _row_counts(database) == before


def _place(client: httpx.Client, product_id: str) -> str:
    answer = client.post("/orders", json=order_body((product_id, 1)))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


# --- unknown query parameters ---------------------------------------------------------------


def test_an_admin_filtering_by_a_misspelt_parameter_gets_a_422_not_every_order(
    admin: httpx.Client,
    login_as: Callable[[User], httpx.Client],
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
) -> None:
    jane, john = make_user(), make_user()
    product = make_product()
    _place(login_as(jane), product.id)
    _place(login_as(john), product.id)
    answer = admin.get("/orders", params={"user_id": jane.id})
    _assert_problem(answer, 422)
    assert "user_id" in answer.json()["detail"]
    [error] = answer.json()["errors"]
    assert error["field"] == "user_id"
    assert "customer_id" in error["message"]  # what the route does take
    assert admin.get("/orders", params={"customer_id": jane.id}).json()["total"] == 1


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/products", {"limit": "5", "page": "2"}),
        ("/products", {"sort": "price", "q": "mug"}),
        ("/orders", {"state": "pending"}),
        ("/auth/me", {"verbose": "1"}),
        ("/healthz", {"x": ""}),
    ],
)
def test_unknown_query_parameters_are_422_naming_each(
    customer: httpx.Client, path: str, params: dict[str, str]
) -> None:
    answer = customer.get(path, params=params)
    _assert_problem(answer, 422)
    unknown = sorted(set(params) - {"limit"})
    assert sorted(error["field"] for error in answer.json()["errors"]) == unknown
    assert answer.json()["detail"] == f"unknown query parameter: {', '.join(unknown)}"


def test_known_query_parameters_still_work(customer: httpx.Client) -> None:
    assert customer.get("/orders", params={"status": "pending", "limit": "5"}).status_code == 200


# --- bodies that are not JSON ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"items": []}', "text/plain"),
        (b"items=1&payment_method=pm_card_visa", "application/x-www-form-urlencoded"),
        (b"<order><items/></order>", "application/xml"),
        (
            b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
        ),
        (b'{"items": []}', None),
    ],
)
@pytest.mark.usefixtures("nothing_written")
def test_a_body_that_is_not_json_is_415(
    customer: httpx.Client, content: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = customer.post("/orders", content=content, headers=headers)
    _assert_problem(answer, 415)
    assert "application/json" in answer.json()["detail"]


def test_415_on_every_json_route_not_only_orders(
    admin: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product()
    for method, path in (
        ("POST", "/products"),
        ("PATCH", f"/products/{product.id}"),
        ("POST", "/auth/register"),
        ("POST", "/auth/login"),
    ):
        answer = admin.request(
            method, path, content=b"name=x", headers={"Content-Type": "text/plain"}
        )
        _assert_problem(answer, 415)


def test_json_with_a_charset_or_a_json_suffix_is_json(admin: httpx.Client) -> None:
    body = json.dumps({"sku": "CS-1", "name": "Charset", "price": 100}).encode()
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        answer = admin.post("/products", content=body, headers={"Content-Type": content_type})
        assert answer.status_code in (201, 409), answer.text


# --- malformed JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{\n  "items": [\n    {"product_id": "prod_x", "quantity": 1,}\n  ]\n}',
        '{"items": [',
        "{\n\n\n   'items': []}",
        '{"items": []}\n}',
    ],
)
@pytest.mark.usefixtures("nothing_written")
def test_malformed_json_is_located_by_line_and_column(customer: httpx.Client, text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads(text)
    where = f"line {parsed.value.lineno}, column {parsed.value.colno}"
    answer = customer.post(
        "/orders", content=text.encode(), headers={"Content-Type": "application/json"}
    )
    _assert_problem(answer, 422)
    assert where in answer.json()["detail"], answer.json()
    assert parsed.value.msg in answer.json()["detail"]
    assert answer.json()["errors"] == [
        {"field": "body", "message": f"{parsed.value.msg} at {where}", "type": "json_invalid"}
    ]


# --- 405 and HEAD ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/orders", {"GET", "HEAD", "POST"}),
        ("DELETE", "/products", {"GET", "HEAD", "POST"}),
        ("PUT", "/products/prod_x", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("POST", "/orders/ord_x", {"GET", "HEAD", "DELETE", "PATCH"}),
        ("GET", "/orders/ord_x/status", {"PUT"}),
        ("POST", "/auth/me", {"GET", "HEAD", "PATCH"}),
        ("GET", "/auth/login", {"POST"}),
        ("HEAD", "/auth/login", {"POST"}),
        ("OPTIONS", "/orders", {"GET", "HEAD", "POST"}),
    ],
)
def test_405_names_every_allowed_method(
    customer: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    answer = customer.request(method, path)
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["Allow"].split(",")} == allowed
    if method != "HEAD":
        _assert_problem(answer, 405)
        assert answer.json()["detail"].startswith(f"{method} is not allowed")


def test_head_is_answered_wherever_get_is(
    api_url: str, customer: httpx.Client, client_user: User, make_product: Callable[..., Product]
) -> None:
    product = make_product()
    ids = {
        "product_id": product.id,
        "order_id": _place(customer, product.id),
        "customer_id": client_user.id,
    }
    spec = httpx.get(f"{api_url}/openapi.json").json()
    paths = [path for path, operations in spec["paths"].items() if "get" in operations]
    assert len(paths) >= 10
    with httpx.Client(base_url=api_url, headers=customer.headers, timeout=30) as client:
        for template in paths:
            path = template.format_map(defaultdict(lambda: "missing", ids))  # others: 404
            got, head = client.get(path), client.head(path)
            assert head.status_code == got.status_code, path
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
            if not path.endswith("/metrics"):  # the only answer that changes by itself
                assert int(head.headers["content-length"]) == len(got.content), path


def test_head_keeps_the_get_rules(customer: httpx.Client) -> None:
    assert customer.head("/orders", params={"user_id": "x"}).status_code == 422
    assert customer.head("/orders/ord_missing").status_code == 404
    anonymous = httpx.head(str(customer.base_url).rstrip("/") + "/orders")
    assert anonymous.status_code == 401


# --- messages that tell the truth -----------------------------------------------------------


def test_an_order_without_an_invoice_says_whether_it_will_have_one(
    database: Database, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product(stock=5)
    pending = _place(customer, product.id)
    cancelled = _place(customer, product.id)
    failed = _place(customer, product.id)
    assert customer.delete(f"/orders/{cancelled}").status_code == 204
    with database.unit_of_work() as session:  # stock runs out before this order is reserved
        session.execute(update(Product).where(Product.id == product.id).values(stock=0))
        session.commit()
    with database.unit_of_work() as session:
        stock.reserve_stock(session, failed)
        session.commit()
    assert customer.get(f"/orders/{failed}").json()["status"] == "failed"

    def detail(order_id: str) -> str:
        answer = customer.get(f"/orders/{order_id}/invoice")
        _assert_problem(answer, 404)
        return str(answer.json()["detail"])

    assert "yet" in detail(pending)
    for order_id in (failed, cancelled):
        told = detail(order_id)
        assert "yet" not in told
        assert "will not get one" in told
    assert "insufficient_stock" in detail(failed)
    assert "cancelled" in detail(cancelled)


# --- nothing echoed at length ---------------------------------------------------------------


def test_long_ids_and_values_are_cut_in_errors(api_url: str, customer: httpx.Client) -> None:
    long_id = "x" * 5000
    answers = [
        customer.get(f"/orders/{long_id}"),
        customer.get(f"/products/{long_id}"),
        customer.get(f"/orders/{long_id}/invoice"),
        customer.delete(f"/orders/{long_id}"),
        customer.patch(f"/orders/{long_id}"),
        customer.get(f"/nothing/{long_id}"),
        customer.get("/orders", params={long_id: "1"}),
        customer.get("/orders", params={"status": long_id}),
        customer.post("/orders", content=b"{}", headers={"Content-Type": f"text/{long_id}"}),
        customer.post(
            "/orders",
            content=b'{"x": "' + long_id.encode() + b'"',
            headers={"Content-Type": "application/json"},
        ),
        httpx.get(f"{api_url}/{long_id}"),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text[:200]
        assert answer.headers["content-type"] == "application/problem+json"
        assert "x" * 65 not in answer.text, answer.text[:200]
        assert len(answer.content) < 2000, answer.text[:200]
    # What is echoed is still recognisable: its start, marked as cut.
    assert "x" * 64 + "…" in customer.get(f"/orders/{long_id}").json()["detail"]

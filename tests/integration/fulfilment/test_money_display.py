"""Amounts are shown to people in their currency's own format (ISO 4217 minor units, CLDR's
way of writing them): on the invoice PDF and in the confirmation e-mail, with real worker
processes on the local providers. Only ISO 4217 currencies and ISO 3166-1 countries get in."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select, update

from orderflow.db import Database
from orderflow.email.local import LocalEmailSender
from orderflow.idempotency import email_message_key
from orderflow.models import EmailRecord, Product
from orderflow.settings import Settings
from tests.conftest import order_body, wait_for_status
from tests.system import SystemProcesses, wait_until


def _readable(text: str) -> str:
    """Text as a reader sees it: CLDR's no-break space between a code and digits is a space."""
    return " ".join(text.replace("\u00a0", " ").split())


@pytest.mark.workers
@pytest.mark.parametrize(
    ("currency", "price", "quantity", "unit", "total", "not_shown"),
    [
        # 1500 minor units of a currency without decimals is 1,500 yen, not 15.00.
        ("jpy", 1500, 2, "¥1,500", "¥3,000", "15.00"),
        # Three decimals: 1500 minor units are 1.500 dinars.
        ("kwd", 1500, 2, "KWD 1.500", "KWD 3.000", "15.00"),
        ("usd", 1500, 2, "$15.00", "$30.00", "USD"),
    ],
)
def test_invoice_and_email_show_amounts_in_the_currencys_own_format(
    local_pipeline: SystemProcesses,
    database: Database,
    settings: Settings,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    currency: str,
    price: int,
    quantity: int,
    unit: str,
    total: str,
    not_shown: str,
) -> None:
    product = make_product(price=price, currency=currency)
    placed = customer.post("/orders", json=order_body((product.id, quantity)))
    assert placed.status_code == 201, placed.text
    assert (placed.json()["currency"], placed.json()["total"]) == (currency, price * quantity)
    order_id = placed.json()["id"]
    assert wait_for_status(customer, order_id, {"confirmed", "failed"})["status"] == "confirmed"

    def email_sent() -> bool:
        with database.unit_of_work() as session:
            status = session.scalar(
                select(EmailRecord.status).where(
                    EmailRecord.order_id == order_id, EmailRecord.kind == "confirmation"
                )
            )
        return status == "sent"

    wait_until(email_sent, 30)
    # The confirmation e-mail follows the invoice: both exist now.
    invoice = customer.get(f"/orders/{order_id}/invoice")
    assert invoice.status_code == 200, invoice.text
    shown = _readable(PdfReader(io.BytesIO(invoice.content)).pages[0].extract_text())
    assert f"{unit} {total}" in shown  # the line: unit price, amount
    assert f"Total {total}" in shown
    assert not_shown not in shown

    sender = LocalEmailSender(settings.emails_dir, settings.email_from)
    message = sender.read(email_message_key(order_id, "confirmation"))
    assert message is not None
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = _readable(body.get_content())
    assert f"We received your payment of {total}." in text
    assert not_shown not in text


def test_a_product_in_a_currency_without_decimals_keeps_its_minor_units(
    admin: httpx.Client,
) -> None:
    created = admin.post(
        "/products", json={"sku": "YEN-1", "name": "Tenugui", "price": 1500, "currency": "jpy"}
    )
    assert created.status_code == 201, created.text
    assert (created.json()["price"], created.json()["currency"]) == (1500, "jpy")
    assert admin.get(f"/products/{created.json()['id']}").json()["price"] == 1500


@pytest.mark.parametrize("currency", ["xyz", "abc", "xau", "xts"])
def test_a_currency_iso_4217_does_not_list_is_refused(admin: httpx.Client, currency: str) -> None:
    created = admin.post(
        "/products", json={"sku": "X-1", "name": "Thing", "price": 100, "currency": currency}
    )
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["field"] == "currency"
    assert "ISO 4217" in created.json()["errors"][0]["message"]
    product = admin.post("/products", json={"sku": "X-2", "name": "Thing", "price": 100}).json()
    changed = admin.patch(f"/products/{product['id']}", json={"currency": currency})
    assert changed.status_code == 422, changed.text
    assert admin.get("/products").json()["total"] == 1


@pytest.mark.parametrize("country", ["XX", "UK", "ZZ", "EU"])
def test_a_country_iso_3166_does_not_assign_is_refused(
    customer: httpx.Client, make_product: Callable[..., Product], country: str
) -> None:
    body = order_body((make_product().id, 1))
    body["shipping_address"]["country"] = country
    answer = customer.post("/orders", json=body)
    assert answer.status_code == 422, answer.text
    assert [error["field"] for error in answer.json()["errors"]] == ["shipping_address.country"]
    assert "ISO 3166-1" in answer.json()["errors"][0]["message"]
    assert customer.get("/orders").json()["total"] == 0


def test_the_spec_lists_the_currencies_and_countries(api_url: str) -> None:
    schemas = httpx.get(f"{api_url}/openapi.json").json()["components"]["schemas"]
    currency = schemas["ProductCreate"]["properties"]["currency"]
    country = schemas["ShippingAddress"]["properties"]["country"]
    assert {"usd", "eur", "jpy", "kwd"} <= set(currency["enum"])
    assert "xyz" not in currency["enum"]
    assert {"US", "JP", "KW"} <= set(country["enum"])
    assert "XX" not in country["enum"]


def test_a_product_stored_with_an_unknown_currency_is_refused_not_a_500(
    database: Database, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product()
    with database.unit_of_work() as session:  # as a product created before the check
        session.execute(update(Product).where(Product.id == product.id).values(currency="xyz"))
        session.commit()
    answer = customer.post("/orders", json=order_body((product.id, 1)))
    assert answer.status_code == 422, answer.text
    assert "ISO 4217" in answer.json()["detail"]
    assert customer.get("/orders").json()["total"] == 0

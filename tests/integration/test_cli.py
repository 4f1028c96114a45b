"""The ``orderflow`` command against the test database: outbox, redrive, audit, and its
one-line configuration errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from orderflow.cli import app
from orderflow.db import Database
from orderflow.fulfilment import charging, stock
from orderflow.models import Order, OrderEvent, OutboxMessage, Payment, Product
from orderflow.settings import Settings
from tests.conftest import order_body

runner = CliRunner()


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "ORDERFLOW_ENVIRONMENT": "test",
        "ORDERFLOW_DATABASE_URL": settings.database_url,
        "ORDERFLOW_REDIS_URL": settings.redis_url,
        "ORDERFLOW_STATE_DIR": str(settings.state_dir),
        "ORDERFLOW_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "ORDERFLOW_PAYMENT_PROVIDER": "local",
        "ORDERFLOW_EMAIL_PROVIDER": "local",
        **extra,
    }


def orderflow(settings: Settings, *args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env=cli_env(settings, **env))


def _place(customer: httpx.Client, product: Product) -> str:
    answer = customer.post("/orders", json=order_body((product.id, 1)))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _park(database: Database, order_id: str) -> None:
    """What the charge task does once its retries against a provider that is down are spent."""
    with database.unit_of_work() as session:
        stock.reserve_stock(session, order_id)
        session.commit()
    with database.unit_of_work() as session:
        assert charging.begin_charge(session, order_id) is not None
        session.commit()
    with database.unit_of_work() as session:
        charging.give_up_charge(session, order_id, charging.PROVIDER_UNAVAILABLE)
        session.commit()


def _age(database: Database, order_id: str) -> None:
    with database.unit_of_work() as session:
        session.execute(
            text("UPDATE orders SET updated_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": order_id},
        )
        session.commit()


def test_outbox_shows_backlog_and_age(
    settings: Settings, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    assert "outbox backlog: 0 messages" in orderflow(settings, "outbox").stdout
    _place(customer, make_product())
    result = orderflow(settings, "outbox")
    assert result.exit_code == 0
    assert "outbox backlog: 1 messages, oldest " in result.stdout


def test_redrive_dry_run_then_redrive(
    settings: Settings,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    product = make_product(stock=10)
    parked, stalled, fresh = (_place(customer, product) for _ in range(3))
    _park(clean_database, parked)
    _age(clean_database, stalled)
    with clean_database.unit_of_work() as session:
        before = session.scalar(select(text("count(*)")).select_from(OutboxMessage))
        session.commit()

    dry = orderflow(settings, "redrive", "--dry-run", "--older-than", "60")
    assert dry.exit_code == 0, dry.output
    assert f"would re-drive {parked}: orderflow.charge_payment (payment_provider_unavailable)" in (
        dry.stdout
    )
    assert f"would re-drive {stalled}: orderflow.reserve_stock (stalled)" in dry.stdout
    assert fresh not in dry.stdout
    with clean_database.unit_of_work() as session:
        assert session.get(Order, parked).failure_reason == charging.PROVIDER_UNAVAILABLE
        assert session.scalar(select(text("count(*)")).select_from(OutboxMessage)) == before
        session.commit()

    done = orderflow(settings, "redrive", "--older-than", "60")
    assert done.exit_code == 0, done.output
    assert "2 re-driven" in done.stdout
    with clean_database.unit_of_work() as session:
        order = session.get(Order, parked)
        assert order is not None
        assert order.failure_reason is None
        charge = session.scalar(select(Payment).where(Payment.order_id == parked))
        assert charge is not None
        assert charge.status == "processing"
        topics = session.execute(
            select(OutboxMessage.order_id, OutboxMessage.topic).where(
                OutboxMessage.dispatched_at.is_(None)
            )
        ).all()
        assert (parked, "orderflow.charge_payment") in topics
        assert (stalled, "orderflow.reserve_stock") in topics
        events = session.scalars(select(OrderEvent.type).where(OrderEvent.order_id == parked)).all()
        assert "payment_redriven" in events
        session.commit()
    # Re-driven orders were touched: nothing is owed again until the threshold passes.
    again = orderflow(settings, "redrive", "--older-than", "60")
    assert "nothing to re-drive" in again.stdout


def test_audit_passes_then_finds_a_planted_violation(
    settings: Settings,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    product = make_product(stock=10)
    _place(customer, product)
    clean = orderflow(settings, "audit")
    assert clean.exit_code == 0, clean.output
    assert "no violations" in clean.stdout
    # Stock that appears from nowhere: not an admin's change, not a reservation.
    with clean_database.unit_of_work() as session:
        session.execute(
            text("UPDATE products SET stock = stock + 5 WHERE id = :id"), {"id": product.id}
        )
        session.commit()
    broken = orderflow(settings, "audit")
    assert broken.exit_code == 1
    assert f"stock_conserved: {product.id}: transaction " in broken.stdout
    assert "moved the stock by 5 and its reservations by 0" in broken.stdout
    assert "1 violations found" in broken.stderr


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"ORDERFLOW_PORT": "not-a-port"}, "ORDERFLOW_PORT"),
        ({"ORDERFLOW_SWEEP_STALL_SECONDS": "-1"}, "ORDERFLOW_SWEEP_STALL_SECONDS"),
        ({"ORDERFLOW_PAYMENT_PROVIDER": "stripe"}, "ORDERFLOW_STRIPE_API_KEY"),
        ({"ORDERFLOW_EMAIL_PROVIDER": "sendgrid"}, "ORDERFLOW_SENDGRID_API_KEY"),
        ({"ORDERFLOW_EMAIL_PROVIDER": "carrier-pigeon"}, "ORDERFLOW_EMAIL_PROVIDER"),
        ({"ORDERFLOW_JWT_SECRET": "short"}, "ORDERFLOW_JWT_SECRET"),
        ({"ORDERFLOW_DATABASE_URL": "not a url"}, "ORDERFLOW_DATABASE_URL"),
        ({"ORDERFLOW_DATABASE_URL": ""}, "ORDERFLOW_DATABASE_URL"),
        (
            {"ORDERFLOW_DATABASE_URL": "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/x"},
            "ORDERFLOW_DATABASE_URL",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    settings: Settings, env: dict[str, str], names: str
) -> None:
    result = orderflow(settings, "audit", **env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("orderflow: configuration error: ")
    assert names in lines[0]
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output
    assert result.stdout == ""


def test_the_command_line_itself_exits_2_without_a_traceback(settings: Settings) -> None:
    env = cli_env(settings, ORDERFLOW_DATABASE_URL="postgresql+psycopg://x@127.0.0.1:1/x")
    done = subprocess.run(
        [sys.executable, "-m", "orderflow.cli", "redrive"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert "ORDERFLOW_DATABASE_URL" in done.stderr
    assert "Connection refused" in done.stderr

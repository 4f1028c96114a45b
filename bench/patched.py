"""Prototype optimisations, measured without editing the project:
``python -m bench.patched -m MODULE ARGS…`` applies the patches named in ``BENCH_PATCHES``
(comma-separated) and then runs ``MODULE`` as ``python -m`` would. The benchmarks start the
system through it when given ``--patch NAME`` (repeatable), so a prototype runs in the very
processes it would run in (the API under uvicorn, the worker and its pool, the relay).

These are measurements, not the project's code: each patch stands for a small change the
project could make, described in its docstring; the figures say whether it is worth it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import runpy
import sys
import typing
from collections.abc import Callable
from typing import Any

PATCHES_ENV = "BENCH_PATCHES"


def async_deps() -> None:
    """FastAPI runs every plain ``def`` dependency in the thread pool: a thread hand-off
    each. The ones that only read ``request.app.state`` or a header (settings, database,
    bearer token, viewer, limiter) become ``async def``, so they run on the event loop."""
    import api.deps as deps
    import api.ratelimit as ratelimit

    deps.get_database = _async_twin(deps.get_database)  # read when get_session is analysed
    for alias, original in (
        (deps.SettingsDep, deps.get_settings_dep),
        (deps.ViewerDep, deps.viewer_of),
        (deps.AccessToken, deps.access_token_of),
        (ratelimit.LimiterDep, ratelimit._limiter),
    ):
        object.__setattr__(typing.get_args(alias)[1], "dependency", _async_twin(original))


def _async_twin(original: Callable[..., Any]) -> Callable[..., Any]:
    """The same function as a coroutine, with the same (evaluated) signature for FastAPI."""

    async def twin(**kwargs: Any) -> Any:
        return original(**kwargs)

    twin.__signature__ = inspect.signature(original, eval_str=True)  # type: ignore[attr-defined]
    twin.__name__ = twin.__qualname__ = original.__name__
    return twin


def lazy_lines() -> None:
    """``lock_order`` (SELECT … FOR UPDATE with ``populate_existing``) reloads the order's
    lines every time (``lazy="selectin"``), three times in the charge step that never reads
    them. Loading them only when read (``lazyload``) leaves them to the steps that need them."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session, lazyload

    from orderflow.errors import NotFound
    from orderflow.models import Order
    from orderflow.orders import lifecycle

    original = lifecycle.lock_order

    def lock_order(session: Session, order_id: str) -> Order:
        order = session.scalar(
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .options(lazyload(Order.lines))
            .execution_options(populate_existing=True)
        )
        if order is None:
            raise NotFound(f"order {order_id} does not exist", order_id=order_id)
        return order

    for name, module in list(sys.modules.items()):
        if name.startswith("orderflow") and getattr(module, "lock_order", None) is original:
            module.lock_order = lock_order  # type: ignore[attr-defined]


def relay_core() -> None:
    """The relay claims and marks a batch with one Core statement
    (``UPDATE outbox … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …``) instead
    of an ORM SELECT, ORM objects and an UPDATE; it still publishes before its transaction
    commits, so a relay that dies re-publishes (at least once, as before)."""
    from sqlalchemy import text

    from workers import relay

    claim = text(
        "UPDATE outbox SET dispatched_at = now(), attempts = attempts + 1 WHERE id IN ("
        "SELECT id FROM outbox WHERE dispatched_at IS NULL ORDER BY id LIMIT :n "
        "FOR UPDATE SKIP LOCKED) RETURNING id, topic, payload"
    )

    def relay_once(database: Any) -> int:
        with database.engine.begin() as connection:
            rows = sorted(connection.execute(claim, {"n": relay.RELAY_BATCH}).all())
            for _, topic, payload in rows:
                relay.publish(topic, payload)
        return len(rows)

    relay.relay_once = relay_once


def no_sent_event() -> None:
    """``task_send_sent_event = False``: the relay stops publishing a ``task-sent`` event
    per message (Flower then shows a task from ``received`` on)."""
    from workers.app import app

    app.conf.task_send_sent_event = False


def no_pre_ping() -> None:
    """``make_engine`` without ``pool_pre_ping``: every checkout of a pooled connection
    (each request, each step's transaction, each relay batch) stops costing a ``SELECT 1``
    round trip. A dead connection then fails its first statement instead, which the API
    answers 503/500 once and the tasks retry (``autoretry_for`` OperationalError)."""
    import orderflow.db as db

    original = db.make_engine

    def make_engine(*args: Any, **kwargs: Any) -> Any:
        engine = original(*args, **kwargs)
        engine.pool._pre_ping = False
        return engine

    db.make_engine = make_engine
    for module in list(sys.modules.values()):
        if getattr(module, "make_engine", None) is original:
            module.make_engine = make_engine  # type: ignore[attr-defined]


def session_limit() -> None:
    """At most as many request sessions at once as the pool has connections (10 + 10):
    ``Depends(get_session, scope="function", max_concurrency=20)``. Without it, more than
    ~40 concurrent requests deadlock for the pool timeout (30 s) and answer 500: requests
    holding a connection wait for a worker thread while all 40 threads wait for a
    connection. FastAPI's limit waits on the event loop, not in a thread."""
    import api.deps as deps

    depends = typing.get_args(deps.SessionDep)[1]
    object.__setattr__(depends, "max_concurrency", 20)
    depends.__post_init__()


def core_intake() -> None:
    """``place_order`` writes with SQLAlchemy Core instead of the ORM unit of work: the order
    (``RETURNING created_at, updated_at``), its lines (one executemany), the event and the
    outbox row as plain INSERTs, the catalogue read as a column SELECT, and the answer built
    from the values it wrote, so the ``refresh`` (a SELECT of the order and one of its lines)
    goes too. Same checks, same rows, same transaction."""
    from sqlalchemy import func, insert, select, text
    from sqlalchemy.orm import Session

    from orderflow import outbox
    from orderflow.errors import InsufficientStock, NotFound, Unprocessable
    from orderflow.fulfilment.steps import Step
    from orderflow.ids import new_id
    from orderflow.models import Order, OrderEvent, OrderLine, OutboxMessage, Product, User
    from orderflow.orders import service
    from orderflow.orders.state import OrderStatus, PaymentStatus

    columns = (Product.id, Product.sku, Product.name, Product.price_amount, Product.currency,
               Product.stock, Product.active)  # fmt: skip

    def place_order(session: Session, command: Any) -> Order:
        if session.get(User, command.customer_id) is None:
            raise NotFound(f"customer {command.customer_id} does not exist")
        wanted = [line.product_id for line in command.items]
        if len(set(wanted)) != len(wanted):
            raise Unprocessable(
                "each product may appear on one line only; raise the quantity instead",
                errors=[{"field": "items", "message": "duplicate product_id"}],
            )
        found = {row.id: row for row in session.execute(
            select(*columns).where(Product.id.in_(wanted)))}  # fmt: skip
        for product_id in wanted:
            if product_id not in found or not found[product_id].active:
                raise NotFound(
                    f"product {product_id} does not exist or is no longer sold",
                    product_id=product_id,
                )
        currencies = {row.currency for row in found.values()}
        if len(currencies) != 1:
            raise Unprocessable(
                "all products of one order must be priced in the same currency",
                errors=[{"field": "items", "message": "mixed currencies"}],
            )
        currency = currencies.pop()
        order_id, lines, total = new_id("ord"), [], 0
        for line_no, requested in enumerate(command.items, start=1):
            product = found[requested.product_id]
            if product.stock < requested.quantity:
                raise InsufficientStock(
                    f"product {product.id} has {product.stock} in stock, "
                    f"{requested.quantity} requested",
                    product_id=product.id,
                )
            subtotal = product.price_amount * requested.quantity
            total += subtotal
            lines.append({
                "order_id": order_id, "line_no": line_no, "product_id": product.id,
                "sku": product.sku, "name": product.name, "quantity": requested.quantity,
                "unit_price_amount": product.price_amount, "subtotal_amount": subtotal,
            })  # fmt: skip
        values = {
            "id": order_id, "customer_id": command.customer_id,
            "status": OrderStatus.PENDING.value, "payment_status": PaymentStatus.UNPAID.value,
            "currency": currency, "subtotal_amount": total, "total_amount": total,
            "shipping_address": command.shipping_address,
            "payment_method": command.payment_method,
        }  # fmt: skip
        created_at, updated_at = session.execute(
            insert(Order).values(values).returning(Order.created_at, Order.updated_at)
        ).one()
        session.execute(insert(OrderLine), lines)
        session.execute(insert(OrderEvent).values(
            id=new_id("evt"), order_id=order_id, type="order_placed", actor=command.customer_id,
            data={"total": total, "currency": currency, "lines": len(lines)},
            created_at=func.clock_timestamp(),
        ))  # fmt: skip
        payload: dict[str, Any] = {"order_id": order_id}
        request_id = outbox.current_request_id()
        if request_id is not None:
            payload[outbox.REQUEST_ID_KEY] = request_id
        session.execute(insert(OutboxMessage).values(
            topic=Step.RESERVE_STOCK.value, order_id=order_id, payload=payload))  # fmt: skip
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox.NOTIFY_CHANNEL})
        # A transient object for the response only; never added to the session.
        return Order(
            **values, invoice_number=None, payment_intent_id=None, failure_reason=None,
            created_at=created_at, updated_at=updated_at,
            lines=[OrderLine(**{k: v for k, v in line.items() if k != "order_id"})
                   for line in lines],
        )  # fmt: skip

    service.place_order = place_order


PATCHES: dict[str, Callable[[], None]] = {
    "core_intake": core_intake,
    "session_limit": session_limit,
    "no_pre_ping": no_pre_ping,
    "async_deps": async_deps,
    "lazy_lines": lazy_lines,
    "relay_core": relay_core,
    "no_sent_event": no_sent_event,
}


def apply(names: str) -> list[str]:
    applied = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
        PATCHES[name]()
        applied.append(name)
    return applied


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        raise SystemExit("usage: python -m bench.patched -m MODULE [ARGS…]")
    module = sys.argv[2]
    applied = apply(os.environ.get(PATCHES_ENV, ""))
    print(f"bench.patched: {', '.join(applied) or 'no patches'}; running {module}", flush=True)
    sys.argv = [module, *sys.argv[3:]]
    target = importlib.import_module(module)
    if not hasattr(target, "__path__") and callable(getattr(target, "main", None)):
        # A module with a main() (the relay): call it on the module the patches changed,
        # not on a fresh copy run as __main__.
        target.main()
    else:
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

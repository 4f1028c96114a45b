"""Anatomy of one order: ``python -m bench.anatomy``.

Where an order's cost goes, measured in one process so that nothing else on the machine
blurs it: SQL statements, transactions and CPU milliseconds of an intake request (the real
app in-process through Starlette's TestClient, and the service call alone), of every
pipeline step (the same functions the Celery tasks call, with the local providers), of the
outbox relay per message (batches of 1, as it runs under light load, and of 200), of
publishing one Celery message, of rendering one invoice PDF and of building one e-mail.
The statements of each phase are listed, so N+1 queries and repeated reads show.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from bench.common import (
    bench_database,
    bench_settings,
    order_body,
    redis_db,
    scratch_dir,
    seed,
    service_arguments,
    table,
    write_raw,
)


@dataclass
class Phase:
    name: str
    runs: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    statements: Counter[str] = field(default_factory=Counter)
    commits: int = 0
    thread_hops: int = 0
    pings: int = 0

    def row(self) -> list[object]:
        n = max(self.runs, 1)
        return [
            self.name,
            self.runs,
            sum(self.statements.values()) / n,
            self.commits / n,
            1000 * self.cpu / n,
            1000 * self.wall / n,
        ]


_WORDS = re.compile(r"\s+")


def _shape(statement: str) -> str:
    """A statement without its literal details: the verb and the table."""
    text = _WORDS.sub(" ", statement).strip()
    match = re.match(r"(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b(.*?)(?: FROM (\w+)|$)", text)
    if text.startswith("SELECT pg_"):
        return text[:60]
    if match and match.group(1) == "SELECT":
        table_name = re.search(r" FROM (\w+)", text)
        lock = " FOR UPDATE" if "FOR UPDATE" in text else ""
        return f"SELECT {table_name.group(1) if table_name else text[7:40]}{lock}"
    words = text.split()
    if words[:2] in (["INSERT", "INTO"], ["DELETE", "FROM"]):
        return " ".join(words[:3])
    if words and words[0] == "UPDATE":
        return " ".join(words[:2])
    return text[:50]


class Recorder:
    """Counts statements and commits on every engine while a phase is open."""

    def __init__(self) -> None:
        self.current: Phase | None = None
        self.phases: dict[str, Phase] = {}
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "commit", self._commit)
        import anyio.to_thread

        self._run_sync = anyio.to_thread.run_sync

        async def counted(*args: Any, **kwargs: Any) -> Any:
            if self.current is not None:
                self.current.thread_hops += 1
            return await self._run_sync(*args, **kwargs)

        anyio.to_thread.run_sync = counted  # what FastAPI/Starlette's run_in_threadpool calls
        from sqlalchemy.engine.default import DefaultDialect

        self._do_ping = DefaultDialect._do_ping_w_event
        recorder = self

        def do_ping(dialect: Any, connection: Any) -> bool:
            if recorder.current is not None:
                recorder.current.pings += 1
            return bool(recorder._do_ping(dialect, connection))

        DefaultDialect._do_ping_w_event = do_ping  # type: ignore[method-assign]

    def close(self) -> None:
        event.remove(Engine, "before_cursor_execute", self._statement)
        event.remove(Engine, "commit", self._commit)
        import anyio.to_thread

        anyio.to_thread.run_sync = self._run_sync
        from sqlalchemy.engine.default import DefaultDialect

        DefaultDialect._do_ping_w_event = self._do_ping  # type: ignore[method-assign]

    def _statement(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.current is not None:
            self.current.statements[_shape(statement)] += 1

    def _commit(self, conn: Any) -> None:
        if self.current is not None:
            self.current.commits += 1

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        phase = self.phases.setdefault(name, Phase(name))
        self.current = phase
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            phase.cpu += time.process_time() - cpu
            phase.wall += time.perf_counter() - wall
            phase.runs += 1
            self.current = None

    def time(self, name: str, action: Callable[[], object], runs: int) -> None:
        for _ in range(runs):
            with self.phase(name):
                action()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(3)
    with (
        scratch_dir("orderflow-bench-anatomy-") as scratch,
        bench_database(args.database_url) as database_url,
        redis_db(args.redis_url) as redis_url,
    ):
        settings = bench_settings(database_url, redis_url, scratch / "state")
        settings = settings.model_copy(update={"rate_limit_orders_per_caller": 10**9})
        os.environ["ORDERFLOW_REDIS_URL"] = redis_url
        seeded = seed(settings, users=8)
        recorder = Recorder()
        logging.disable(logging.INFO)  # the app's access log and httpx would flood the output
        try:
            ids = _intake(recorder, settings, seeded, rng, args.orders)
            _pipeline(recorder, settings, ids, scratch)
            _relay(recorder, settings, redis_url)
            _parts(recorder, settings, ids)
        finally:
            recorder.close()
            logging.disable(logging.NOTSET)
    return {
        "orders": args.orders,
        "phases": {
            name: {
                "runs": p.runs,
                "statements": sum(p.statements.values()) / max(p.runs, 1),
                "commits": p.commits / max(p.runs, 1),
                "cpu_ms": 1000 * p.cpu / max(p.runs, 1),
                "thread_hops": p.thread_hops / max(p.runs, 1),
                "pings": p.pings / max(p.runs, 1),
                "wall_ms": 1000 * p.wall / max(p.runs, 1),
                "statement_shapes": {s: n / max(p.runs, 1) for s, n in p.statements.items()},
            }
            for name, p in recorder.phases.items()
        },
    }


#: Body orders and cart checkouts are measured in alternating blocks of this many, so that
#: drift on a shared machine falls on both alike.
BLOCK = 10


def _intake(
    recorder: Recorder, settings: Any, seeded: Any, rng: random.Random, n: int
) -> list[str]:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from orderflow.db import Database, make_engine

    ids: list[str] = []
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {seeded.tokens[0]}"}
        # Warm-up: imports, caches, connections.
        ids += _body_orders_over_http(recorder, client, headers, seeded, rng, 20, warm=20)
        ids += _cart_checkouts_over_http(recorder, client, headers, seeded, rng, 5, warm=5)
        for block in range(0, n, BLOCK):
            count = min(BLOCK, n - block)
            ids += _body_orders_over_http(recorder, client, headers, seeded, rng, count)
            ids += _cart_checkouts_over_http(recorder, client, headers, seeded, rng, count)
    database = Database(make_engine(settings, pool_size=2))
    try:
        _body_orders_in_service(recorder, database, seeded, rng, 5, warm=5)
        _cart_checkouts_in_service(recorder, database, seeded, rng, 5, warm=5)
        for block in range(0, n, BLOCK):
            count = min(BLOCK, n - block)
            _body_orders_in_service(recorder, database, seeded, rng, count)
            _cart_checkouts_in_service(recorder, database, seeded, rng, count)
    finally:
        database.dispose()
    return ids


def _body_orders_over_http(
    recorder: Recorder,
    client: Any,
    headers: dict[str, str],
    seeded: Any,
    rng: random.Random,
    n: int,
    warm: int = 0,
) -> list[str]:
    """``n`` orders with their lines in the body; the first ``warm`` not measured."""
    ids = []
    for number in range(n):
        body = order_body(seeded.product_ids, rng)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        with (
            recorder.phase("intake: POST /orders (in-process HTTP)")
            if number >= warm
            else contextlib.nullcontext()
        ):
            answer = client.post("/api/v1/orders", json=body, headers=headers | key)
        if answer.status_code != 201:
            raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")
        ids.append(answer.json()["id"])
    return ids


def _body_orders_in_service(
    recorder: Recorder, database: Any, seeded: Any, rng: random.Random, n: int, warm: int = 0
) -> None:
    from api.routers.orders import _render_created
    from orderflow import idempotency
    from orderflow.orders import service as orders

    for number in range(n):
        body = order_body(seeded.product_ids, rng)
        command = orders.PlaceOrder(
            customer_id=seeded.user_ids[1],
            items=[orders.LineRequest(i["product_id"], i["quantity"]) for i in body["items"]],
            shipping_address=body["shipping_address"],
            payment_method=body["payment_method"],
        )
        request = idempotency.IdempotentRequest(
            caller_id=seeded.user_ids[1], key=uuid.uuid4().hex, fingerprint="f" * 64,
            ttl_hours=24,
        )  # fmt: skip
        name = "intake: place_order_idempotently + commit (service only)"
        with (
            recorder.phase(name) if number >= warm else contextlib.nullcontext(),
            database.unit_of_work() as session,
        ):
            viewer = orders.Viewer(seeded.user_ids[1], is_admin=False)
            orders.place_order_idempotently(session, viewer, command, request, _render_created)
            session.commit()


def _cart_items(seeded: Any, rng: random.Random) -> list[dict[str, Any]]:
    """A cart of three lines of the catalogue."""
    return [{"product_id": product_id, "quantity": rng.randint(1, 3)}
            for product_id in rng.sample(list(seeded.product_ids), 3)]  # fmt: skip


def _cart_checkouts_over_http(
    recorder: Recorder,
    client: Any,
    headers: dict[str, str],
    seeded: Any,
    rng: random.Random,
    n: int,
    warm: int = 0,
) -> list[str]:
    """Fill a cart (POST /carts with two lines, PUT a third), then check it out; ``n``
    times, the first ``warm`` not measured."""
    ids = []
    for number in range(n):
        measured = number >= warm
        items = _cart_items(seeded, rng)
        with recorder.phase("cart: POST /carts, 2 items") if measured else contextlib.nullcontext():
            cart = client.post("/api/v1/carts", json={"items": items[:2]}, headers=headers)
        path = f"/api/v1/carts/{cart.json()['id']}/items/{items[2]['product_id']}"
        with (
            recorder.phase("cart: PUT /carts/{id}/items/{p}")
            if measured
            else (contextlib.nullcontext())
        ):
            put = client.put(path, json={"quantity": items[2]["quantity"]}, headers=headers)
        body = order_body(seeded.product_ids, rng)
        del body["items"]
        body |= {"cart_id": cart.json()["id"], "expected_total": put.json()["total"]}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        with (
            recorder.phase("intake: POST /orders {cart_id} (in-process HTTP)")
            if measured
            else (contextlib.nullcontext())
        ):
            answer = client.post("/api/v1/orders", json=body, headers=headers | key)
        if answer.status_code != 201:
            raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")
        ids.append(answer.json()["id"])
    return ids


def _cart_checkouts_in_service(
    recorder: Recorder, database: Any, seeded: Any, rng: random.Random, n: int, warm: int = 0
) -> None:
    from api.routers.orders import _render_created
    from orderflow import idempotency
    from orderflow.carts import service as carts
    from orderflow.orders import service as orders

    customer = seeded.user_ids[2]
    for number in range(n):
        with database.unit_of_work() as session:
            items = [carts.ItemRequest(i["product_id"], i["quantity"])
                     for i in _cart_items(seeded, rng)]  # fmt: skip
            cart = carts.create_cart(session, customer, None, items, 168)
            session.commit()
        body = order_body(seeded.product_ids, rng)
        command = orders.PlaceOrder(
            customer_id=customer, items=[], shipping_address=body["shipping_address"],
            payment_method=body["payment_method"], cart_id=cart.state.cart.id,
            expected_total=cart.subtotal,
        )  # fmt: skip
        request = idempotency.IdempotentRequest(
            caller_id=customer, key=uuid.uuid4().hex, fingerprint="f" * 64, ttl_hours=24
        )
        name = "intake: checkout {cart_id}, place_order_idempotently + commit (service only)"
        with (
            recorder.phase(name) if number >= warm else contextlib.nullcontext(),
            database.unit_of_work() as session,
        ):
            viewer = orders.Viewer(customer, is_admin=False)
            orders.place_order_idempotently(session, viewer, command, request, _render_created)
            session.commit()


def _pipeline(recorder: Recorder, settings: Any, ids: list[str], scratch: Path) -> None:
    from orderflow.db import Database, make_engine
    from orderflow.email import email_sender_from_settings
    from orderflow.fulfilment.charging import charge_payment
    from orderflow.fulfilment.invoicing import generate_invoice
    from orderflow.fulfilment.notifications import send_email
    from orderflow.fulfilment.stock import reserve_stock
    from orderflow.payments import payment_provider_from_settings
    from orderflow.steps import EmailKind

    database = Database(make_engine(settings, pool_size=2))
    provider = payment_provider_from_settings(settings)
    sender = email_sender_from_settings(settings)
    try:
        for number, order_id in enumerate(ids):
            measured = number >= 5

            def step(name: str, action: Callable[[], None], measured: bool = measured) -> None:
                with recorder.phase(name) if measured else contextlib.nullcontext():
                    action()

            def in_unit(work: Callable[[Any, str], None], order_id: str = order_id) -> None:
                with database.unit_of_work() as session:
                    work(session, order_id)
                    session.commit()

            step("step 1 reserve_stock", lambda: in_unit(reserve_stock))
            step(
                "step 2 charge_payment (+ confirm)",
                lambda o=order_id: charge_payment(database, provider, o),
            )
            step("step 3 generate_invoice (PDF)", lambda: in_unit(generate_invoice))
            step(
                "step 4 send_email confirmation",
                lambda o=order_id: send_email(database, sender, o, EmailKind.CONFIRMATION),
            )
    finally:
        database.dispose()


def _relay(recorder: Recorder, settings: Any, redis_url: str) -> None:
    from orderflow.db import Database, make_engine
    from workers import relay
    from workers.app import app

    app.conf.broker_url = app.conf.result_backend = redis_url
    database = Database(make_engine(settings, pool_size=1))
    try:
        relay.RELAY_BATCH = 1
        for number in range(300):
            with (
                recorder.phase("relay: one message a batch")
                if number >= 20
                else (contextlib.nullcontext())
            ):
                if relay.relay_once(database) == 0:
                    break
        relay.RELAY_BATCH = 200
        for _ in range(20):
            with recorder.phase("relay: batch of up to 200 (per batch)"):
                if relay.relay_once(database) == 0:
                    break
        recorder.time(
            "celery: send_task (task_send_sent_event on)",
            lambda: app.send_task("bench.nothing", kwargs={"order_id": "x"}, queue="bench"),
            300,
        )
        app.conf.task_send_sent_event = False
        recorder.time(
            "celery: send_task (task_send_sent_event off)",
            lambda: app.send_task("bench.nothing", kwargs={"order_id": "x"}, queue="bench"),
            300,
        )
    finally:
        database.dispose()


def _parts(recorder: Recorder, settings: Any, ids: list[str]) -> None:
    from datetime import UTC, datetime

    from orderflow.db import Database, make_engine
    from orderflow.email.local import build_mime
    from orderflow.email.sender import EmailMessage
    from orderflow.invoices.document import InvoiceDocument
    from orderflow.invoices.pdf import render_pdf
    from orderflow.models import Order

    database = Database(make_engine(settings, pool_size=1))
    try:
        with database.unit_of_work() as session:
            order = session.get(Order, ids[-1])
            assert order is not None
            document = InvoiceDocument.from_order(order, "INV-2099-000001", datetime.now(UTC))
            recorder.time("part: render invoice PDF", lambda: render_pdf(document), 50)
            session.commit()
    finally:
        database.dispose()
    message = EmailMessage(to="a@example.com", subject="s", text="hello\n" * 20, message_key="k")
    recorder.time("part: build e-mail MIME", lambda: build_mime(message, "o@example.com"), 200)


def report(figures: dict[str, Any]) -> str:
    rows = []
    shapes = []
    for name, phase in figures["phases"].items():
        rows.append(
            [name, phase["runs"], phase["statements"], phase["pings"], phase["commits"],
             phase["thread_hops"], phase["cpu_ms"], phase["wall_ms"]]
        )  # fmt: skip
        if phase["statements"]:
            listed = ", ".join(
                f"{shape} x{count:g}" if count != 1 else shape
                for shape, count in sorted(phase["statement_shapes"].items(), key=lambda x: -x[1])
            )
            shapes.append(f"  {name}: {listed}")
    return (
        "Anatomy of an order (one process; per run)\n"
        + table(["phase", "runs", "SQL", "pings", "commits", "threads", "CPU ms", "wall ms"], rows)
        + "\n\nStatements per run:\n"
        + "\n".join(shapes)
        + "\n"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.anatomy", description=__doc__)
    service_arguments(parser)
    parser.add_argument("--orders", type=int, default=200, help="orders to measure (10..5000)")
    args = parser.parse_args(argv)
    if not 10 <= args.orders <= 5000:
        parser.error("--orders must be 10..5000")
    figures = measure(args)
    print(report(figures))
    print(f"raw figures: {write_raw('anatomy', figures)}")
    return figures


if __name__ == "__main__":
    main()

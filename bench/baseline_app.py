"""The intake baseline: ``uvicorn bench.baseline_app:create_app --factory``.

A bare FastAPI endpoint on the same server stack as the API (uvicorn, a sync endpoint in
the same thread pool) and the same connection pool (``orderflow.db.make_engine``, the same
settings) that inserts one order row and one outbox row in one transaction and answers 201.
No authentication, no validation beyond JSON, no catalogue, no idempotency key, no event:
the floor the real endpoint is compared against.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, insert

from orderflow.db import make_engine
from orderflow.ids import new_id
from orderflow.models import Order, OutboxMessage
from orderflow.settings import get_settings

#: The customer every baseline order belongs to (a user the benchmark seeded).
CUSTOMER_ENV = "BENCH_CUSTOMER_ID"


def create_app() -> FastAPI:
    settings = get_settings()
    customer_id = os.environ[CUSTOMER_ENV]
    engines: list[Engine] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engines.append(make_engine(settings))
        yield
        engines.pop().dispose()

    app = FastAPI(title="orderflow intake baseline", lifespan=lifespan)

    @app.post("/api/v1/orders", status_code=201)
    def place_order(body: dict[str, Any] = Body(...)) -> JSONResponse:
        order_id = new_id("ord")
        with engines[0].begin() as connection:
            connection.execute(
                insert(Order).values(
                    id=order_id,
                    customer_id=customer_id,
                    status="pending",
                    payment_status="unpaid",
                    currency="usd",
                    subtotal_amount=1000,
                    total_amount=1000,
                    shipping_address=body.get("shipping_address") or {},
                    payment_method=str(body.get("payment_method", "pm_card_visa")),
                )
            )
            connection.execute(
                insert(OutboxMessage).values(
                    topic="orderflow.reserve_stock",
                    order_id=order_id,
                    payload={"order_id": order_id},
                )
            )
        return JSONResponse({"id": order_id, "status": "pending"}, status_code=201)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app

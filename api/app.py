"""FastAPI application factory: ``uvicorn api.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import APIRouter, FastAPI

from api.middleware import BodySizeLimit
from api.problems import install_problem_handlers
from api.routers import auth, health, orders, products, webhooks
from orderflow.db import Database, make_engine
from orderflow.logging import configure_logging
from orderflow.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        app.state.database = Database(make_engine(settings))
        app.state.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        yield
        app.state.redis.close()
        app.state.database.dispose()

    app = FastAPI(
        title="orderflow",
        version="1.0.0",
        description="Order intake API. Errors are RFC 9457 application/problem+json.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    v1 = APIRouter(prefix=API_PREFIX)
    for router in (
        auth.router,
        products.router,
        orders.router,
        orders.customers_router,
        webhooks.router,
        health.router,
    ):
        v1.include_router(router)
    app.include_router(v1)
    app.include_router(health.router)
    return app

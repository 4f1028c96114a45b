"""FastAPI application factory: ``uvicorn api.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
import redis.asyncio
from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline

from api import metrics
from api.cross_origin import install_cors
from api.deps import install_caller_work
from api.middleware import BodySizeLimit, HeadAsGet, RejectUnusableParameters
from api.observability import RequestObservability
from api.openapi_text import API_DESCRIPTION, OPENAPI_TAGS
from api.problems import install_problem_handlers
from api.ratelimit import install_rate_limits
from api.routers import (
    api_keys,
    auth,
    carts,
    events,
    health,
    local_payments,
    order_changes,
    orders,
    products,
    returns,
    shipments,
    webhook_endpoints,
    webhooks,
)
from api.strict import strict_request
from orderflow.db import Database, make_engine
from orderflow.logging import configure_logging
from orderflow.payments.local import LocalPaymentProvider
from orderflow.settings import Settings
from orderflow.startup import check_services, exit_on_config_error, load_settings

API_PREFIX = "/api/v1"


def _settings_from_environment() -> Settings:
    """uvicorn's ``--factory`` path: a bad setting, or a database or broker that cannot be
    used, is one line on stderr and exit status 2, never a traceback."""

    def load() -> Settings:
        settings = load_settings()
        check_services(settings)
        return settings

    return exit_on_config_error(load, program="orderflow api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or _settings_from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        app.state.database = Database(make_engine(settings))
        app.state.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        rate_limit_redis = redis.asyncio.Redis.from_url(settings.redis_url, socket_timeout=2)
        install_rate_limits(app.state, rate_limit_redis, settings)
        install_caller_work(app.state)
        if settings.payment_provider == "local":
            app.state.local_payments = LocalPaymentProvider(
                store_dir=settings.state_dir / "payments"
            )
        yield
        await rate_limit_redis.aclose()
        app.state.redis.close()
        app.state.database.dispose()

    # Swagger UI (/docs) and ReDoc (/redoc) with their assets served from the installed
    # fastapi-offline package under /static-offline-docs: no CDN, so they work offline.
    app = FastAPIOffline(
        title="orderflow",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=OPENAPI_TAGS,
        swagger_ui_parameters={"displayRequestDuration": True},
        # Unknown query parameters (422) and bodies that are not JSON (415), for every route.
        dependencies=[Depends(strict_request)],
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RejectUnusableParameters)
    app.add_middleware(HeadAsGet)
    install_cors(app, settings)  # outside the checks above: their answers carry CORS too
    app.add_middleware(RequestObservability)  # outermost: every answer gets a request id
    app.state.metrics_registry = metrics.build_registry(app.state, settings.sweep_stall_seconds)

    v1 = APIRouter(prefix=API_PREFIX)
    routers = [
        auth.router,
        products.router,
        orders.router,
        orders.customers_router,
        order_changes.router,
        carts.router,
        shipments.orders_router,
        shipments.router,
        returns.orders_router,
        returns.router,
        webhooks.router,
        api_keys.router,
        events.router,
        webhook_endpoints.router,
        webhook_endpoints.deliveries_router,
        health.router,
        metrics.router,
    ]
    if settings.payment_provider == "local":  # the customer's part of 3-D Secure, played here
        routers.append(local_payments.router)
    for router in routers:
        v1.include_router(router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(metrics.router)
    return app

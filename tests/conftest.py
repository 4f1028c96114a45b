"""Shared fixtures: real PostgreSQL and Redis for every run, a database and a Redis db number
of its own for every run and every xdist worker, the real API served over HTTP, factories."""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from api.app import create_app
from orderflow.auth.service import ensure_admin, register_user
from orderflow.catalogue.service import NewProduct, create_product
from orderflow.db import Database, make_engine
from orderflow.migrate import upgrade_to_head
from orderflow.models import Base, Product, User
from orderflow.money import Money
from orderflow.orders import service as orders
from orderflow.settings import Settings
from tests import services
from tests.stubs import STRIPE_WEBHOOK_SECRET, stub_provider_env
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub
from tests.system import SystemProcesses, wait_until

pytest_plugins = ["tests.stubs.fixtures"]

RUN_ID_ENV = "ORDERFLOW_TEST_RUN_ID"
PASSWORD = "correct-horse-42"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-secret-42"


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """Find (or start) the services once per run, in the controller; workers inherit the URLs
    through the environment."""
    if _is_xdist_worker(config):
        return
    found = services.resolve_test_services()
    config._orderflow_services = found  # type: ignore[attr-defined]
    os.environ["ORDERFLOW_TEST_DATABASE_URL"] = found.database_url
    os.environ["ORDERFLOW_TEST_REDIS_URL"] = found.redis_url
    os.environ["ORDERFLOW_TEST_REDIS_DBS"] = str(found.max_redis_dbs)
    os.environ.setdefault(RUN_ID_ENV, uuid.uuid4().hex[:10])


def pytest_unconfigure(config: pytest.Config) -> None:
    found = getattr(config, "_orderflow_services", None)
    if found is not None:
        found.close()


@pytest.fixture(scope="session")
def worker_name(request: pytest.FixtureRequest) -> str:
    workerinput = getattr(request.config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


@pytest.fixture(scope="session")
def database_url(worker_name: str) -> Iterator[str]:
    """A fresh database for this run and worker, built by the Alembic migrations."""
    server_url = os.environ["ORDERFLOW_TEST_DATABASE_URL"]
    name = f"orderflow_test_{os.environ[RUN_ID_ENV]}_{worker_name}"
    url = services.create_database(server_url, name)
    upgrade_to_head(url)
    yield url
    services.drop_database(server_url, name)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    base = os.environ["ORDERFLOW_TEST_REDIS_URL"]
    db, release = services.claim_redis_db(base, int(os.environ["ORDERFLOW_TEST_REDIS_DBS"]))
    yield f"{base.rstrip('/')}/{db}"
    release()


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orderflow-state")


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, state_dir: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        state_dir=state_dir,
        jwt_secret=secrets.token_urlsafe(48),
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        log_json=True,
    )


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[Database]:
    db = Database(make_engine(settings, pool_size=5))
    yield db
    db.dispose()


@pytest.fixture
def clean_database(
    request: pytest.FixtureRequest, database: Database, redis_url: str, pipelines: Pipelines
) -> Database:
    """Empty every table and the broker's db, so a test sees only what it made. Worker
    processes keep running only for tests marked ``workers``."""
    if request.node.get_closest_marker("workers") is None:
        pipelines.stop()
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    for attempt in range(5):  # workers still finishing the last test may hold a lock
        try:
            with database.unit_of_work() as session:
                session.execute(text("SET LOCAL lock_timeout = '2s'"))
                session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                session.commit()
            break
        except OperationalError:
            if attempt == 4:
                raise
    redis.Redis.from_url(redis_url).flushdb()
    return database


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns the signals
        pass


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The real API for ``settings`` on a real socket, in a thread of the test process."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=settings.api_keepalive_seconds,  # as workers.launcher.api_command
    )
    server = _ThreadedServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def api_url(settings: Settings) -> Iterator[str]:
    with serving(settings) as url:
        yield url


@pytest.fixture
def api(api_url: str, clean_database: Database) -> Iterator[httpx.Client]:
    """An anonymous client of ``/api/v1`` over a clean database."""
    with httpx.Client(base_url=f"{api_url}/api/v1", timeout=30) as client:
        yield client


# --- factories -------------------------------------------------------------------------------


@pytest.fixture
def make_user(clean_database: Database) -> Callable[..., User]:
    def make(email: str | None = None, role: str = "client", password: str = PASSWORD) -> User:
        with clean_database.unit_of_work() as session:
            if role == "admin":
                user = ensure_admin(session, email or ADMIN_EMAIL, password)
            else:
                email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
                user = register_user(session, email, password, "Test")
            session.commit()
            return user

    return make


@pytest.fixture
def make_product(clean_database: Database) -> Callable[..., Product]:
    def make(
        price: int = 1000,
        stock: int = 50,
        currency: str = "usd",
        active: bool = True,
        sku: str | None = None,
    ) -> Product:
        with clean_database.unit_of_work() as session:
            result = create_product(
                session,
                NewProduct(
                    sku=sku or f"SKU-{uuid.uuid4().hex[:10]}",
                    name="Test product",
                    price=Money(price, currency),
                    stock=stock,
                    active=active,
                ),
            )
            session.commit()
            return result

    return make


@pytest.fixture
def login_as(api_url: str) -> Callable[[User], httpx.Client]:
    """An authenticated client of ``/api/v1`` for a user made with ``make_user``."""
    clients: list[httpx.Client] = []

    def login(user: User, password: str = PASSWORD) -> httpx.Client:
        client = httpx.Client(base_url=f"{api_url}/api/v1", timeout=30)
        answer = client.post("/auth/login", json={"email": user.email, "password": password})
        assert answer.status_code == 200, answer.text
        client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        client.cookies.clear()
        clients.append(client)
        return client

    yield login  # type: ignore[misc]
    for client in clients:
        client.close()


@pytest.fixture
def client_user(make_user: Callable[..., User]) -> User:
    return make_user()


@pytest.fixture
def customer(login_as: Callable[[User], httpx.Client], client_user: User) -> httpx.Client:
    return login_as(client_user)


@pytest.fixture
def admin(login_as: Callable[[User], httpx.Client], make_user: Callable[..., User]) -> httpx.Client:
    return login_as(make_user(role="admin", password=ADMIN_PASSWORD), ADMIN_PASSWORD)


def order_body(*lines: tuple[str, int], payment_method: str = "pm_card_visa", **extra: Any) -> dict:
    return {
        "items": [{"product_id": product_id, "quantity": qty} for product_id, qty in lines],
        "shipping_address": {
            "name": "Jane Doe",
            "line1": "123 Main St",
            "line2": None,
            "city": "New York",
            "state": "NY",
            "postal_code": "10001",
            "country": "US",
        },
        "payment_method": payment_method,
        **extra,
    }


# --- the worker side: real processes ---------------------------------------------------------


def system_env(settings: Settings, **extra: str) -> dict[str, str]:
    """``ORDERFLOW_*`` for processes started by the tests, fast-paced for tests."""
    return {
        "ORDERFLOW_ENVIRONMENT": "test",
        "ORDERFLOW_DATABASE_URL": settings.database_url,
        "ORDERFLOW_REDIS_URL": settings.redis_url,
        "ORDERFLOW_STATE_DIR": str(settings.state_dir),
        "ORDERFLOW_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "ORDERFLOW_STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "ORDERFLOW_SWEEP_INTERVAL_SECONDS": "1",
        "ORDERFLOW_SWEEP_STALL_SECONDS": "4",
        "ORDERFLOW_PROVIDER_RETRY_BASE_SECONDS": "0.2",
        "ORDERFLOW_PROVIDER_MAX_RETRIES": "3",
        "ORDERFLOW_PROVIDER_TIMEOUT_SECONDS": "2",
        "ORDERFLOW_RELAY_POLL_SECONDS": "0.5",
        "ORDERFLOW_LOG_JSON": "true",
        **extra,
    }


class Pipelines:
    """At most one set of worker-side processes runs per test database; asking for another
    kind (local providers, or the Stripe/SendGrid stubs) replaces it."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings, self.log_dir = settings, log_dir
        self.kind: str | None = None
        self.system: SystemProcesses | None = None

    def use(self, kind: str, env: dict[str, str], one_worker: bool = False) -> SystemProcesses:
        """``one_worker``: a single prefork worker on every step queue (a small deployment),
        instead of ``make run``'s two (prefork and threads)."""
        if self.kind != kind:
            self.stop()
            self.system = SystemProcesses(system_env(self.settings, **env), self.log_dir)
            if one_worker:
                self.system.start_worker()
            else:
                self.system.start_workers()
            self.system.start_relay()
            self.system.start_beat()
            self.kind = kind
        assert self.system is not None
        return self.system

    def stop(self) -> None:
        if self.system is not None:
            self.system.stop()
        self.kind, self.system = None, None


@pytest.fixture(scope="session")
def pipelines(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipelines]:
    running = Pipelines(settings, tmp_path_factory.mktemp("system-logs"))
    yield running
    running.stop()


@pytest.fixture
def local_pipeline(pipelines: Pipelines, clean_database: Database) -> SystemProcesses:
    """Workers, relay and beat on the local payment and e-mail providers."""
    return pipelines.use("local", {})


@pytest.fixture
def stub_pipeline(
    pipelines: Pipelines,
    clean_database: Database,
    stripe_stub_shared: StripeStub,
    sendgrid_stub_shared: SendGridStub,
) -> SystemProcesses:
    """Workers, relay and beat on the real Stripe and SendGrid adapters, talking to the
    wire-level stubs."""
    return pipelines.use("stubs", stub_provider_env(stripe_stub_shared, sendgrid_stub_shared))


def wait_for_status(
    client: httpx.Client, order_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    """Poll the order until its status is one of ``statuses``."""
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(client.get(f"/orders/{order_id}").json())
        return seen.get("status") in statuses

    wait_until(reached, timeout)
    return seen


def place_command(
    customer_id: str, *lines: tuple[str, int], payment_method: str = "pm_card_visa"
) -> orders.PlaceOrder:
    """The service-level twin of ``order_body``: what ``place_order`` takes for ``lines``."""
    body = order_body(*lines, payment_method=payment_method)
    items = [orders.LineRequest(product_id, qty) for product_id, qty in lines]
    return orders.PlaceOrder(customer_id, items, body["shipping_address"], payment_method)

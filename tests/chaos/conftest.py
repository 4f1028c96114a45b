"""A whole system per chaos test: its own database and Redis db, the API, relay, worker and
beat as subprocesses, demo shoppers, and the checks that run once the dust settles."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from orderflow.auth.service import ensure_admin, login, register_user
from orderflow.catalogue.service import NewProduct, create_product
from orderflow.db import Database, make_engine
from orderflow.embedded.postgres import EmbeddedPostgres
from orderflow.embedded.redis import EmbeddedRedis
from orderflow.migrate import upgrade_to_head
from orderflow.models import Order
from orderflow.money import Money
from orderflow.settings import Settings
from tests import services
from tests.chaos.shoppers import Shoppers
from tests.conftest import system_env
from tests.invariants import assert_promises_kept, wait_for_rest
from tests.stubs import shippo_env, stub_provider_env
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.shippo_server import ShippoStub
from tests.stubs.stripe_server import StripeStub
from tests.system import SystemProcesses, free_port, wait_until

#: Orders per chaos test: small in ``make test``, larger in ``make chaos``.
CHAOS_ORDERS = int(os.environ.get("ORDERFLOW_CHAOS_ORDERS", "40"))
SETTLE_SECONDS = 150.0


@dataclass
class ChaosSystem:
    settings: Settings
    database: Database
    processes: SystemProcesses
    env: dict[str, str]
    api_port: int = field(default_factory=free_port)
    initial_stock: dict[str, int] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, workers: int = 1) -> None:
        self.processes.start_api(self.api_port)
        self.processes.start_relay()
        self.processes.start_beat()
        for index in range(workers):
            self.processes.start_workers(f"worker{index or ''}")

    def stock_up(self, products: int = 5, stock: int = 60) -> None:
        with self.database.unit_of_work() as session:
            for index in range(products):
                product = create_product(
                    session,
                    NewProduct(
                        f"CHAOS-{index}", f"Chaos {index}", Money(1000 + index, "usd"), stock
                    ),
                )
                self.initial_stock[product.id] = stock
            for index in range(8):
                register_user(session, f"shopper{index}@example.com", "shopper-pass-1", None)
            session.commit()
        for index in range(8):
            with self.database.unit_of_work() as session:
                email = f"shopper{index}@example.com"
                pair = login(session, self.settings, email, "shopper-pass-1")
                self.tokens.append(pair.access_token)
                session.commit()

    def admin_token(self) -> str:
        """An access token of an admin (who ships orders)."""
        with self.database.unit_of_work() as session:
            ensure_admin(session, "chaos-admin@example.com", "chaos-admin-pass-1")
            session.commit()
        with self.database.unit_of_work() as session:
            pair = login(session, self.settings, "chaos-admin@example.com", "chaos-admin-pass-1")
            session.commit()
        return pair.access_token

    def shoppers(self, **options: object) -> Shoppers:
        return Shoppers(self.api_url, self.tokens, list(self.initial_stock), **options)  # type: ignore[arg-type]

    def wait_for_first_confirmation(self) -> None:
        def confirmed() -> bool:
            with self.database.unit_of_work() as session:
                result = (
                    session.scalar(select(Order.id).where(Order.status == "confirmed").limit(1))
                    is not None
                )
                session.commit()
                return result

        wait_until(confirmed, 60)

    def settle_and_check(self, shoppers: Shoppers) -> dict[str, int]:
        """Wait until every order is at rest, then check every promise. What exits meanwhile
        is started again, as a supervisor would: a Celery threads worker that lost Redis may
        take its time to stop (kombu fails to restore its unacknowledged messages and the
        worker shuts down), and its queues wait for the new one."""
        wait_for_rest(self.database, SETTLE_SECONDS, meanwhile=self.processes.revive_exited)
        return assert_promises_kept(
            self.database, self.initial_stock, set(shoppers.accepted.values())
        )


@contextmanager
def _system(
    tmp_path: Path, server_url: str, redis_base: str, redis_dbs: int, **extra_env: str
) -> Iterator[ChaosSystem]:
    """A database and a Redis db of the test's own on the given servers, and the processes."""
    name = f"orderflow_chaos_{uuid.uuid4().hex[:10]}"
    database_url = services.create_database(server_url, name)
    upgrade_to_head(database_url)
    redis_db, release = services.claim_redis_db(redis_base, redis_dbs)
    settings = Settings(
        environment="test",
        database_url=database_url,
        redis_url=f"{redis_base.rstrip('/')}/{redis_db}",
        state_dir=tmp_path / "state",
        jwt_secret="chaos-" + uuid.uuid4().hex * 2,
    )
    env = system_env(
        settings,
        ORDERFLOW_SWEEP_STALL_SECONDS="3",
        ORDERFLOW_PROVIDER_MAX_RETRIES="6",
        **extra_env,
    )
    database = Database(make_engine(settings, pool_size=2))
    processes = SystemProcesses(env, tmp_path)
    try:
        yield ChaosSystem(settings, database, processes, env)
    finally:
        processes.stop()
        database.dispose()
        with contextlib.suppress(Exception):  # the fault may have taken the server down
            release()
            services.drop_database(server_url, name)


def _on_shared_servers(tmp_path: Path, **extra_env: str) -> AbstractContextManager[ChaosSystem]:
    """``_system`` on the run's PostgreSQL and Redis (see tests/services.py)."""
    return _system(
        tmp_path,
        os.environ["ORDERFLOW_TEST_DATABASE_URL"],
        os.environ["ORDERFLOW_TEST_REDIS_URL"],
        int(os.environ["ORDERFLOW_TEST_REDIS_DBS"]),
        **extra_env,
    )


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosSystem]:
    """A system on the run's shared PostgreSQL and Redis servers."""
    with _on_shared_servers(tmp_path) as system:
        yield system


@dataclass
class OwnServers:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis


@pytest.fixture
def own_servers(tmp_path: Path) -> Iterator[OwnServers]:
    """A PostgreSQL and a Redis (without persistence) that only this test uses, so the test
    may restart them."""
    with (
        EmbeddedPostgres(tmp_path / "postgres") as postgres,
        EmbeddedRedis(tmp_path / "redis", persist=False) as store,
    ):
        yield OwnServers(postgres, store)


@pytest.fixture
def chaos_on_own_servers(tmp_path: Path, own_servers: OwnServers) -> Iterator[ChaosSystem]:
    with _system(
        tmp_path, own_servers.postgres.url(), own_servers.redis.url().rsplit("/", 1)[0], 16
    ) as system:
        yield system


@pytest.fixture
def chaos_with_stubs(
    tmp_path: Path, stripe_stub: StripeStub, sendgrid_stub: SendGridStub
) -> Iterator[ChaosSystem]:
    """A system whose payments and e-mails go through the real SDKs to the stubs."""
    with _on_shared_servers(tmp_path, **stub_provider_env(stripe_stub, sendgrid_stub)) as system:
        yield system


@pytest.fixture
def chaos_with_shippo(tmp_path: Path, shippo_stub: ShippoStub) -> Iterator[ChaosSystem]:
    """A system (local payments and e-mails) whose labels and tracking go through Shippo's
    SDK to the stand-in."""
    with _on_shared_servers(tmp_path, **shippo_env(shippo_stub)) as system:
        yield system

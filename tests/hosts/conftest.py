"""The system split over simulated hosts (``make hosts``; not part of ``make test``).

One lab per run: a router and the hosts ``data`` (PostgreSQL, Valkey), ``api`` (the API,
the outbox relay and beat, and the checkout clients, which reach the API on its loopback as
a load balancer on that host would), ``stubs`` (the provider stand-ins) and ``worker1`` to
``worker3`` (a Celery worker each, as ``make run`` starts it). Each test gets a database and
a Redis db of its own on the data host and starts the processes it needs."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text

from orderflow.db import Database, make_engine
from orderflow.migrate import upgrade_to_head
from orderflow.models import Order
from orderflow.settings import Settings
from tests import services
from tests.chaos.conftest import ChaosSystem
from tests.chaos.shoppers import Shoppers
from tests.conftest import system_env
from tests.hosts.data import HostPostgres, HostRedis, start_data_host
from tests.hosts.network import Lab, NoNamespaces, why_no_namespaces
from tests.hosts.stand_ins import StandIns, stand_ins_on
from tests.system import SystemProcesses

WORKER_HOSTS = ("worker1", "worker2", "worker3")
#: Prefork processes per worker host: what ``make run`` starts on a 2-core host.
WORKER_CONCURRENCY = 2
_redis_dbs = itertools.count(1)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = why_no_namespaces()
    if reason is not None:
        pytest.skip(f"tests/hosts need network namespaces: {reason}")
    lab = Lab()
    try:
        lab.start()
        for name in ("data", "api", "stubs", *WORKER_HOSTS):
            lab.add_host(name)
    except NoNamespaces as error:
        lab.close()
        pytest.skip(f"tests/hosts need network namespaces: {error}")
    except BaseException:
        lab.close()
        raise
    try:
        yield lab
    finally:
        lab.close()


@dataclass
class DataHost:
    postgres: HostPostgres
    redis: HostRedis


@pytest.fixture(scope="session")
def data_host(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataHost]:
    postgres, store = start_data_host(lab, tmp_path_factory.mktemp("data-host"))
    try:
        yield DataHost(postgres, store)
    finally:
        store.stop()
        postgres.stop()


@pytest.fixture(scope="session")
def stand_ins(lab: Lab) -> Iterator[StandIns]:
    with stand_ins_on(lab, "stubs") as found:
        yield found


@dataclass
class HostedSystem:
    """A ``ChaosSystem`` (its database handle, processes, shoppers and checks) whose
    processes run on the lab's hosts."""

    lab: Lab
    system: ChaosSystem
    stand_ins: StandIns
    log_dir: Path

    @property
    def processes(self) -> SystemProcesses:
        return self.system.processes

    @property
    def database(self) -> Database:
        return self.system.database

    def start_api_host(self) -> None:
        with self.lab.inside("api"):
            self.processes.start_api(self.system.api_port)
            self.processes.start_relay()
            self.processes.start_beat()

    def start_worker_hosts(self, count: int) -> None:
        for name in WORKER_HOSTS[:count]:
            with self.lab.inside(name):
                self.processes.start_worker(name, WORKER_CONCURRENCY)

    def shoppers(self, methods: list[str] | None = None) -> Shoppers:
        shoppers = self.system.shoppers()
        if methods is not None:
            shoppers.methods = methods
        return shoppers

    def place(self, shoppers: Shoppers, orders: int, concurrency: int = 12, first: int = 0) -> None:
        """Place ``orders`` from the API host, waiting for every answer."""
        with self.lab.inside("api"):
            shoppers.run(orders, concurrency, first=first)

    def start_placing(self, shoppers: Shoppers, orders: int, concurrency: int = 12) -> object:
        with self.lab.inside("api"):  # the clients' threads are made there
            return shoppers.start(orders, concurrency)

    def count(self, status: str) -> int:
        with self.database.unit_of_work() as session:
            found = session.scalar(
                select(text("count(*)")).select_from(Order).where(Order.status == status)
            )
            session.commit()
        return int(found or 0)

    def undispatched_outbox(self) -> int:
        with self.database.unit_of_work() as session:
            found = session.scalar(text("SELECT count(*) FROM outbox WHERE dispatched_at IS NULL"))
            session.commit()
        return int(found or 0)

    def audit_from(self, host: str) -> subprocess.CompletedProcess[str]:
        """``orderflow audit`` as an operator runs it, on ``host``."""
        argv = self.lab.argv(host, sys.executable, "-m", "orderflow.cli", "audit")
        env = {**os.environ, **self.system.env}
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    def logged(self, text_: str) -> int:
        """How many lines of every process's log contain ``text_``."""
        return sum(
            log.read_text(errors="replace").count(text_) for log in self.log_dir.glob("*.log")
        )


@pytest.fixture
def hosted_factory(
    lab: Lab, data_host: DataHost, stand_ins: StandIns, tmp_path: Path
) -> Iterator[object]:
    """``make(**env)``: a HostedSystem with a fresh database and Redis db; stopped after."""
    made: list[tuple[HostedSystem, str]] = []

    def make(**extra_env: str) -> HostedSystem:
        name = f"orderflow_hosts_{uuid.uuid4().hex[:10]}"
        socket_server = data_host.postgres.url()
        local_url = services.create_database(socket_server, name)
        upgrade_to_head(local_url)
        redis_db = next(_redis_dbs)
        settings = Settings(
            environment="test",
            database_url=local_url,  # the test's own handle: the unix socket
            redis_url=data_host.redis.tcp_url(redis_db),
            state_dir=tmp_path / f"state-{len(made)}",
            jwt_secret="hosts-" + uuid.uuid4().hex * 2,
        )
        env = system_env(
            settings,
            ORDERFLOW_DATABASE_URL=data_host.postgres.tcp_url(name),
            # The production default, not the tests' 2 s: a provider call cut short after
            # the provider acted is sent again, and SendGrid takes no idempotency key.
            ORDERFLOW_PROVIDER_TIMEOUT_SECONDS="10",
            **stand_ins.env(),
            **extra_env,
        )
        log_dir = tmp_path / f"logs-{len(made)}"
        log_dir.mkdir()
        database = Database(make_engine(settings, pool_size=2))
        system = ChaosSystem(settings, database, SystemProcesses(env, log_dir), env)
        hosted = HostedSystem(lab, system, stand_ins, log_dir)
        made.append((hosted, name))
        stand_ins.reset()
        return hosted

    yield make
    for hosted, name in made:
        hosted.processes.stop()
        hosted.database.dispose()
        lab.unblock()
        for host in lab.hosts:
            lab.heal(host)
        services.drop_database(data_host.postgres.url(), name)

"""API fuzzing, long profile (``make fuzz``; ``make test`` leaves tests/fuzz out): the fast
profile's run with 300 generated cases per operation and role on top of the coverage
phase, at least 10,000 generated requests in all, over real HTTP to the live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from schemathesis import Case

from orderflow.db import Database
from orderflow.settings import Settings
from tests.fuzz.harness import FuzzStats, FuzzWorld, build_world, load_schema, profile, run_case

#: Generated cases per operation and role in the fuzzing phase.
MAX_EXAMPLES = 300
#: What the issue asks of the long profile.
MIN_GENERATED_REQUESTS = 10_000
ROLES = ["client", "admin"]

schema = load_schema(profile(max_examples=MAX_EXAMPLES))
OPERATIONS = sum(1 for _ in schema.get_all_operations())


@pytest.fixture(scope="module")
def world(api_url: str, settings: Settings, database: Database) -> FuzzWorld:
    return build_world(api_url, settings, database)


@pytest.fixture(scope="module")
def stats() -> FuzzStats:
    return FuzzStats()


@pytest.fixture(scope="module")
def http(stats: FuzzStats) -> Iterator[requests.Session]:
    with stats.session() as session:
        yield session


@pytest.fixture(scope="module")
def finished() -> set[tuple[str, str]]:
    """(role, operation) runs that completed, for the final count."""
    return set()


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
def test_api_conforms_to_its_schema(
    case: Case,
    world: FuzzWorld,
    role: str,
    http: requests.Session,
    stats: FuzzStats,
    finished: set[tuple[str, str]],
) -> None:
    run_case(case, world, role, http, stats)
    finished.add((role, case.operation.label))


def test_the_run_sent_enough_requests(stats: FuzzStats, finished: set[tuple[str, str]]) -> None:
    """Runs last (file order): the whole profile generated at least 10,000 requests."""
    if len(finished) < OPERATIONS * len(ROLES):
        pytest.skip("only part of the profile ran (-k or -x); the count is for a full run")
    print(f"\nlong fuzz profile: {stats.summary()}")
    assert sum(stats.cases.values()) >= MIN_GENERATED_REQUESTS, stats.summary()

"""API fuzzing, fast profile: schemathesis over the app's OpenAPI spec, sent over real HTTP to
the live server as a client and as an admin, with every schemathesis check on plus our own
(problem+json for every 4xx/5xx, no secret in any answer). About 2,000 requests: the coverage
phase's boundary and negative cases, and 10 generated cases per operation and role. The long
profile is ``make fuzz`` (tests/fuzz/test_fuzz_api_long.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import requests
from schemathesis import Case

from orderflow.db import Database
from orderflow.settings import Settings
from tests.fuzz.harness import (
    FuzzStats,
    FuzzWorld,
    build_world,
    load_schema,
    profile,
    run_case,
    served_spec,
)

schema = load_schema(profile(max_examples=10))


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
    print(f"\nfast fuzz profile: {stats.summary()}")


def test_the_fuzzed_spec_is_the_served_one(api_url: str) -> None:
    assert httpx.get(f"{api_url}/openapi.json").json() == served_spec()


@pytest.mark.parametrize("role", ["client", "admin"])
@schema.parametrize()
def test_api_conforms_to_its_schema(
    case: Case, world: FuzzWorld, role: str, http: requests.Session, stats: FuzzStats
) -> None:
    run_case(case, world, role, http, stats)

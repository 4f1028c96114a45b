"""Rate limits on login and order creation: 429 problem+json with Retry-After, per caller,
shared by two API instances through one Redis."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio
from fastapi.testclient import TestClient

from api.app import create_app
from api.ratelimit import Limit, RateLimiter
from orderflow.models import Product, User
from orderflow.settings import Settings
from tests.conftest import PASSWORD, order_body

WINDOW = 60


@pytest.fixture
def limited(settings: Settings, clean_database: Any) -> Iterator[Callable[..., TestClient]]:
    """Factory of API instances (each its own app and process state) sharing the test's
    database and Redis, with small limits."""
    opened: list[TestClient] = []

    def open_app(**limits: int) -> TestClient:
        update: dict[str, Any] = {
            "rate_limit_orders_per_caller": 3,
            "rate_limit_login_failures_per_account": 3,
            "rate_limit_login_attempts_per_address": 1000,
            "rate_limit_window_seconds": WINDOW,
            **{f"rate_limit_{name}": value for name, value in limits.items()},
        }
        client = TestClient(create_app(settings.model_copy(update=update)))
        client.__enter__()
        client.base_url = client.base_url.join("/api/v1/")
        opened.append(client)
        return client

    yield open_app
    for client in opened:
        client.__exit__(None, None, None)


def _login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("auth/login", json={"email": email, "password": password})


def _bearer(client: TestClient, user: User) -> dict[str, str]:
    answer = _login(client, user.email)
    assert answer.status_code == 200, answer.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _assert_429(answer: Any) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(answer.headers["retry-after"]) <= WINDOW
    body = answer.json()
    assert (body["status"], body["type"]) == (429, "/problems/rate-limited")
    assert "retry in" in body["detail"]


def test_orders_per_caller_across_two_api_instances(
    limited: Callable[..., TestClient],
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
) -> None:
    first_api, second_api = limited(), limited()
    product = make_product(stock=100)
    alice, bob = make_user(), make_user()
    alice_auth, bob_auth = _bearer(first_api, alice), _bearer(second_api, bob)
    body = order_body((product.id, 1))
    # Three orders in the window, split over both instances: the count is shared.
    for api in (first_api, second_api, first_api):
        assert api.post("orders", json=body, headers=alice_auth).status_code == 201
    _assert_429(second_api.post("orders", json=body, headers=alice_auth))
    _assert_429(first_api.post("orders", json=body, headers=alice_auth))
    # Another caller is unaffected.
    assert second_api.post("orders", json=body, headers=bob_auth).status_code == 201


def test_failed_logins_lock_the_account_for_the_window(
    limited: Callable[..., TestClient], make_user: Callable[..., User]
) -> None:
    first_api, second_api = limited(), limited()
    alice, bob = make_user(), make_user()
    for api in (first_api, second_api, first_api):
        assert _login(api, alice.email, "wrong-password-9").status_code == 401
    # Over the limit: refused even with the right password, on either instance.
    _assert_429(_login(second_api, alice.email))
    _assert_429(_login(first_api, alice.email.upper()))
    # Another account from the same address logs in.
    assert _login(first_api, bob.email).status_code == 200


def test_successful_logins_do_not_count_against_the_account(
    limited: Callable[..., TestClient], make_user: Callable[..., User]
) -> None:
    api = limited()
    alice = make_user()
    for _ in range(5):
        assert _login(api, alice.email).status_code == 200


def test_login_attempts_per_address(
    limited: Callable[..., TestClient], make_user: Callable[..., User]
) -> None:
    api = limited(login_attempts_per_address=4)
    users = [make_user() for _ in range(5)]
    for user in users[:4]:
        assert _login(api, user.email).status_code == 200
    _assert_429(_login(api, users[4].email))


def test_limits_can_be_turned_off(
    limited: Callable[..., TestClient], make_user: Callable[..., User]
) -> None:
    api = limited(enabled=0)
    alice = make_user()
    for _ in range(5):
        assert _login(api, alice.email, "wrong-password-9").status_code == 401


def test_an_unreachable_limiter_lets_requests_through(
    settings: Settings, clean_database: Any, make_user: Callable[..., User]
) -> None:
    alice = make_user()
    broken = settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0", "rate_limit_login_failures_per_account": 1}
    )
    with TestClient(create_app(broken), base_url="http://testserver/api/v1/") as api:
        for _ in range(3):
            assert _login(api, alice.email, "wrong-password-9").status_code == 401
        assert _login(api, alice.email).status_code == 200


def test_the_defaults_never_trouble_a_real_checkout_client() -> None:
    defaults = Settings()
    assert defaults.rate_limit_enabled
    assert defaults.rate_limit_orders_per_caller * 60 / defaults.rate_limit_window_seconds >= 120
    assert defaults.rate_limit_login_failures_per_account == 10
    assert defaults.rate_limit_window_seconds == 60


def test_a_silent_limiter_is_waited_for_once_then_left_alone_for_a_while() -> None:
    """Redis cut off (packets dropped, nothing refused): one request waits out the client's
    timeout; the next ones pass at once until the pause ends, then Redis is asked again."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the kernel; nothing ever answers
        port = silent.getsockname()[1]

        async def scenario() -> list[float]:
            client = redis.asyncio.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
            limiter = RateLimiter(client, pause_seconds=1.0)
            limit = Limit("orders_per_caller", 1, 60, "too many orders from this caller")
            took = []
            for pause in (0, 0, 0, 0, 1.2):
                await asyncio.sleep(pause)
                started = time.monotonic()
                await limiter.hit(limit, "alice")  # over a limit of 1 if it were counting
                took.append(time.monotonic() - started)
            await client.aclose()
            return took

        took = asyncio.run(scenario())
    assert took[0] >= 0.45
    assert max(took[1:4]) < 0.1
    assert took[4] >= 0.45

"""Auth through HTTP: register, login (bearer and cookie), refresh rotation, logout, password."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.models import Order, Product, User
from orderflow.settings import Settings
from tests.conftest import PASSWORD, order_body


def _register(
    api: httpx.Client, email: str = "jane@example.com", **extra: object
) -> httpx.Response:
    return api.post("/auth/register", json={"email": email, "password": PASSWORD, **extra})


def _login(api: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return api.post("/auth/login", json={"email": email, "password": password})


def test_register_then_login_with_bearer_and_with_cookie(api: httpx.Client) -> None:
    created = _register(api, "Jane@Example.com", name="Jane")
    assert created.status_code == 201
    assert created.json() == {
        "id": created.json()["id"],
        "email": "jane@example.com",
        "name": "Jane",
        "role": "client",
        "phone": None,
        "sms_opt_in": False,
    }
    assert created.json()["id"].startswith("usr_")

    logged_in = _login(api, "jane@example.com")
    assert logged_in.status_code == 200
    body = logged_in.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    assert "httponly" in logged_in.headers["set-cookie"].lower()

    me = api.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["email"] == "jane@example.com"
    assert api.get("/auth/me").status_code == 200  # the cookie alone authenticates


def test_register_refuses_a_taken_email_and_weak_passwords(api: httpx.Client) -> None:
    assert _register(api).status_code == 201
    taken = _register(api, "JANE@example.com")
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"
    for password in ["short1", "onlyletters", "1234567890"]:
        weak = api.post("/auth/register", json={"email": "x@example.com", "password": password})
        assert weak.status_code == 422, password
        assert weak.json()["errors"][0]["field"] == "password"
    invalid = api.post("/auth/register", json={"email": "not-an-email", "password": PASSWORD})
    assert invalid.status_code == 422


def test_login_with_a_wrong_password_or_unknown_email_is_401(api: httpx.Client) -> None:
    _register(api)
    assert _login(api, "jane@example.com", "wrong-password-1").status_code == 401
    assert _login(api, "nobody@example.com").status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_whole_session(api: httpx.Client) -> None:
    _register(api)
    first = _login(api, "jane@example.com").json()
    api.cookies.clear()
    rotated = api.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    api.cookies.clear()
    assert api.get("/auth/me", headers=_bearer(second)).status_code == 200

    reused = api.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    api.cookies.clear()
    # The thief's replay closed the session: the legitimate newer tokens die with it.
    assert api.get("/auth/me", headers=_bearer(second)).status_code == 401
    assert (
        api.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code
        == 401
    )


def test_logout_revokes_the_access_token(api: httpx.Client) -> None:
    _register(api)
    tokens = _login(api, "jane@example.com").json()
    api.cookies.clear()
    assert api.post("/auth/logout", headers=_bearer(tokens)).status_code == 204
    assert api.get("/auth/me", headers=_bearer(tokens)).status_code == 401
    assert (
        api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 401
    )


def test_the_token_of_a_closed_session_places_no_order(
    api: httpx.Client, make_product: Callable[..., Product], database: Database
) -> None:
    """``POST /orders`` checks the session with its work, in one hand-off (``CallerWork``)."""
    product = make_product()
    _register(api)
    tokens = _login(api, "jane@example.com").json()
    api.cookies.clear()
    assert api.post("/auth/logout", headers=_bearer(tokens)).status_code == 204
    answer = api.post("/orders", json=order_body((product.id, 1)), headers=_bearer(tokens))
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    with database.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 0
        session.commit()


def test_password_change_closes_other_sessions(api: httpx.Client) -> None:
    _register(api)
    old = _login(api, "jane@example.com").json()
    api.cookies.clear()
    changed = api.put(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "brand-new-pass-7"},
        headers=_bearer(old),
    )
    assert changed.status_code == 200
    api.cookies.clear()
    assert api.get("/auth/me", headers=_bearer(old)).status_code == 401
    assert api.get("/auth/me", headers=_bearer(changed.json())).status_code == 200
    assert _login(api, "jane@example.com").status_code == 401
    assert _login(api, "jane@example.com", "brand-new-pass-7").status_code == 200


def test_password_change_needs_the_current_password(
    customer: httpx.Client,
) -> None:
    wrong = customer.put(
        "/auth/password", json={"current_password": "nope-nope-1", "new_password": "whatever-22"}
    )
    assert wrong.status_code == 401


def _bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def valid_claims(api: httpx.Client, settings: Settings) -> tuple[dict[str, object], str]:
    _register(api)
    token = _login(api, "jane@example.com").json()["access_token"]
    api.cookies.clear()
    return jwt.decode(token, options={"verify_signature": False}), token


def test_tampered_unsigned_expired_and_forged_tokens_are_401(
    api: httpx.Client, settings: Settings, valid_claims: tuple[dict[str, object], str]
) -> None:
    claims, token = valid_claims
    secret = settings.jwt_secret.get_secret_value()
    header, _, signature = token.split(".")
    forged_payload = _b64({**claims, "sub": "usr_someoneelse"})
    bad = {
        "tampered": f"{header}.{forged_payload}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong key": jwt.encode(claims, "another-secret-of-at-least-32-bytes!!", algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 10}, secret, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }
    for name, candidate in bad.items():
        answer = api.get("/auth/me", headers={"Authorization": f"Bearer {candidate}"})
        assert answer.status_code == 401, name
        assert answer.headers["content-type"] == "application/problem+json"


def test_a_forged_role_claim_grants_nothing(
    api: httpx.Client, settings: Settings, valid_claims: tuple[dict[str, object], str]
) -> None:
    claims, _ = valid_claims
    forged = jwt.encode(
        {**claims, "role": "admin"}, settings.jwt_secret.get_secret_value(), "HS256"
    )
    answer = api.post(
        "/products",
        json={"sku": "X-1", "name": "x", "price": 1, "currency": "usd", "stock": 1},
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert answer.status_code == 403


def test_a_deleted_user_token_is_401(
    api_url: str,
    make_user: Callable[..., User],
    login_as: Callable[[User], httpx.Client],
    clean_database: Database,
) -> None:
    user = make_user()
    client = login_as(user)
    with clean_database.unit_of_work() as session:
        session.delete(session.get(User, user.id))
        session.commit()
    assert client.get("/auth/me").status_code == 401

"""A customer's phone and SMS opt-in: given at registration or with ``PATCH /auth/me``,
validated and normalised to E.164 with ``phonenumbers``, shown by ``GET /auth/me``; bad
input is a 422 naming the field, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.models import User
from tests.conftest import PASSWORD


def _register(api: httpx.Client, **extra: Any) -> httpx.Response:
    return api.post(
        "/auth/register", json={"email": "jane@example.com", "password": PASSWORD, **extra}
    )


def _users(database: Database) -> int:
    with database.unit_of_work() as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def _fields(problem: httpx.Response) -> set[str]:
    assert problem.headers["content-type"] == "application/problem+json"
    return {error["field"] for error in problem.json()["errors"]}


def test_registration_takes_a_phone_as_people_write_it_and_stores_e164(
    api: httpx.Client, login_as: Callable[..., httpx.Client], clean_database: Database
) -> None:
    created = _register(api, phone="+1 (415) 555-0123", sms_opt_in=True)
    assert created.status_code == 201, created.text
    assert created.json()["phone"] == "+14155550123"
    assert created.json()["sms_opt_in"] is True
    with clean_database.unit_of_work() as session:
        user = session.scalar(select(User))
        assert user is not None
        assert user.phone == "+14155550123"
    me = login_as(user).get("/auth/me").json()
    assert (me["phone"], me["sms_opt_in"]) == ("+14155550123", True)


def test_registration_without_a_phone_is_not_opted_in(api: httpx.Client) -> None:
    created = _register(api).json()
    assert (created["phone"], created["sms_opt_in"]) == (None, False)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"phone": "4155550123"}, "phone"),  # no country code
        ({"phone": "+1 555"}, "phone"),  # too short for the plan
        ({"phone": "+44 20 7946"}, "phone"),
        ({"phone": "call me maybe"}, "phone"),
        ({"phone": ""}, "phone"),
        ({"phone": 14155550123}, "phone"),  # a number, not text
        ({"sms_opt_in": True}, "sms_opt_in"),  # nowhere to text
        ({"sms_opt_in": "yes"}, "sms_opt_in"),
    ],
)
def test_registration_refuses_a_bad_phone_naming_the_field_and_writes_nothing(
    api: httpx.Client, clean_database: Database, extra: dict[str, Any], field: str
) -> None:
    refused = _register(api, **extra)
    assert refused.status_code == 422, refused.text
    assert _fields(refused) == {field}
    assert _users(clean_database) == 0


def test_patch_me_changes_only_what_is_sent(customer: httpx.Client) -> None:
    before = customer.get("/auth/me").json()
    assert (before["phone"], before["sms_opt_in"]) == (None, False)

    changed = customer.patch("/auth/me", json={"phone": "+44 20 7946 0958", "sms_opt_in": True})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**before, "phone": "+442079460958", "sms_opt_in": True}

    renamed = customer.patch("/auth/me", json={"name": "Jane D."}).json()
    assert (renamed["name"], renamed["phone"], renamed["sms_opt_in"]) == (
        "Jane D.", "+442079460958", True,
    )  # fmt: skip
    opted_out = customer.patch("/auth/me", json={"sms_opt_in": False}).json()
    assert (opted_out["phone"], opted_out["sms_opt_in"]) == ("+442079460958", False)
    customer.patch("/auth/me", json={"sms_opt_in": True})

    # Removing the number removes the opt-in with it: there is nowhere to text.
    cleared = customer.patch("/auth/me", json={"phone": None}).json()
    assert (cleared["phone"], cleared["sms_opt_in"]) == (None, False)
    assert customer.get("/auth/me").json() == cleared
    assert customer.patch("/auth/me", json={}).json() == cleared


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "+1 555"}, "phone"),
        ({"phone": "555-0123"}, "phone"),
        ({"email": "other@example.com"}, "email"),  # not a profile field
        ({"role": "admin"}, "role"),
        ({"sms_opt_in": None}, "sms_opt_in"),
        ({"sms_opt_in": 1}, "sms_opt_in"),
        ({"phone": None, "sms_opt_in": True}, "sms_opt_in"),
    ],
)
def test_patch_me_refuses_bad_input_naming_the_field_and_changes_nothing(
    customer: httpx.Client, body: dict[str, Any], field: str
) -> None:
    customer.patch("/auth/me", json={"phone": "+14155550123", "sms_opt_in": True})
    before = customer.get("/auth/me").json()
    refused = customer.patch("/auth/me", json=body)
    assert refused.status_code == 422, refused.text
    assert field in _fields(refused)
    assert customer.get("/auth/me").json() == before


def test_opting_in_needs_a_phone_on_file_or_sent(customer: httpx.Client) -> None:
    refused = customer.patch("/auth/me", json={"sms_opt_in": True})
    assert refused.status_code == 422
    assert _fields(refused) == {"sms_opt_in"}
    both = customer.patch("/auth/me", json={"sms_opt_in": True, "phone": "+33 6 12 34 56 78"})
    assert both.json()["phone"] == "+33612345678"


def test_patch_me_needs_a_login(api: httpx.Client) -> None:
    assert api.patch("/auth/me", json={"sms_opt_in": False}).status_code == 401

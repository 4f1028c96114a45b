"""Shared machinery of the API fuzz runs (the fast profile in ``make test``, the long one in
``make fuzz``): a seeded world to aim at, the checks beyond schemathesis' own, and one
function that sends a generated case and validates the answer.

Generated path parameters and order lines are random strings, so left alone nearly every
request would be a 404 on the first lookup. Positive cases are therefore "aimed": a hash of
the generated value picks, two times in three, a real id from the seeded world (orders in
every status, products, customers), so the fuzzer also reaches the code behind the lookup.
Negative cases are sent as generated.
"""

from __future__ import annotations

import http.cookiejar
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from schemathesis import Case, CheckContext, GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from sqlalchemy.orm import Session

from api.app import create_app
from orderflow.auth import service as auth
from orderflow.auth import tokens
from orderflow.carts import service as carts
from orderflow.catalogue.service import NewProduct, create_product
from orderflow.db import Database
from orderflow.fulfilment import labels, moves, shipping
from orderflow.fulfilment.charging import begin_charge, record_charge_result
from orderflow.fulfilment.crediting import issue_credit_note
from orderflow.fulfilment.invoicing import generate_invoice
from orderflow.fulfilment.packing import NewShipment
from orderflow.fulfilment.refund_requests import request_refund
from orderflow.fulfilment.refunds import refund_payment
from orderflow.fulfilment.stock import reserve_stock
from orderflow.ids import new_id
from orderflow.models import AuthSession, User
from orderflow.money import Money
from orderflow.orders import service as orders
from orderflow.payments import LocalPaymentProvider
from orderflow.settings import Settings
from orderflow.shipping import LocalShippingProvider
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, place_command

PROBLEM_JSON = "application/problem+json"
PROBLEM_MEMBERS = ("type", "title", "status", "detail")


@dataclass
class FuzzWorld:
    """What the fuzzer aims at, and the secrets no answer may contain."""

    api_url: str
    settings: Settings
    database: Database
    tokens: dict[str, str]
    users: dict[str, User]
    products: list[str]
    orders: list[str]
    carts: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    #: The confirmed order's shipment (its label bought by the local provider).
    shipments: list[str] = field(default_factory=list)
    #: The number of the credit note of a partial refund of the confirmed order.
    credit_notes: list[str] = field(default_factory=list)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def fresh_token(self, role: str) -> str:
        """A session of its own, for a case that may end it (``POST /auth/logout``); opened
        as ``auth.login`` opens one, without paying for a password hash per case."""
        user = self.users[role]
        with self.database.unit_of_work() as session:
            opened = AuthSession(id=new_id("ses"), user_id=user.id)
            session.add(opened)
            session.commit()
        return tokens.issue_access_token(
            self.settings.jwt_secret.get_secret_value(),
            user.id,
            opened.id,
            self.settings.access_token_ttl_seconds,
        )


def build_world(api_url: str, settings: Settings, database: Database) -> FuzzWorld:
    """Two clients and an admin, a few products, orders of the client in every status, one
    of them invoiced, and carts of each user, so every route has something real to find.

    Built from the services with fresh e-mails and SKUs, so it needs no empty database and
    can live for a whole module (one world for every operation's run).
    """
    tag = uuid.uuid4().hex[:8]
    with database.unit_of_work() as session:
        users = {
            "client": auth.register_user(session, f"fuzz-{tag}@example.com", PASSWORD, "Fuzz"),
            "other": auth.register_user(session, f"other-{tag}@example.com", PASSWORD, None),
            "admin": auth.ensure_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD),
        }
        tokens = {
            role: auth.login(
                session, settings, user.email, ADMIN_PASSWORD if role == "admin" else PASSWORD
            ).access_token
            for role, user in users.items()
        }
        products = [
            create_product(
                session,
                NewProduct(
                    sku=f"FUZZ-{tag}-{n}",
                    name=f"Fuzz product {n}",
                    price=Money(500 + 250 * n, "usd"),
                    stock=1_000_000,
                    active=n < 4,
                ),
            ).id
            for n in range(5)
        ]
        session.commit()
    provider = LocalPaymentProvider()
    order_ids: list[str] = []
    for owner in ("client", "client", "client", "other"):
        with database.unit_of_work() as session:
            order_ids.append(_place(session, users[owner].id, products[len(order_ids)]))
            session.commit()
    _, confirmed, cancelled, _ = order_ids
    with database.unit_of_work() as session:
        reserve_stock(session, confirmed)
        session.commit()
    with database.unit_of_work() as session:
        request = begin_charge(session, confirmed)
        session.commit()
    assert request is not None
    result = provider.charge(
        order_id=confirmed,
        amount=request.amount,
        payment_method=request.payment_method,
        idempotency_key=request.idempotency_key,
    )
    with database.unit_of_work() as session:
        record_charge_result(session, result, order_id=confirmed)
        session.commit()
    with database.unit_of_work() as session:
        generate_invoice(session, confirmed)
        session.commit()
    with database.unit_of_work() as session:  # a partial refund, credited
        refund_id = request_refund(session, confirmed, Money(1, "usd"), "fuzz", "admin").id
        session.commit()
    refund_payment(database, provider, confirmed, refund_id)
    with database.unit_of_work() as session:
        note = issue_credit_note(session, confirmed, refund_id)
        assert note is not None
        credit_notes = [note.number]
        session.commit()
    with database.unit_of_work() as session:
        moves.cancel_order(session, cancelled, orders.Viewer(users["client"].id, False))
        session.commit()
    cart_ids = []
    for owner, lines in (("client", products[:2]), ("client", []), ("other", products[:1]),
                         ("admin", products[1:3])):  # fmt: skip
        with database.unit_of_work() as session:
            items = [carts.ItemRequest(product_id, 1) for product_id in lines]
            ttl = settings.cart_ttl_hours
            cart_ids.append(carts.create_cart(session, users[owner].id, None, items, ttl))
            session.commit()
    with database.unit_of_work() as session:
        admin = orders.Viewer(users["admin"].id, is_admin=True)
        shipment_id = shipping.create_shipment(
            session, admin, confirmed, NewShipment(buy_label=True)
        ).id
        session.commit()
    labels.buy_label(database, LocalShippingProvider(), shipment_id)
    return FuzzWorld(
        api_url=api_url,
        settings=settings,
        database=database,
        tokens=tokens,
        users=users,
        products=products,
        orders=order_ids,
        carts=[view.state.cart.id for view in cart_ids],
        secrets=[settings.jwt_secret.get_secret_value(), PASSWORD, ADMIN_PASSWORD],
        shipments=[shipment_id],
        credit_notes=credit_notes,
    )


def _place(session: Session, customer_id: str, product_id: str) -> str:
    return orders.place_order(session, place_command(customer_id, (product_id, 1))).id


# --- aiming ----------------------------------------------------------------------------------


def _pick(value: object, pool: list[str]) -> str | None:
    """Two times in three a real id from ``pool``, chosen by a hash of the generated value
    (deterministic, so hypothesis can replay and shrink the case)."""
    digest = zlib.crc32(repr(value).encode())
    if digest % 3 == 0 or not pool:
        return None
    return pool[digest % len(pool)]


def _is_positive(case: Case, location: ParameterLocation) -> bool:
    meta = case.meta
    if meta is None:
        return False
    component = meta.components.get(location)
    return component is not None and component.mode is GenerationMode.POSITIVE


def aim(case: Case, world: FuzzWorld) -> None:
    pools = {
        "order_id": world.orders,
        "product_id": world.products,
        "customer_id": [user.id for user in world.users.values()],
        "cart_id": world.carts,
        "shipment_id": world.shipments,
        "number": world.credit_notes,
    }
    if case.path_parameters and _is_positive(case, ParameterLocation.PATH):
        for name, value in list(case.path_parameters.items()):
            chosen = _pick(value, pools.get(name, []))
            if chosen is not None:
                case.path_parameters[name] = chosen
    body = case.body
    if isinstance(body, dict) and _is_positive(case, ParameterLocation.BODY):
        items = body.get("items")
        if isinstance(items, list) and len(items) <= len(world.products):
            chosen_ids = [_pick(item, world.products) for item in items]
            taken = [pid for pid in chosen_ids if pid is not None]
            if len(taken) == len(set(taken)):  # one line per product, as the service asks
                for item, pid in zip(items, chosen_ids, strict=True):
                    if pid is not None and isinstance(item, dict):
                        item["product_id"] = pid
        for name in ("customer_id", "cart_id"):
            if name in body:
                chosen = _pick(body[name], pools[name])
                if chosen is not None:
                    body[name] = chosen


# --- checks ----------------------------------------------------------------------------------


def problem_details(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx and 5xx answer is an RFC 9457 problem document naming its status."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert content_type == PROBLEM_JSON, (
        f"{response.status_code} answered {content_type!r}, not {PROBLEM_JSON}"
    )
    body = response.json()
    assert isinstance(body, dict), f"problem body is not an object: {body!r}"
    missing = [member for member in PROBLEM_MEMBERS if not body.get(member)]
    assert not missing, f"problem document lacks {missing}: {body}"
    assert body["status"] == response.status_code, f"status {body['status']} in a {response}"
    if body["type"] == "/problems/validation-error":
        assert body.get("errors"), f"a validation error names no field: {body}"
    return True


def make_secret_check(secrets: list[str]) -> Callable[[CheckContext, Response, Case], bool | None]:
    def no_secrets_echoed(ctx: CheckContext, response: Response, case: Case) -> bool | None:
        """No answer (body or headers) carries a configured secret or a known password."""
        text = response.content.decode("utf-8", "replace") if response.content else ""
        headers = " ".join(f"{k}: {v}" for k, vs in response.headers.items() for v in vs)
        for secret in secrets:
            assert secret not in text, "a secret appears in the response body"
            assert secret not in headers, "a secret appears in the response headers"
        return True

    return no_secrets_echoed


# --- running one case ------------------------------------------------------------------------


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


@dataclass
class FuzzStats:
    """What a run sent: generated cases by phase, and every request that went through the
    run's session (cases and the extra requests some checks make) by status class."""

    cases: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)

    def count_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.responses[f"{response.status_code // 100}xx"] += 1

    def session(self) -> requests.Session:
        session = requests.Session()
        session.hooks["response"].append(self.count_response)
        # Every case authenticates as its role, with its own header; a cookie set by one
        # case (a login or refresh that succeeded, e.g. with the spec's own examples) must
        # not authenticate the next, whose checks send requests without credentials.
        session.cookies.set_policy(_NoCookies())
        return session

    def summary(self) -> str:
        return (
            f"{sum(self.cases.values())} generated cases {dict(self.cases)}, "
            f"{sum(self.responses.values())} responses {dict(self.responses)}"
        )


def _unsendable(value: object) -> bool:
    """A negative case whose query value a URL cannot carry as generated: an object goes out
    as its keys and a one-item array as its item, both valid strings (schemathesis then
    reports the API for accepting them)."""
    return isinstance(value, dict) or (isinstance(value, list) and len(value) <= 1)


def run_case(
    case: Case, world: FuzzWorld, role: str, session: requests.Session, stats: FuzzStats
) -> None:
    """Aim, authenticate as ``role``, send over real HTTP and run every check."""
    if any(_unsendable(value) for value in (case.query or {}).values()):
        return
    aim(case, world)
    stats.cases[case.meta.phase.name.value if case.meta else "unknown"] += 1
    token = world.tokens[role]
    if case.operation.path.endswith("/auth/logout"):
        token = world.fresh_token(role)  # logging out must not end the run's own session
    case.call_and_validate(
        base_url=world.api_url,
        session=session,
        headers={"Authorization": f"Bearer {token}"},
        additional_checks=[problem_details, make_secret_check(world.secrets)],
    )


#: Answers that schema-valid input may legitimately get, because the rule is one JSON Schema
#: cannot state; every other check stays on for these operations.
_SEMANTIC_REFUSALS: list[tuple[str, str, list[str], str]] = [
    (
        "POST",
        "/api/v1/auth/register",
        ["422"],
        "password strength: letters and digits; a phone of its country's plan; opt-in needs one",
    ),
    (
        "PATCH",
        "/api/v1/auth/me",
        ["422"],
        "a phone that exists in its country's plan; sms_opt_in needs a phone",
    ),
    ("PUT", "/api/v1/auth/password", ["422"], "password strength of new_password"),
    (
        "POST",
        "/api/v1/orders/{order_id}/returns",
        ["422"],
        "a product the order has, named once",
    ),
    (
        "POST",
        "/api/v1/orders",
        ["422"],
        "one line per product, one currency per order, items or cart_id, a cart not empty",
    ),
    ("POST", "/api/v1/carts", ["422"], "one item per product, one currency per cart"),
    (
        "POST",
        "/api/v1/orders/{order_id}/refunds",
        ["422"],
        "an Idempotency-Key reused with another amount",
    ),
    ("POST", "/api/v1/webhooks/stripe", ["400"], "a well-formed signature that does not verify"),
    ("GET", "/api/v1/events", ["422"], "a cursor the feed gave out; known event types"),
    ("POST", "/api/v1/webhook-endpoints", ["422"], "an https URL of public addresses; known types"),
    ("PATCH", "/api/v1/webhook-endpoints/{endpoint_id}", ["422"], "as POST; no null url"),
    ("POST", "/api/v1/webhook-endpoints/{endpoint_id}/replay", ["422"], "known event types"),
    (
        "POST",
        "/api/v1/orders/{order_id}/shipments",
        ["422"],
        "products of the order, once each; a label bought or a tracking number, not both; an "
        "Idempotency-Key reused with another body",
    ),
    (
        "POST",
        "/api/v1/shipments/{shipment_id}/events",
        ["422"],
        "a tracking status (not pending or cancelled), at most a day ahead",
    ),
    (
        "PATCH",
        "/api/v1/orders/{order_id}",
        ["422"],
        "shipping_address or items (at least one), each product once",
    ),
]
_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]


def profile(max_examples: int) -> dict[str, Any]:
    """Schemathesis configuration: every check and phase on, ``max_examples`` generated
    cases per operation in the fuzzing phase (examples and coverage phases come on top)."""
    return {
        # PostgreSQL cannot store NUL, so the API refuses it with a 422 the spec does not
        # state; test_security sends NUL in every field instead. Extra parameters stay off
        # because schemathesis would add headers too, which any API must ignore; unknown
        # query parameters and body fields are refused (422), which test_strict_requests and
        # test_security check.
        "generation": {"allow-x00": False, "allow-extra-parameters": False},
        "phases": {"fuzzing": {"generation": {"max-examples": max_examples}}},
        "operations": [
            {
                "include-name": f"{method} {path}",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, *extra]}},
            }
            for method, path, extra, _why in _SEMANTIC_REFUSALS
        ],
    }


def served_spec() -> dict[str, Any]:
    """The OpenAPI document the app serves at ``/openapi.json``. It depends on no setting
    but the payment provider (the local payment pages exist only with the local one, the
    default and the tests'; ``test_the_fuzzed_spec_is_the_served_one`` compares it with the
    live server's), so the settings are the defaults, not read from the environment."""
    return create_app(Settings.model_construct(environment="test")).openapi()


def load_schema(config: dict[str, Any]) -> schemathesis.BaseSchema:
    """The spec, loaded at import time so pytest gets one test per operation."""
    return schemathesis.openapi.from_dict(
        served_spec(), config=schemathesis.Config.from_dict(config)
    )

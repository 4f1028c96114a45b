"""Browsers on other origins, over real HTTP: a page of another site cannot ride the auth
cookie to write (CSRF), the front ends in ``ORDERFLOW_CORS_ORIGINS`` and the API's own pages
can, bearer-token callers never notice, and only allowed origins get CORS answers.

Each attack is sent as a browser would send it: the victim's ``orderflow_access`` cookie,
no ``Authorization`` header, and the attacking page's ``Origin`` (or only its ``Referer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.models import Order, Product, User
from orderflow.settings import Settings
from tests.conftest import PASSWORD, order_body, serving

SHOP = "https://shop.example"  # the front end allowed in the shop deployment below
EVIL = "https://evil.example"
PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def shop_url(settings: Settings) -> Iterator[str]:
    """The API deployed with ``ORDERFLOW_CORS_ORIGINS=https://shop.example``, on the same
    database as ``api_url``'s (which has no allowed origins)."""
    with serving(settings.model_copy(update={"cors_origins": (SHOP,)})) as url:
        yield url


@dataclass
class Browser:
    """A logged-in user's browser: it holds the auth cookies and sends no bearer token."""

    client: httpx.Client
    user: User
    bearer: dict[str, str]  # the same session's token, for a non-browser caller
    own_origin: str


@pytest.fixture
def browser_on(
    make_user: Callable[..., User],
) -> Iterator[Callable[[str], Browser]]:
    clients: list[httpx.Client] = []

    def open_on(base: str) -> Browser:
        client = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
        clients.append(client)
        user = make_user()
        login = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert client.cookies.get("orderflow_access")
        token = login.json()["access_token"]
        return Browser(client, user, {"Authorization": f"Bearer {token}"}, base)

    yield open_on
    for client in clients:
        client.close()


@pytest.fixture
def browser(api_url: str, browser_on: Callable[[str], Browser]) -> Browser:
    return browser_on(api_url)


@pytest.fixture
def product(make_product: Callable[..., Product]) -> Product:
    return make_product(stock=10)


def _orders(database: Database) -> int:
    with database.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


def _status(database: Database, order_id: str) -> str:
    with database.unit_of_work() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.status


def _refused(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text[:300]
    assert answer.headers["content-type"] == PROBLEM_JSON
    body = answer.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == 403
    assert body["type"] == "/problems/cross-site-request"
    assert not _cors_headers(answer)


def _cors_headers(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.lower().startswith("access-control-")}


def _place_with_bearer(browser: Browser, product: Product) -> str:
    placed = browser.client.post(
        "/orders", json=order_body((product.id, 1)), headers=browser.bearer
    )
    assert placed.status_code == 201, placed.text
    return str(placed.json()["id"])


def _can_log_in(base: str, user: User, password: str) -> bool:
    answer = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": user.email, "password": password}
    )
    return answer.status_code == 200


# --- the attacks: a page of another site riding the cookie -------------------------------------


def test_cookie_post_orders_from_a_foreign_origin_is_refused_and_places_nothing(
    browser: Browser, product: Product, clean_database: Database
) -> None:
    answer = browser.client.post(
        "/orders", json=order_body((product.id, 1)), headers={"Origin": EVIL}
    )
    _refused(answer)
    assert EVIL in answer.json()["detail"]
    assert _orders(clean_database) == 0


def test_cookie_delete_order_from_a_foreign_origin_is_refused_and_cancels_nothing(
    browser: Browser, product: Product, clean_database: Database
) -> None:
    order_id = _place_with_bearer(browser, product)
    _refused(browser.client.delete(f"/orders/{order_id}", headers={"Origin": EVIL}))
    assert _status(clean_database, order_id) == "pending"


def test_cookie_password_change_from_a_foreign_origin_is_refused_and_changes_nothing(
    browser: Browser, api_url: str
) -> None:
    answer = browser.client.put(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "chosen-by-evil-1"},
        headers={"Origin": EVIL},
    )
    _refused(answer)
    assert _can_log_in(api_url, browser.user, PASSWORD)
    assert not _can_log_in(api_url, browser.user, "chosen-by-evil-1")
    assert browser.client.get("/auth/me").status_code == 200  # the session still open


def test_a_foreign_referer_without_origin_is_refused(
    browser: Browser, product: Product, clean_database: Database
) -> None:
    order_id = _place_with_bearer(browser, product)
    referer = {"Referer": f"{EVIL}/free-gift?x=1"}
    _refused(browser.client.post("/orders", json=order_body((product.id, 1)), headers=referer))
    _refused(browser.client.delete(f"/orders/{order_id}", headers=referer))
    assert _orders(clean_database) == 1
    assert _status(clean_database, order_id) == "pending"


def test_a_cookie_write_that_says_nothing_of_its_origin_is_refused(
    browser: Browser, product: Product, clean_database: Database
) -> None:
    """OWASP: with neither Origin nor Referer the source cannot be verified, so it is
    blocked. Browsers send Origin on every cross-origin write, and on same-origin ones too
    in current versions, so only a non-browser caller lands here: it has a bearer token."""
    _refused(browser.client.post("/orders", json=order_body((product.id, 1))))
    assert _orders(clean_database) == 0


@pytest.mark.parametrize(
    "origin",
    [
        "null",  # sandboxed iframes, data: URLs, some redirects
        SHOP,  # allowed in another deployment, not in this one
        "https://127.0.0.1",  # the API's host on another scheme and port
        "http://127.0.0.1.evil.example",
        "not a url",
    ],
)
def test_origins_that_only_resemble_a_trusted_one_are_refused(
    origin: str, browser: Browser, product: Product, clean_database: Database
) -> None:
    _refused(
        browser.client.post("/orders", json=order_body((product.id, 1)), headers={"Origin": origin})
    )
    assert _orders(clean_database) == 0


def test_an_origin_wins_over_a_trusted_referer(
    browser: Browser, product: Product, clean_database: Database
) -> None:
    headers = {"Origin": EVIL, "Referer": f"{browser.own_origin}/checkout"}
    _refused(browser.client.post("/orders", json=order_body((product.id, 1)), headers=headers))
    assert _orders(clean_database) == 0


def test_a_basic_authorization_header_does_not_exempt_the_cookie(
    browser: Browser, product: Product, clean_database: Database
) -> None:
    """A browser may attach cached Basic credentials by itself; the cookie still
    authenticates such a request, so it is still checked."""
    headers = {"Origin": EVIL, "Authorization": "Basic dXNlcjpwYXNz"}
    _refused(browser.client.post("/orders", json=order_body((product.id, 1)), headers=headers))
    assert _orders(clean_database) == 0


def test_logout_and_refresh_by_cookie_from_a_foreign_origin_are_refused(
    browser: Browser, clean_database: Database
) -> None:
    refresh_before = browser.client.cookies.get("orderflow_refresh")
    _refused(browser.client.post("/auth/refresh", headers={"Origin": EVIL}))
    _refused(browser.client.post("/auth/logout", headers={"Origin": EVIL}))
    assert browser.client.cookies.get("orderflow_refresh") == refresh_before
    assert browser.client.get("/auth/me").status_code == 200


def test_login_from_a_foreign_origin_is_refused(
    api: httpx.Client, make_user: Callable[..., User]
) -> None:
    """Login CSRF: a page that logs its visitor into the attacker's account sees what the
    visitor then orders, and where it is shipped."""
    attacker = make_user()
    answer = api.post(
        "/auth/login",
        json={"email": attacker.email, "password": PASSWORD},
        headers={"Origin": EVIL},
    )
    _refused(answer)
    assert "set-cookie" not in answer.headers
    assert not api.cookies


def test_register_and_login_without_origin_still_work(api: httpx.Client) -> None:
    """Scripts, mobile apps and servers send no Origin: not concerned, even when their
    cookie jar holds a cookie from an earlier login (the cookie authenticates neither)."""
    email = "script@example.com"
    assert (
        api.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    )
    assert api.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
    assert api.cookies.get("orderflow_access")
    again = api.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert again.status_code == 200, again.text
    other = {"email": "second@example.com", "password": PASSWORD}
    assert api.post("/auth/register", json=other).status_code == 201
    # A refresh token sent in the body is not the cookie either.
    refresh = api.post("/auth/refresh", json={"refresh_token": again.json()["refresh_token"]})
    assert refresh.status_code == 200, refresh.text


# --- the real front-end paths still work -------------------------------------------------------


def test_the_apis_own_origin_may_write_with_the_cookie(
    browser: Browser, product: Product, clean_database: Database, api_url: str
) -> None:
    own = {"Origin": browser.own_origin}
    placed = browser.client.post("/orders", json=order_body((product.id, 1)), headers=own)
    assert placed.status_code == 201, placed.text
    by_referer = browser.client.post(
        "/orders", json=order_body((product.id, 1)), headers={"Referer": f"{api_url}/docs"}
    )
    assert by_referer.status_code == 201, by_referer.text
    cancelled = browser.client.delete(f"/orders/{placed.json()['id']}", headers=own)
    assert cancelled.status_code == 204
    assert _status(clean_database, placed.json()["id"]) == "cancelled"
    changed = browser.client.put(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "a-new-password-2"},
        headers=own,
    )
    assert changed.status_code == 200, changed.text
    assert _can_log_in(api_url, browser.user, "a-new-password-2")


def test_an_allowed_front_end_may_write_with_the_cookie_and_read_the_answer(
    shop_url: str,
    browser_on: Callable[[str], Browser],
    product: Product,
    clean_database: Database,
) -> None:
    browser = browser_on(shop_url)
    placed = browser.client.post(
        "/orders", json=order_body((product.id, 1)), headers={"Origin": SHOP}
    )
    assert placed.status_code == 201, placed.text
    assert placed.headers["access-control-allow-origin"] == SHOP
    assert placed.headers["access-control-allow-credentials"] == "true"
    assert "Location" in placed.headers["access-control-expose-headers"]
    assert "Origin" in placed.headers["vary"]
    cancelled = browser.client.delete(f"/orders/{placed.json()['id']}", headers={"Origin": SHOP})
    assert cancelled.status_code == 204
    assert _status(clean_database, placed.json()["id"]) == "cancelled"
    by_referer = browser.client.post(
        "/orders", json=order_body((product.id, 1)), headers={"Referer": f"{SHOP}/cart"}
    )
    assert by_referer.status_code == 201, by_referer.text
    # The shop deployment still refuses every other site, and reads answer them nothing.
    _refused(
        browser.client.post("/orders", json=order_body((product.id, 1)), headers={"Origin": EVIL})
    )
    read = browser.client.get("/orders", headers={"Origin": EVIL})
    assert read.status_code == 200
    assert not _cors_headers(read)


def test_bearer_requests_are_unaffected_by_a_foreign_origin(
    browser: Browser, product: Product, clean_database: Database, api_url: str
) -> None:
    """A bearer token is never attached by a browser on its own (and a page of another
    origin cannot add one without a preflight, refused to it), so its holder meant the
    request, wherever it comes from; the cookie sent along changes nothing."""
    headers = {**browser.bearer, "Origin": EVIL}
    placed = browser.client.post("/orders", json=order_body((product.id, 1)), headers=headers)
    assert placed.status_code == 201, placed.text
    no_origin = {**browser.bearer, "Referer": f"{EVIL}/x"}
    assert (
        browser.client.delete(f"/orders/{placed.json()['id']}", headers=no_origin).status_code
        == 204
    )
    changed = browser.client.put(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "bearer-changed-3"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert _can_log_in(api_url, browser.user, "bearer-changed-3")


def test_reads_are_never_refused(browser: Browser) -> None:
    assert browser.client.get("/auth/me", headers={"Origin": EVIL}).status_code == 200
    assert browser.client.get("/orders").status_code == 200


# --- CORS ----------------------------------------------------------------------------------------


def _preflight(
    base: str, origin: str, method: str = "POST", path: str = "/api/v1/orders"
) -> httpx.Response:
    return httpx.options(
        f"{base}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_a_preflight_from_an_allowed_origin_is_answered_with_credentials(shop_url: str) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = _preflight(shop_url, SHOP, method)
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == SHOP
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert method in answer.headers["access-control-allow-methods"]
        allowed = answer.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "idempotency-key"} <= set(allowed.split(", "))
        assert "*" not in answer.headers.values()


@pytest.mark.parametrize("origin", [EVIL, "null", f"{SHOP}.evil.example", "http://shop.example"])
def test_a_preflight_from_any_other_origin_gets_no_allow_header(
    origin: str, shop_url: str, api_url: str
) -> None:
    for base in (shop_url, api_url):
        answer = _preflight(base, origin)
        assert answer.status_code == 403
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert answer.json()["type"] == "/problems/cors-origin-refused"
        assert not _cors_headers(answer), answer.headers


def test_without_allowed_origins_no_origin_gets_cors_answers(api_url: str) -> None:
    """The default: no cross-origin browser access at all."""
    assert not _cors_headers(_preflight(api_url, SHOP))
    read = httpx.get(f"{api_url}/api/v1/products", headers={"Origin": SHOP})
    assert read.status_code == 200
    assert not _cors_headers(read)


def test_an_allowed_origin_asking_for_an_unlisted_header_is_refused(shop_url: str) -> None:
    answer = httpx.options(
        f"{shop_url}/api/v1/orders",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-made-up",
        },
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert not _cors_headers(answer)

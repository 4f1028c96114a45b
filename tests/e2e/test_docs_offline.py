"""``/docs`` (Swagger UI) and ``/redoc`` render with no network but this machine: their assets
come from the API itself. Swagger UI lists every operation and runs one request from the
page."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from orderflow.models import Product
from tests.e2e.conftest import Offline


def _operations(api_url: str) -> list[tuple[str, str, str]]:
    spec = httpx.get(f"{api_url}/openapi.json", timeout=10).json()
    return [
        (method.upper(), path, operation["summary"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def test_swagger_ui_lists_every_operation_and_runs_one_offline(
    offline_page: Offline,
    api_url: str,
    api: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    product = make_product(sku="E2E-SWAGGER-1")
    page = offline_page.page
    page.goto(f"{api_url}/docs")
    page.wait_for_selector(".opblock", state="attached")
    operations = _operations(api_url)
    blocks = page.locator(".opblock")
    assert blocks.count() == len(operations)
    for method, path, _ in operations:
        block = page.locator(f".opblock-{method.lower()}", has_text=path).first
        assert block.is_visible(), (method, path)
    assert page.get_by_text("Place an order", exact=True).first.is_visible()

    # Try it out: GET /api/v1/products from the page.
    listing = page.locator("#operations-products-list_products_api_v1_products_get")
    listing.locator(".opblock-summary").click()
    listing.locator("button.try-out__btn").click()
    listing.locator("button.execute").click()
    status = listing.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip().startswith("200")
    body = listing.locator(".live-responses-table .microlight, .live-responses-table pre").first
    assert product.id in body.inner_text()

    assert offline_page.blocked == []
    assert offline_page.failed == []


#: ReDoc's "API docs by Redocly" logo, which its bundle always fetches from its CDN and
#: hides when that fails (``onError``): decoration, not part of the documentation.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_redoc_renders_offline(offline_page: Offline, api_url: str) -> None:
    page = offline_page.page
    page.goto(f"{api_url}/redoc")
    page.locator("h2", has_text="Place an order").first.wait_for()
    for _, _, summary in _operations(api_url):
        assert page.locator("h2", has_text=summary).count() >= 1, summary
    assert set(offline_page.blocked) <= {REDOC_LOGO}
    assert set(offline_page.failed) <= {REDOC_LOGO}

"""Browser tests: Debian's chromium driven by Playwright for Python, never a downloaded browser.

Run by ``make e2e`` (which installs chromium with apt and the ``e2e`` extra when missing);
not part of ``make test``. Every request the page makes to anything but this machine's API is
aborted and recorded, so a page that needs the internet fails here.

``ORDERFLOW_E2E_CHROMIUM`` names another chromium binary. Without Playwright or chromium the
tests are skipped, unless ``ORDERFLOW_E2E_REQUIRED`` is set (``make e2e`` sets it), when they
fail instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("ORDERFLOW_E2E_CHROMIUM", "/usr/bin/chromium")
#: What the brief for running chromium here asks: headless, no sandbox (root in CI), no
#: GPU, and none of chromium's own traffic (updates, sync, field trials).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _unavailable(reason: str) -> None:
    if os.environ.get("ORDERFLOW_E2E_REQUIRED"):
        pytest.fail(f"{reason} (make e2e installs it)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[e2e]')")
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@dataclass
class Offline:
    """A browser page that reaches only this machine; what it tried elsewhere is kept."""

    page: Any
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@pytest.fixture
def offline_page(browser: Any) -> Iterator[Offline]:
    context = browser.new_context()
    page = context.new_page()
    seen = Offline(page)

    def only_this_machine(route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            seen.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_this_machine)
    page.on("requestfailed", lambda request: seen.failed.append(request.url))
    page.set_default_timeout(20_000)
    yield seen
    context.close()

"""Fixtures of the UI tests: a gateway serving seeded traces, and headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controltower.store import InMemoryStore

from ..conftest import DEMO, RunningGateway, config, running_gateway
from . import data

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def served() -> Iterator[RunningGateway]:
    """A gateway over an in-memory store holding the seeded traces (shared by a module)."""
    store = InMemoryStore()
    data.seed(store)
    with running_gateway(config(DEMO), store) as gw:
        yield gw


@pytest.fixture
def http(served: RunningGateway) -> Iterator[httpx.Client]:
    """An HTTP client of the seeded gateway that does not follow redirects."""
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (never Playwright's own download)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (scripts/test installs it with apt-get)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is required when CI=true: {reason}")
        pytest.skip(f"browser tests need Chromium: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page (its own cookies), failing the test on any script error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(20_000)
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"

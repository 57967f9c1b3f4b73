"""Headless Chromium (Debian's package) driven by Playwright, for the tests that open pages.

A missing browser fails the test that needs it (it never skips): install it with
``apt-get install -y chromium``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (the README's test section)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def watch(page: Any) -> list[str]:
    """Collect the page's console errors, uncaught exceptions and HTTP errors (requests that a
    navigation cancels, net::ERR_ABORTED, are not errors)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"exception: {e}"))
    page.on(
        "requestfailed",
        lambda r: errors.append(f"request failed: {r.url} {r.failure}") if "ABORTED" not in str(r.failure) else None,
    )
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return errors


def images_loaded(page: Any, errors: list[str] | None = None) -> int:
    """Wait for the page's load event, then for every image (lazy ones included) to load and
    decode; assert that each one did (a broken one has ``naturalWidth == 0``); returns how
    many there are."""
    page.wait_for_load_state("load")
    broken = page.evaluate(
        """async () => {
            const images = Array.from(document.images);
            for (const img of images) img.loading = "eager";
            const failed = await Promise.all(images.map((i) => i.decode().then(() => null, () => i.src)));
            return failed.filter((src) => src).concat(images.filter((i) => i.naturalWidth === 0).map((i) => i.src));
        }"""
    )
    assert not broken, [*broken, *(errors or [])]
    return int(page.evaluate("() => document.images.length"))

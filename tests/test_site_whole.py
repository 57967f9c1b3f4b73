"""The whole model's site at full scale, in headless Chromium from ``file://``: every channel of
EfficientNet-Lite0's seven stages and its 1,280-channel head (2,064 units, a synthetic catalog:
rendering them is a benchmark's job, not a test's). The model page and every layer page show
their first screen quickly (the figures printed; ``bench/microscope.py site`` measures them
against the one-second target: a timed test must hold on a busy machine too, so it only
guards against a page whose first screen waits for all its units); every page opened loads
every image and logs no error."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from browser import chromium, images_loaded, watch
from synthetic import fake_microscope

pytestmark = pytest.mark.slow

LAYERS = {f"blocks.{i}": c for i, c in enumerate((16, 24, 40, 80, 112, 192, 320))} | {"conv_head": 1280}
FIRST_SCREEN = (
    "() => Array.from(document.images).filter(i => i.getBoundingClientRect().top < innerHeight)"
    ".every(i => i.complete && i.naturalWidth > 0)"
)


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    fake_microscope(out, LAYERS)
    return out


def _first_screen(page, url: str) -> float:
    """Seconds from navigation to every image of the first screen decoded."""
    start = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(FIRST_SCREEN, timeout=30_000)
    return time.perf_counter() - start


def test_every_page_of_a_2064_unit_site_opens_fast_and_whole(whole):
    assert sum(LAYERS.values()) == 2064
    seconds = {}
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors = watch(page)
        _first_screen(page, (whole / "index.html").as_uri())  # a warm-up: the browser's own start
        seconds["model"] = _first_screen(page, (whole / "index.html").as_uri())
        links = page.eval_on_selector_all("a[href*='layers/']", "as => as.map(a => a.href)")
        assert len(links) == len(LAYERS)
        for layer, channels in LAYERS.items():
            url = (whole / "layers" / f"{layer}.html").as_uri()
            assert url in links
            seconds[layer] = _first_screen(page, url)
            page.wait_for_selector("body[data-units='all']", state="attached")  # the tiles beyond the first screen
            assert page.locator("#units figure").count() == channels
            shown = page.eval_on_selector_all("#units figure", "fs => fs.map(f => Number(f.dataset.channel))")
            assert shown == list(range(channels))
            assert images_loaded(page, errors) >= channels  # every thumbnail, lazy ones included
            for c in (0, channels - 1):  # a unit page at each end of the layer
                page.goto((whole / "units" / layer / f"{c}.html").as_uri())
                assert page.title().endswith(f"{layer}:{c}")
                assert images_loaded(page, errors) >= 9
                for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
                    target = Path(unquote(urlparse(href).path))
                    assert not href.startswith("file://") or target.is_file(), href
        assert not errors, errors
    print({k: round(v, 3) for k, v in seconds.items()})
    # measured on 2 cores (bench/microscope.py site --whole): 0.19 s (model), 0.33 to 0.74 s (layers
    # of 16 to 1,280 units); before the tiles beyond the first screen moved out of the HTML: 1.6 to 2.1 s
    slow = {k: round(v, 3) for k, v in seconds.items() if v >= 3.0}
    assert not slow, (slow, seconds)

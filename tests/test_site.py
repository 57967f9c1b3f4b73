"""The Microscope's site in a real browser (headless Chromium through Playwright): from
``file://`` and from ``featviz microscope serve``, which renders skipped units on demand."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from browser import chromium, images_loaded, watch
from servers import Server

import featviz
from featviz.microscope import Catalog

pytestmark = pytest.mark.slow


def _walk(browser, index: str) -> None:
    """model -> layer -> unit -> a unit that drives it, every image loaded, no console error."""
    page = browser.new_page()
    errors = watch(page)
    page.goto(index)
    assert "Microscope of efficientnet_lite0" in page.title()
    page.click("text=blocks.3")
    assert page.url.endswith("layers/blocks.3.html")
    assert images_loaded(page, errors) == 3  # its DeepDream and two units
    page.select_option("#sort", "trust")
    order = page.eval_on_selector_all("#units figure", "fs => fs.map(f => Number(f.dataset.trust || -1e9))")
    assert order == sorted(order, reverse=True)
    page.click("a[href$='units/blocks.3/0.html']")
    assert page.url.endswith("units/blocks.3/0.html")
    assert images_loaded(page, errors) >= 9
    assert page.locator("h2", has_text="Units that drive it").count() == 1
    driver = page.locator("h2:has-text('Units that drive it') + .thumbs a[href]").first
    driver.click()
    assert "/units/blocks.1/" in page.url
    assert images_loaded(page, errors) >= 9
    assert page.locator("h2:has-text('Units it drives') + .thumbs a[href*='blocks.3']").count() >= 1
    assert not errors, errors
    page.close()


def _search_class(browser, index: str, folder: Path) -> None:
    cat = Catalog(folder / "catalog.sqlite", readonly=True)
    unit = cat.units("blocks.3")[0]
    cat.close()
    name = unit["figures"]["drives"]["raises"][0][1]
    page = browser.new_page()
    errors = watch(page)
    page.goto(index)
    page.fill("nav input[name=q]", name)
    page.press("nav input[name=q]", "Enter")
    page.wait_for_selector("#results h2")
    assert f'drive "{name.lower()}"' in page.inner_text("#results")
    page.click("#results a[href$='units/blocks.3/0.html']")
    assert page.url.endswith("units/blocks.3/0.html")
    page.fill("nav input[name=q]", "blocks.1:1")
    page.press("nav input[name=q]", "Enter")
    page.click("#results a[href$='units/blocks.1/1.html']")
    assert images_loaded(page, errors) >= 9 and not errors, errors
    page.close()


def test_the_static_site_walks_from_file_urls(built):
    index = (built / "index.html").as_uri()
    with chromium() as browser:
        _walk(browser, index)
        _search_class(browser, index, built)
        page = browser.new_page()
        page.goto((built / "layers" / "blocks.3.html").as_uri())
        assert page.locator("#unbuilt").is_hidden()  # a static copy cannot render: no dead links
        page.goto((built / "search.html").as_uri() + "?q=blocks.3:5")
        assert "microscope serve" in page.inner_text("#results")


def test_the_server_renders_a_skipped_unit_once_however_many_ask(built, tmp_path):
    folder = tmp_path / "served"
    shutil.copytree(built, folder)
    server = Server(folder)
    try:
        with chromium() as browser:
            _walk(browser, server.url + "/")
            _search_class(browser, server.url + "/", folder)
            answers: list[int] = []
            asks = [
                threading.Thread(target=lambda: answers.append(server.get("/units/blocks.3/5.html")[0]))
                for _ in range(5)
            ]
            for t in asks:
                t.start()
            page = browser.new_page()
            errors = watch(page)
            page.goto(server.url + "/layers/blocks.3.html")
            page.click("#unbuilt a:text-is('5')")
            page.wait_for_selector("#status")  # the progress page
            for t in asks:
                t.join()
            assert answers == [202] * 5, answers
            page.wait_for_selector("text=Feature visualizations", timeout=180_000)
            assert images_loaded(page, errors) >= 9 and not errors, errors
            page.close()
        assert server.json("/api/status")["renders"] == 1
        assert server.get("/units/blocks.3/5.html")[0] == 200
    finally:
        server.stop()
    cat = Catalog(folder / "catalog.sqlite", readonly=True)
    assert ("blocks.3", 5) in cat.done()
    cat.close()
    assert featviz.load_image(folder / "units" / "blocks.3" / "5" / "channel.png").std() > 0.005
    again = Server(folder)  # a restart does not render it again
    try:
        assert again.get("/units/blocks.3/5.html")[0] == 200
        assert again.json("/api/units/blocks.3/5")["status"] == "done"
        assert again.json("/api/status")["renders"] == 0
    finally:
        again.stop()


def _listening(port: int) -> list[str]:
    """The local addresses of sockets listening on ``port`` (from /proc/net/tcp)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if int(hexport, 16) == port and state == "0A":
                found.append(address)
    return found


def test_the_server_serves_nothing_outside_its_folder_and_bounds_its_queue(built, tmp_path):
    folder = tmp_path / "served"
    shutil.copytree(built, folder)
    secret = tmp_path / "secret.html"
    secret.write_text("secret")
    (folder / "leak.html").symlink_to(secret)
    (folder / "layers" / "leak").symlink_to(tmp_path)
    server = Server(folder, "--queue", "1")
    try:
        assert _listening(server.port) == ["0100007F"]  # 127.0.0.1 only
        assert server.get("/index.html")[0] == 200
        for path in (
            "/../secret.html",
            "/layers/../../secret.html",
            "/%2e%2e/secret.html",
            "/%2E%2E/%2e%2e/etc/passwd",
            "/..%2fsecret.html",
            "//etc/passwd",
            "/" + str(secret),
            "/catalog.sqlite",
            "/examples.pt",
            "/units/blocks.9/1.html",
            "/units/blocks.3/80.html",
            "/units/blocks.3/-1.html",
            "/api/units/blocks.3/80",
        ):
            status, body = server.get(path)
            assert status == 404 and b"secret" not in body, (path, status)
        for path in ("/leak.html", "/layers/leak/secret.html"):
            status, body = server.get(path)
            assert status == 403 and b"secret" not in body, (path, status)
        # one unit rendering, one queued (the bound), the next waits in line for a place
        assert server.get("/units/blocks.3/6.html")[0] == 202
        deadline = time.monotonic() + 30
        while server.json("/api/units/blocks.3/6")["status"] != "rendering" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.get("/units/blocks.3/7.html")[0] == 202
        assert server.get("/units/blocks.3/8.html")[0] == 202
        assert server.json("/api/units/blocks.3/8") == {"status": "waiting", "ahead": 2, "limit": 1}
        assert server.get("/units/blocks.3/7.html")[0] == 202  # asking again for a queued unit is fine
        stats = server.json("/api/status")
        assert stats["queued"] == 1 and stats["waiting"] == 1
    finally:
        server.stop()


def test_a_crawl_of_a_served_partial_build_fails_no_request(built, tmp_path):
    """30 pages of a served Microscope, 20 of them units not built, all open at once with a
    render queue of 4: the pages beyond the queue wait in line and say so, none gets an error,
    and every unbuilt unit is shown in the end."""
    folder = tmp_path / "served"
    shutil.copytree(built, folder)
    cat = Catalog(folder / "catalog.sqlite", readonly=True)
    done = {(u["layer"], u["channel"]) for u in cat.units()}
    cat.close()
    unbuilt = [
        u for layer in ("blocks.1", "blocks.3") for u in [(layer, c) for c in range(24) if (layer, c) not in done][:10]
    ]
    assert len(set(unbuilt)) == 20
    others = [
        "index.html",
        "layers/blocks.1.html",
        "layers/blocks.3.html",
        "search.html?q=hen",
        "search.html?q=blocks.3",
    ]
    others += [f"units/{layer}/{c}.html" for layer, c in sorted(done)][: 30 - 20 - len(others)]
    server = Server(folder, "--queue", "4")
    try:
        with chromium() as browser:
            context = browser.new_context()
            tabs, errors = [], []
            for path in [*others, *(f"units/{layer}/{c}.html" for layer, c in unbuilt)]:
                page = context.new_page()
                errors.append(watch(page))
                page.goto(f"{server.url}/{path}")
                tabs.append(page)
            assert len(tabs) == 30
            waiting = [p.inner_text("#status") for p in tabs[-20:] if p.locator("#status").count()]
            assert any("waiting for a place" in text for text in waiting), waiting
            assert server.json("/api/status")["waiting"] > 0
            for page, (layer, c) in zip(tabs[-20:], unbuilt, strict=True):
                page.wait_for_selector("#status", state="detached", timeout=600_000)  # reloaded, built
                assert page.title().endswith(f"{layer}:{c}")
                assert images_loaded(page, errors[tabs.index(page)]) >= 5
            for page, found in zip(tabs, errors, strict=True):
                assert not found, (page.url, found)
        assert {(layer, c) for layer, c in unbuilt} <= {
            (u["layer"], u["channel"]) for u in Catalog(folder / "catalog.sqlite", readonly=True).units()
        }
    finally:
        server.stop()


def test_a_notebook_shows_a_unit_inline(built):
    view = featviz.microscope.view(built, "blocks.3:1")
    text = view._repr_html_()
    assert text.count("data:image/png;base64,") >= 9 and "Units that drive it" in text
    assert "src='units" not in text  # every image inlined
    with pytest.raises(featviz.FeatvizError, match="not built"):
        featviz.microscope.view(built, "blocks.3:7")
    with pytest.raises(featviz.FeatvizError, match="blocks.3"):
        featviz.microscope.view(built, "blocks.33:1")

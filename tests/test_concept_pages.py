"""Concept pages of a Microscope in a real browser (headless Chromium, from ``file://``): the
layer's cards, a concept's page, a class's page with its concepts' shares, and the link from
the site's index, which survives rewriting the site."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch
from browser import chromium, images_loaded, watch
from click.testing import CliRunner

import featviz
from featviz.analysis.concepts import load_concepts
from featviz.cli import main
from featviz.data.sources import items
from featviz.errors import FeatvizError
from featviz.microscope import write_site
from featviz.microscope.concepts import render_concepts, shares, write_concept_pages

pytestmark = pytest.mark.slow
LAYER = "blocks.6"


@pytest.fixture(scope="module")
def pages(built, lite0, tmp_path_factory):
    """A copy of the small Microscope with the pages of 4 concepts of blocks.6 written into it."""
    out = tmp_path_factory.mktemp("concepts") / "microscope"
    shutil.copytree(built, out)
    data = items("shipped")[::12]
    found = featviz.concepts(lite0, LAYER, 4, data, size=128, batch=32, passes=1, top=4, progress=False)
    images = render_concepts(found, lite0, size=64, steps=8)
    write_concept_pages(out, found, images)
    return out, found, images


def _links_resolve(page) -> None:
    """Every link of the page names a file that exists."""
    for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
        assert href.startswith("file://"), href
        assert Path(unquote(urlparse(href).path)).is_file(), href


def test_the_concept_pages_open_from_file_urls(pages):
    out, found, images = pages
    assert sorted(images) == list(range(found.k)) and images[0].shape == (3, 64, 64)
    folder = out / "concepts" / LAYER
    cls = next(
        c for c in range(len(found.class_names)) if found.class_images[c] > 0 and found.importance[:, c].max() > 0
    )
    with chromium() as browser:
        page = browser.new_page()
        errors = watch(page)
        page.goto((out / "index.html").as_uri())
        page.click(f"#concepts a[href='concepts/{LAYER}/index.html']")
        assert images_loaded(page, errors) == 2 * found.k  # a visualization and a best example per card
        assert page.locator("figure.concept").count() == found.k
        _links_resolve(page)
        page.click("figure.concept figcaption a[href='1.html']")
        assert page.url.endswith(f"concepts/{LAYER}/1.html")
        assert images_loaded(page, errors) == 1 + found.top_index.shape[1]
        text = page.inner_text("body")
        assert f"featviz render efficientnet_lite0 {LAYER}/concepts:1 --concepts concepts/{LAYER}/dictionary" in text
        kept = load_concepts(out / "concepts" / LAYER / "dictionary.safetensors")  # what that command reads
        assert torch.equal(kept.directions, found.directions)
        assert f"Taking it out of its {found.faithfulness[1]['images']} top examples" in text
        assert found.raises(1, 1)[0][1] in text
        _links_resolve(page)
        page.screenshot(path=str(out / "concept.png"), full_page=True)
        page.goto((folder / "classes" / f"{cls}.html").as_uri())
        assert images_loaded(page, errors) == found.k
        listed = page.eval_on_selector_all("#shares tr[data-share]", "rs => rs.map(r => Number(r.dataset.share))")
        assert listed == sorted(listed, reverse=True) and len(listed) == found.k
        assert sum(s for s in listed if s > 0) == pytest.approx(1.0, abs=1e-4)
        _links_resolve(page)
        best = shares(found, cls)[0][0]
        page.click(f"#shares a[href='../{best}.html']")
        assert page.url.endswith(f"concepts/{LAYER}/{best}.html")
        page.click("text=all concepts")
        page.click("text=Classes and the concepts")
        page.click(f"a[href='classes/{cls}.html']")
        assert page.url.endswith(f"classes/{cls}.html")
        # the site's search finds the concepts: by name, by the class each drives, by their layer
        search = (out / "search.html").as_uri()
        page.goto(f"{search}?q={LAYER}/concepts:2")
        page.click(f"#results a[href='concepts/{LAYER}/2.html']")
        assert page.url.endswith(f"concepts/{LAYER}/2.html")
        drives = found.raises(1, 1)[0][1]
        page.goto(f"{search}?q={drives}")
        assert f'Concepts that drive "{drives.lower()}"' in page.inner_text("#results")
        assert page.locator(f"#results a[href='concepts/{LAYER}/1.html']").count() == 1
        page.goto(f"{search}?q=concepts")
        page.click(f"#results a[href='concepts/{LAYER}/index.html']")
        assert page.locator("figure.concept").count() == found.k
        assert not errors, errors
        page.close()


def test_rewriting_the_site_keeps_the_link_and_other_folders_are_refused(pages, tmp_path):
    out, found, _ = pages
    write_site(out)
    assert f"concepts/{LAYER}/index.html" in (out / "index.html").read_text()
    with pytest.raises(FeatvizError, match="holds no catalog.sqlite"):
        write_concept_pages(tmp_path, found)


def test_the_command_refuses_a_folder_that_is_no_microscope_before_learning(tmp_path):
    result = CliRunner().invoke(main, ["concepts", "efficientnet_lite0", LAYER, "--microscope", str(tmp_path)])
    assert result.exit_code != 0
    assert "holds no catalog.sqlite" in result.output
    assert not (tmp_path / "concepts").exists()

"""A vision transformer end to end: its token layers read as their patch grid by every
analysis (exact, on a hand-built token model), and a ViT's Microscope and explanation opened
in Chromium."""

from __future__ import annotations

import json

import pytest
import torch
from browser import chromium, images_loaded, watch
from torch import nn

import featviz
from featviz.analysis.attribution import default_layers
from featviz.analysis.examples import load_examples
from featviz.data.sources import read
from featviz.explain import explain, write_report
from featviz.microscope import Catalog, build
from featviz.models.grids import from_grid, grid_shape, to_grid
from featviz.models.hooks import capture, intervene

TILE = 16  # the ViT's patch size


class Tokens(nn.Module):
    """Patches of 4 px embedded, two leading tokens (class, distillation), one token mixer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.lead = nn.Parameter(torch.randn(1, 2, 8))
        self.mix = nn.Linear(8, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = self.mix(torch.cat([self.lead.expand(len(x), -1, -1), t], 1))
        return self.head(t[:, 0] + t[:, 2:].mean(1))


def test_a_token_layer_is_its_patch_grid_and_goes_back_unchanged():
    torch.manual_seed(0)
    adapter = featviz.load_model(Tokens(), input_size=32)
    assert adapter.layout("mix").kind == "tokens" and grid_shape(adapter, "mix") == (8, 8, 8)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad(), capture(adapter, ["mix"]) as cap:
        raw = cap(x)["mix"]
    grid = to_grid(adapter, "mix", raw)  # leading tokens inferred: 66 = 2 + 8 x 8
    for b, c, y, px in [(0, 0, 0, 0), (1, 5, 3, 7), (2, 7, 7, 2)]:
        assert grid[b, c, y, px] == raw[b, 2 + y * 8 + px, c]
    assert torch.equal(from_grid(adapter, "mix", raw, grid), raw)

    # an ablation written on the grid leaves the leading tokens as they were
    def zero_patches(act: torch.Tensor) -> torch.Tensor:
        return from_grid(adapter, "mix", act, 0 * to_grid(adapter, "mix", act))

    with torch.no_grad(), intervene(adapter, "mix", zero_patches):
        changed = adapter(x)
    lead = adapter.module.mix(adapter.module.lead.expand(3, -1, -1))[:, 0]
    assert torch.allclose(changed, adapter.module.head(lead), atol=1e-5)  # the patches add 0


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return featviz.load_model("timm:vit_tiny_patch16_224", img_size=96)


@pytest.fixture(scope="module")
def vit_microscope(vit, tmp_path_factory):
    out = tmp_path_factory.mktemp("vit") / "microscope"
    report = build(
        vit, out, layers=["blocks.4", "blocks.5"], units_per_layer=2, steps=2, size=64, k=3, batch=2,
        examples_limit=8, progress=False,
    )  # fmt: skip
    assert report.rendered == 4
    return out


@pytest.mark.slow
def test_a_vit_microscope_shows_token_units_with_patch_tiles_and_their_circuit(vit, vit_microscope):
    cat = Catalog(vit_microscope / "catalog.sqlite", readonly=True)
    units = {(u["layer"], u["channel"]): u for u in cat.units()}
    layers = {entry["name"]: entry for entry in cat.layers()}
    cat.close()
    assert set(units) == {("blocks.4", 0), ("blocks.4", 1), ("blocks.5", 0), ("blocks.5", 1)}
    assert layers["blocks.5"]["shape"] == [192, 6, 6]  # channels on the 6 x 6 patch grid, not 37 tokens
    for c in (0, 1):  # the units that drive a blocks.5 unit are channels of blocks.4, with weights
        inputs = units[("blocks.5", c)]["figures"]["inputs"]
        assert len(inputs) == 8 and all(0 <= j < 192 for j, _ in inputs) and any(w != 0 for _, w in inputs)
    found = load_examples(vit_microscope / "examples.safetensors")[0]
    assert found.size == 96  # read at the size the ViT takes
    ex = found.layers["blocks.5"]
    for c in (0, 1):
        for rank in range(3):
            y, x = (int(v) for v in ex.top.pos[c, rank])
            top, left, h, w = ex.patch_box(y, x, found.size)
            assert (top, left, h, w) == (y * TILE, x * TILE, TILE, TILE)  # the token's own patch tile
            image = read(found.items[int(ex.top.index[c, rank])], found.size)
            patch = found.patch("blocks.5", c, rank)
            assert torch.equal(patch, image[:, top : top + h, left : left + w]) and patch.std() > 0.02

    with chromium() as browser:
        page = browser.new_page()
        errors = watch(page)
        page.goto((vit_microscope / "index.html").as_uri())
        page.click("text=blocks.5")
        assert images_loaded(page, errors) == 3  # its DeepDream and two units
        page.click("a[href$='units/blocks.5/1.html']")
        assert images_loaded(page, errors) >= 9
        driver = page.locator("h2:has-text('Units that drive it') + .thumbs a[href]").first
        driver.click()
        assert "/units/blocks.4/" in page.url
        assert images_loaded(page, errors) >= 9 and not errors, errors
        page.close()


@pytest.mark.slow
def test_a_vit_explanation_maps_its_tokens_and_opens_in_chromium(vit, vit_microscope, tmp_path):
    assert default_layers(vit) == ("blocks.10", "blocks.9")  # blocks.11's patch tokens reach no logit
    e = explain(
        vit, "skimage:chelsea", layer="blocks.5", earlier="blocks.4", top=2, size=64, steps=2,
        microscope=vit_microscope,
    )  # fmt: skip
    assert e.positive[0].activation.shape == (6, 6) and e.gradcam.shape == (96, 96)
    assert e.gradcam.max() > 0 and e.integrated.max() > 0
    assert all(torch.isfinite(torch.tensor(e.ablation[k])) for k in ("top_drop", "random_mean"))
    assert e.ablation["top_drop"] != 0  # taking channels out of the patch tokens changes the class token
    assert e.circuit and all(w != 0 for _, _, w in e.circuit)
    html, png, numbers = write_report(e, tmp_path / "vit.html")
    edges = json.loads(numbers.read_text())["circuit"]
    assert all(edge["from"].startswith("blocks.4:") and edge["to"].startswith("blocks.5:") for edge in edges)
    assert {ch.source for ch in e.positive + e.negative + e.feeders} >= {"rendered"}
    with chromium() as browser:
        page = browser.new_page()
        errors = watch(page)
        page.goto(html.as_uri())
        assert images_loaded(page, errors) >= 1 + 2 * len(e.positive)
        assert page.locator("#circuit line, #circuit path").count() >= len(edges) and not errors, errors

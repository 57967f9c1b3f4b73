"""Screenshots of a built Microscope's three pages for the README, in headless Chromium:

    python docs/screenshots.py lite0_microscope blocks.4 7

writes docs/images/microscope_model.png, microscope_layer.png and microscope_unit.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import chromium, images_loaded  # noqa: E402


def main() -> None:
    folder, layer, channel = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    images = Path(__file__).resolve().parent / "images"
    pages = {
        "model": folder / "index.html",
        "layer": folder / "layers" / f"{layer}.html",
        "unit": folder / "units" / layer / f"{channel}.html",
    }
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        for name, path in pages.items():
            page.goto(path.as_uri())
            images_loaded(page)
            page.screenshot(path=str(images / f"microscope_{name}.png"), full_page=name == "unit")
            print(images / f"microscope_{name}.png")


if __name__ == "__main__":
    main()

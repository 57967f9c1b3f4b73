"""featviz.replay of every kind of record: a dream, a zoom, an atlas, a diversity set and a
unit across checkpoints give the same pixels and the same record again."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

import featviz

pytestmark = pytest.mark.slow


def _same_run(record: dict[str, Any]) -> Any:
    """A record without what differs between two runs of the same thing (time taken, when,
    library versions), at every depth (a dream keeps each octave's render record)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("seconds", "created", "versions")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(record)


def _as_read(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def zoomed(lite0) -> featviz.ZoomResult:
    return featviz.zoom(lite0, "blocks.2:5", frames=3, first_steps=3, steps_per_frame=2, size=48, progress=False)


def test_a_dream_of_a_named_photo_replays_to_the_same_pixels(lite0):
    first = featviz.dream(lite0, "skimage:astronaut", "blocks.2", octaves=2, steps=2, size=64, progress=False)
    record = _as_read(first.record)
    assert record["image"] == "skimage:astronaut" and record["needs"] == []
    assert record["octave_count"] == 2 and record["longer_side"] == 64 and record["octaves"] == [[46, 46], [64, 64]]
    again = featviz.replay(record, progress=False)  # the model loaded again by the name the record keeps
    assert isinstance(again, featviz.DreamResult) and torch.equal(again.image, first.image)
    assert _same_run(again.record) == _same_run(record)
    with pytest.raises(featviz.FeatvizError, match="not the one the dream started from"):
        featviz.replay(dict(record, image_digest="sha256:0000"))


def test_a_dream_from_a_tensor_asks_for_the_photo(lite0):
    photo = torch.rand(3, 48, 56, generator=torch.Generator().manual_seed(0))
    first = featviz.dream(lite0, photo, featviz.channel("blocks.2", 3), octaves=1, steps=2, progress=False)
    assert first.record["needs"] == ["image"] and first.record["unit_form"] == "repr"
    with pytest.raises(featviz.FeatvizError, match=r"tensor of shape \(3, 48, 56\).*pass it again \(image=\.\.\.\)"):
        featviz.replay(first.record)
    again = featviz.replay(first.record, image=photo, model=lite0, progress=False)
    assert torch.equal(again.image, first.image) and _same_run(again.record) == _same_run(first.record)


def test_a_zoom_replays_frame_for_frame(zoomed, lite0):
    again = featviz.replay(_as_read(zoomed.record), model=lite0, progress=False)
    assert isinstance(again, featviz.ZoomResult) and len(again.frames) == 3
    assert torch.equal(torch.stack(again.frames), torch.stack(zoomed.frames))
    assert _same_run(again.record) == _same_run(zoomed.record)


def test_an_atlas_replays_tile_for_tile(lite0, tmp_path):
    first = featviz.atlas(
        lite0, "blocks.1", "0:3", batch=2, steps=3, size=48, columns=2, out_dir=tmp_path, progress=False
    )
    record = featviz.load_record(tmp_path / "atlas.json")
    assert record["columns"] == 2 and record["channels"] == [0, 1, 2]
    again = featviz.replay(record, model=lite0, progress=False)
    assert isinstance(again, featviz.AtlasResult) and again.rendered == [0, 1, 2] and not again.loaded
    assert torch.equal(again.grid, first.grid)
    assert all(torch.equal(again.tiles[c], first.tiles[c]) for c in first.channels)
    assert _same_run(again.record) == _same_run(first.record)


def test_a_diversity_set_replays(lite0):
    first = featviz.diverse(lite0, "blocks.2:5", 2, steps=3, size=48, progress=False)
    again = featviz.replay(_as_read(first.record), model=lite0, progress=False)
    assert isinstance(again, featviz.RenderResult) and torch.equal(again.images, first.images)
    assert _same_run(again.record) == _same_run(first.record)


def test_a_unit_across_checkpoints_replays_from_the_same_files(tmp_path):
    import torchvision

    torch.manual_seed(0)
    checkpoint = tmp_path / "step0.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), checkpoint)
    first = featviz.across_checkpoints(
        "torchvision:squeezenet1_1", "features.3:5", [checkpoint], steps=2, size=48, progress=False
    )
    again = featviz.replay(_as_read(first.record), progress=False)
    assert isinstance(again, featviz.CheckpointsResult) and torch.equal(again.images, first.images)
    assert _same_run(again.record) == _same_run(first.record)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), checkpoint)  # other weights under the same name
    with pytest.raises(featviz.FeatvizError, match="step0.pth changed since the record was made"):
        featviz.replay(first.record)


def test_records_that_cannot_replay_are_refused_in_one_line(zoomed):
    record = _as_read(zoomed.record)
    refusals = [
        ({"kind": "explanation"}, "cannot replay a record of kind 'explanation': expected one of render, dream, zoom"),
        ({k: v for k, v in record.items() if k != "frames"}, "the record of kind 'zoom' has no frames: expected"),
        (dict(record, frames="3"), r"zoom.frames is '3' \(str\): expected an integer"),
        (dict(record, model="MyNet"), r"'MyNet' is not one featviz loads by name .*\(model=\.\.\.\)"),
        (dict(record, unit="<function f>", unit_form="function"), r"pass it again \(objective=\.\.\.\)"),
        ([record], "expected a run record"),
    ]
    for bad, message in refusals:
        with pytest.raises(featviz.FeatvizError, match=message) as err:
            featviz.replay(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(featviz.FeatvizError, match=r"takes model, objective, device, progress; got \['init'\]"):
        featviz.replay(record, init=torch.rand(3, 48, 48))

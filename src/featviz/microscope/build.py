"""Build a Microscope of a model: for every chosen unit, its visualizations, its dataset
examples and the figures a page shows, written to a folder with a SQLite catalog.

Per unit: the channel's visualization, the negative one (the channel minimized), the neuron
at the centre and a diversity set of 4, all through the one render loop, batched as the atlas
is (one unit per image; the diversity set with three quarters of the steps: the same pictures
a little paler, ``python bench/microscope.py diversity``); its top and bottom dataset examples
with their patches (:mod:`featviz.analysis.examples`); **what it drives** (the classes whose
logits it raises and lowers most: the derivative of each logit along the channel, forward-mode,
averaged over images);
**its inputs** (the units of the previous chosen layer that drive it most: gradient x
activation over its top examples); and two **trust figures**: the visualization's activation
as a multiple of its best example's, and the rank correlation of the activations that the
visualization and its top examples cause in the layer below (Geirhos et al. 2023, "Don't
trust your eyes": a visualization that excites the unit through other means than the
examples do scores low). Per layer: a DeepDream of a shipped photo.

Work is cut into fixed slices of units (``batch`` of one layer), each rendered with the same
seed whatever ran before, so an interrupted build resumed gives the pixels of an
uninterrupted one. A slice's files are written atomically and then its units are marked
done in one transaction. Under ``torchrun`` each rank takes every ``world``-th slice and a
shard of the data for the examples, which are merged (each rank's top-k, then a global
top-k); ranks write their own catalog part, merged by rank 0 at the end.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featviz.analysis.attribution import channel_inputs
from featviz.analysis.trust import top_images, trust
from featviz.data.sources import SHIPPED, items
from featviz.errors import FeatvizError
from featviz.io.examples import channel_summary
from featviz.io.files import atomic_write
from featviz.io.images import png_bytes
from featviz.microscope.catalog import CATALOG, Catalog, all_done, part_path
from featviz.models import LOGITS, ModelAdapter, load_model, place
from featviz.models.grids import from_grid, grid_shape, to_grid
from featviz.models.layers import stages
from featviz.models.layout import NCHW, NHWC, TOKENS
from featviz.optvis.callbacks import Callback, StepState
from featviz.optvis.recipes import MICROSCOPE, Recipe, get_recipe
from featviz.optvis.record import weights_fields
from featviz.optvis.spec import check_recipe

#: Per model, the layers whose output cannot be repeated per unit inside the forward (:func:`_drives`).
_NO_REPEAT: weakref.WeakKeyDictionary[nn.Module, set[str]] = weakref.WeakKeyDictionary()

DREAM_PHOTO = "skimage:coffee"
DRIVE_IMAGES = 8  # data images the "drives" derivative is averaged over
DIVERSITY_SHARE = 0.75  # of the recipe's steps, for a unit's diversity set
TOP_CLASSES = 5
TOP_INPUTS = 8


@dataclass
class BuildReport:
    """What a build (or one rank of it) did."""

    out: Path
    layers: list[str]
    units: int
    rendered: int
    skipped: int
    seconds: float
    examples_seconds: float = 0.0
    images_per_second: float = 0.0
    rank: int = 0
    world: int = 1
    timings: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"BuildReport({self.out}, {len(self.layers)} layers, {self.units} units: {self.rendered} rendered, "
            f"{self.skipped} already done, {self.seconds:.1f} s)"
        )


def default_layers(adapter: ModelAdapter) -> list[str]:
    """An early, a middle and a late stage: of the model's top-level numbered stages
    (``blocks.0`` ... ``blocks.6``) the second, the middle one and the last."""
    found = stages(adapter)
    if len(found) < 3:
        raise FeatvizError(f"cannot choose layers of {adapter.name} by itself: name them (--layers L1,L2)")
    return list(dict.fromkeys([found[1], found[len(found) // 2], found[-1]]))


def _check_layers(adapter: ModelAdapter, names: list[str]) -> None:
    """Refuse, in one line, layers a Microscope cannot show: the logits and layers without
    positions (a pooled vector, a layout featviz cannot read); channels first, channels last
    and token layers are all read as a grid of channels (:mod:`featviz.models.grids`)."""
    for name in names:
        if name == LOGITS:
            raise FeatvizError(
                "the logits are not a layer a Microscope shows: its unit pages say which classes each unit drives"
            )
        layout = adapter.layout(name)
        if layout.kind not in (NCHW, NHWC, TOKENS):
            raise FeatvizError(
                f"layer {name!r} has no channels at positions (its output is {list(layout.shape)}, {layout.kind}): "
                "a Microscope needs a conv map ([C, H, W] or [H, W, C]) or a token sequence ([T, C])"
            )


def _distributed() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def build(
    model: str | nn.Module | ModelAdapter,
    out: str | Path,
    *,
    layers: Sequence[str] | None = None,
    units_per_layer: int | None = 32,
    data: str | Path = "shipped",
    size: int = 128,
    steps: int | None = None,
    k: int = 9,
    batch: int = 8,
    seed: int = 0,
    examples_limit: int | None = None,
    recipe: str | Recipe = MICROSCOPE,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> BuildReport:
    """Build (or resume) the Microscope of ``model`` in the folder ``out``.

    ``layers`` (default: :func:`default_layers`); ``units_per_layer`` channels of each, from
    channel 0 (``None``: all); ``data`` for the examples (see :func:`featviz.analysis.examples.examples`,
    ``examples_limit`` keeps its first images); ``size`` px images, ``steps`` per render
    (the recipe's when left out; a diversity set takes :func:`diversity_steps` of them), ``k``
    examples per list, ``batch`` units per render.
    """
    start = time.perf_counter()
    adapter = load_model(model)
    place(adapter, model, device)
    # Everything that can be wrong is refused here, before the catalog or any file exists.
    _check_numbers(units_per_layer=units_per_layer, k=k, batch=batch, examples_limit=examples_limit)
    names = [adapter.layer_name(n) for n in layers] if layers else default_layers(adapter)
    adapter.check_size(size, size)
    _check_layers(adapter, names)
    shapes = {n: grid_shape(adapter, n, size) for n in names}
    rec = get_recipe(recipe)
    rec = rec.replace(size=size, **({"steps": steps} if steps is not None else {}))
    check_recipe(rec)
    if str(data) != SHIPPED:  # a folder with no images or a missing list is refused now, not after the dreams
        items(data)
    rank, world = _distributed()
    out = Path(out)
    settings = {"model": adapter.name, "size": size, "recipe": rec.to_dict(), "seed": seed, "k": k, "data": str(data)}
    settings.update(weights_fields(adapter))
    if rank == 0:  # one process creates the catalog; the others only read it, after the barrier
        main = Catalog(out / CATALOG)
        main.check_or_set_meta(settings)
        main.close()
    _barrier(world)
    if rank != 0:
        main = Catalog(out / CATALOG, readonly=True)
        try:
            main.check_model(adapter.name)
        finally:
            main.close()
    done = all_done(out)
    _barrier(world)  # every rank has read what is done before any writes its part
    catalog = Catalog(out / CATALOG) if world == 1 else Catalog(part_path(out, rank))
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    found = _examples(adapter, out, names, data, k, size, examples_limit, rank, world, progress)
    timings["examples"] = time.perf_counter() - t0

    plan = _plan(shapes, units_per_layer, batch)
    for position, name in enumerate(names):
        shape = list(grid_shape(adapter, name, adapter.input_size))
        catalog.put_layer(name, position, shape, plan[name])
        if position % world == rank and not _has_dream(out, name):
            t1 = time.perf_counter()
            _dream(adapter, catalog, out, name, position, shape, plan[name], size, rec.steps, seed, progress)
            timings["dreams"] = timings.get("dreams", 0.0) + time.perf_counter() - t1

    slices = [(name, plan[name][i : i + batch]) for name in names for i in range(0, len(plan[name]), batch)]
    mine = [(name, units) for number, (name, units) in enumerate(slices) if number % world == rank]
    rendered = skipped = 0
    bar = _units_bar(sum(len(units) for _, units in mine), progress)
    try:
        for name, units in mine:
            if all((name, c) in done for c in units):
                skipped += len(units)
                bar.update(len(units))
                continue
            t1 = time.perf_counter()
            prev = names[names.index(name) - 1] if names.index(name) > 0 else None
            step = _show_step(bar, f"{name}:{units[0]}-{units[-1]}" if len(units) > 1 else f"{name}:{units[0]}")
            args = (adapter, out, name, prev, units, rec, seed, found, data, size, progress)
            rows = _slice(*args, on_step=step, times=timings)
            t2 = time.perf_counter()
            catalog.put_units(rows, rank)
            timings["catalog"] = timings.get("catalog", 0.0) + time.perf_counter() - t2
            rendered += len(units)
            bar.update(len(units))
            timings["units"] = timings.get("units", 0.0) + time.perf_counter() - t1
            timings[f"layer:{name}"] = timings.get(f"layer:{name}", 0.0) + time.perf_counter() - t1
    finally:
        bar.close()  # before any message, so that it prints on its own line
    catalog.close()
    _barrier(world)
    if world > 1 and rank == 0:
        main = Catalog(out / CATALOG)
        for r in range(world):
            part = Catalog(part_path(out, r))
            main.merge(part)
            part.close()
        main.close()
    if rank == 0:
        from featviz.microscope.site import write_site

        t1 = time.perf_counter()
        write_site(out)
        timings["site"] = time.perf_counter() - t1
    _barrier(world)
    total = sum(len(u) for u in plan.values())
    seconds = time.perf_counter() - start
    ips = found.images_per_second if found is not None else 0.0
    return BuildReport(
        out, names, total, rendered, skipped, seconds, timings.get("examples", 0.0), ips, rank, world, timings
    )


def render_units(
    adapter: ModelAdapter,
    out: str | Path,
    layer: str,
    channels: Sequence[int],
    progress: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Render units that a build of ``out`` skipped, with the build's own settings (recipe,
    size, seed, dataset examples), and add them to its catalog; returns their catalog rows.
    ``featviz microscope serve`` calls this when someone opens such a unit's page.

    ``on_step(done, total)`` is called before the first step and after every step of all
    the units' images (channel, negative, neuron, diversity); an exception it raises abandons
    the render between two steps, and nothing of these units is written (their files and
    catalog rows are written only once every image is rendered)."""
    from featviz.analysis.examples import ExamplesResult, load_examples

    out = Path(out)
    catalog = Catalog(out / CATALOG)
    try:
        meta = catalog.meta()
        catalog.check_model(adapter.name)
        names = [entry["name"] for entry in catalog.layers()]
        if layer not in names:
            raise FeatvizError(f"{layer!r} is not a layer of this Microscope: expected one of {', '.join(names)}")
        found: ExamplesResult = load_examples(_examples_file(out))[0]
        rec = Recipe.from_dict(meta["recipe"])
        position = names.index(layer)
        prev = names[position - 1] if position else None
        rows = _slice(
            adapter,
            out,
            layer,
            prev,
            list(channels),
            rec,
            meta["seed"],
            found,
            meta["data"],
            meta["size"],
            progress,
            on_step=on_step,
        )
        catalog.put_units(rows)
    finally:
        catalog.close()
    return rows


def _units_bar(total: int, progress: bool) -> Any:
    """One progress bar over the build's units (done / total), left on screen when done."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not progress, desc="units", unit="unit")


def _show_step(bar: Any, what: str) -> Callable[[int, int], None]:
    """A slice's ``on_step`` for the units bar: the step reached, in the bar's text (a slice of
    8 units takes minutes, and a bar that only moves between slices looks stuck)."""

    def step(done: int, total: int) -> None:
        bar.set_postfix_str(f"{what}, step {done} of {total}", refresh=False)
        bar.update(0)  # redraws, at most every bar.mininterval seconds

    return step


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _check_numbers(**values: int | None) -> None:
    """Counts that must be at least 1 (``None``: not given, the default applies)."""
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise FeatvizError(f"{name} must be an integer of at least 1, got {value!r}")


def _plan(shapes: dict[str, tuple[int, int, int]], per_layer: int | None, batch: int) -> dict[str, list[int]]:
    return {name: list(range(s[0] if per_layer is None else min(per_layer, s[0]))) for name, s in shapes.items()}


def _examples(
    adapter: ModelAdapter,
    out: Path,
    names: list[str],
    data: str | Path,
    k: int,
    size: int,
    limit: int | None,
    rank: int,
    world: int,
    progress: bool,
) -> Any:
    """The dataset examples of every chosen layer: loaded when an earlier run wrote them with
    the same settings, else one pass (a shard per rank, merged) written to ``examples.safetensors``
    (tensors and JSON: reading a folder someone sent runs none of its code)."""
    from featviz.analysis.examples import examples, load_examples, merge, save_examples

    path = _examples_file(out, missing_ok=True)
    key = {"layers": names, "data": str(data), "k": k, "size": size, "limit": limit}
    if path.exists():
        found, extra = load_examples(path)
        if extra.get("key") == key:
            return found
    # Files are decoded in two DataLoader workers; the shipped crops are cut from photos in memory.
    workers = 0 if str(data) == "shipped" else 2
    part = examples(
        adapter, names, data=data, k=k, size=size, limit=limit, shard=(rank, world), workers=workers, progress=progress
    )
    if world > 1:
        import torch.distributed as dist

        parts: list[Any] = [None] * world
        dist.all_gather_object(parts, part)
        part = merge(parts)
    if rank == 0:
        save_examples(part, path, key=key)
    return part


#: The dataset examples of a Microscope folder; a pickle of them (``examples.pt``, as an
#: older build wrote) is refused, never read: a planted one would run its code.
EXAMPLES = "examples.safetensors"
PICKLED = "examples.pt"


def _examples_file(out: Path, missing_ok: bool = False) -> Path:
    """The folder's examples file, refusing a folder that holds a pickle of them."""
    if (out / PICKLED).exists():
        raise FeatvizError(
            f"{out / PICKLED} is a pickle, which can run code when read: featviz does not read it. Delete it "
            f"and build again (the examples are recomputed into {EXAMPLES})"
        )
    path = out / EXAMPLES
    if not missing_ok and not path.is_file():
        raise FeatvizError(f"{path} is missing: build the Microscope again to recompute its dataset examples")
    return path


def _has_dream(out: Path, layer: str) -> bool:
    return (out / "layers" / layer / "dream.png").exists() and (out / "layers" / layer / "dream.json").exists()


def _dream(
    adapter: ModelAdapter,
    catalog: Catalog,
    out: Path,
    name: str,
    position: int,
    shape: list[int],
    units: list[int],
    size: int,
    steps: int,
    seed: int,
    progress: bool,
) -> None:
    """The layer's DeepDream of a shipped photo (``steps`` per octave at most: a build of a few
    steps per render dreams in as few)."""
    from featviz.io.records import write_record
    from featviz.optvis.recipes import DREAM
    from featviz.tools.dream import dream

    result = dream(
        adapter,
        DREAM_PHOTO,
        name,
        size=max(size, 160),
        octaves=3,
        steps=min(DREAM.steps, steps),
        seed=seed,
        progress=progress,
    )
    folder = out / "layers" / name
    atomic_write(folder / "dream.png", png_bytes(result.image))
    write_record(folder / "dream.json", result.record)
    catalog.put_layer(name, position, shape, units, dream=f"layers/{name}/dream.png", record=result.record)


def _slice(
    adapter: ModelAdapter,
    out: Path,
    layer: str,
    prev: str | None,
    units: list[int],
    rec: Recipe,
    seed: int,
    found: Any,
    data: str | Path,
    size: int,
    progress: bool,
    on_step: Callable[[int, int], None] | None = None,
    times: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Render and measure one slice of units; write their files; return their catalog rows.
    ``on_step(done, total)``: see :func:`render_units`; ``times`` gathers the seconds of each
    phase (``render:channel+negative+neuron``, ``render:diversity``, ``drives``, ``inputs``, ``trust``,
    ``write``)."""
    from featviz.tools.diverse import diversity_objective

    times = {} if times is None else times
    clock = [time.perf_counter()]

    def lap(phase: str) -> None:
        now = time.perf_counter()
        times[phase] = times.get(phase, 0.0) + now - clock[0]
        clock[0] = now

    common: dict[str, Any] = {"recipe": rec, "seed": seed, "size": size}
    shorter = {**common, "recipe": rec.replace(steps=diversity_steps(rec.steps))}
    # the channel, negative and neuron images of every unit in one batch: one forward per step
    jobs: list[tuple[str, Any, int | None, dict[str, Any]]] = [
        (
            "channel+negative+neuron",
            [f"{layer}:{c}" for c in units] + [f"-{layer}:{c}" for c in units] + [f"{layer}:{c}@" for c in units],
            None,
            common,
        ),
        *[("diversity", diversity_objective(adapter, f"{layer}:{c}", 4), 4, shorter) for c in units],
    ]
    total = sum(settings["recipe"].steps for *_, settings in jobs)
    if on_step is not None:
        on_step(0, total)
    results, before = [], 0
    for kind, objective, batch, settings in jobs:
        watch = None if on_step is None else _watch(on_step, before, total)
        results.append(_render(adapter, objective, batch, settings, watch))
        before += settings["recipe"].steps
        lap(f"render:{kind}")
    for result in results:
        if result.interrupted:
            raise KeyboardInterrupt
    three, *sets = results
    n = len(units)
    drives = _drives(adapter, layer, units, found, size)
    lap("drives")
    tops = top_images(found, layer, units)  # read once for both
    inputs = _inputs(adapter, layer, prev, units, tops) if prev else [[] for _ in units]
    lap("inputs")
    trusted = trust(adapter, layer, prev, units, three.images[:n], found, tops)
    lap("trust")
    rows = []
    for i, c in enumerate(units):
        folder = out / "units" / layer / str(c)
        images = {"channel": three.images[i], "negative": three.images[n + i], "neuron": three.images[2 * n + i]}
        images.update({f"diversity_{j}": sets[i].images[j] for j in range(4)})
        images.update({f"examples_{w}": found.strip(layer, c, w) for w in ("top", "bottom")})
        files = {}
        for kind, image in images.items():
            atomic_write(folder / f"{kind}.png", png_bytes(image))
            files[kind] = f"units/{layer}/{c}/{kind}.png"
        records = {
            "channel": _one(three.record, i),
            "negative": _one(three.record, n + i),
            "neuron": _one(three.record, 2 * n + i),
            "diversity": _one(sets[i].record, None),
        }
        figures = {
            "score": float(three.final[i]),
            "examples": channel_summary(found, layer, c),
            "drives": drives[i],
            "inputs": inputs[i],
            **trusted[i],
        }
        rows.append({"layer": layer, "channel": c, "files": files, "figures": figures, "records": records})
    lap("write")
    return rows


def diversity_steps(steps: int) -> int:
    """The steps of a unit's diversity set in a build whose renders take ``steps``.

    >>> diversity_steps(32)
    24
    """
    return max(1, round(steps * DIVERSITY_SHARE))


def _watch(on_step: Callable[[int, int], None], before: int, total: int) -> Callback:
    """A step callback that reports the step reached over all of a slice's renders."""

    def watch(state: StepState) -> None:
        on_step(before + state.step + 1, total)

    return watch


def _render(
    adapter: ModelAdapter,
    objective: Any,
    batch: int | None,
    common: dict[str, Any],
    watch: Callback | None,
) -> Any:
    """:func:`~featviz.optvis.render.render` (``diverse`` too: its objective with ``batch=4``),
    with ``watch`` called after each step. The watcher changes no pixel, so it is added to the
    resolved plan, not to the record, which would then name a callback that replay needs."""
    from featviz.optvis.render import run
    from featviz.optvis.spec import resolve

    start = time.perf_counter()
    plan = resolve(adapter, objective, batch=batch, **common)
    if watch is not None:
        plan.callbacks.append(watch)
    return run(plan, progress=False, start=start)


def _one(record: dict[str, Any], index: int | None) -> dict[str, Any]:
    """A render's record for one of its images (the curve kept short)."""
    out = {k: v for k, v in record.items() if k not in ("curve",)}
    if index is not None:
        out["index"] = index
    return out


def _drives(adapter: ModelAdapter, layer: str, units: list[int], found: Any, size: int) -> list[dict[str, Any]]:
    """Per unit, the classes whose logits rise and fall most when the channel rises: the
    derivative of every logit along the channel (all positions at once), forward-mode,
    averaged over the first images of the data. The model runs up to ``layer`` once for the
    images; there the activation is repeated once per unit, each copy with its unit's tangent,
    so only the rest of the model runs per unit. A model that cannot change its batch inside the
    forward (one that kept the input's batch size, as a ViT's class token expanded to it) raises
    or answers the wrong batch there: it runs whole per unit instead, and that layer is not tried
    inside again. An error of the whole-model path is raised: only the repetition is excused."""
    if adapter.labels is None:
        return [{} for _ in units]
    images = found.images(range(min(DRIVE_IMAGES, len(found.items)))).to(adapter.device)
    deriv = None
    no_repeat = _NO_REPEAT.setdefault(adapter.module, set())
    if layer not in no_repeat:
        try:
            deriv = _derivative(adapter, layer, units, images, inside=True)
        except RuntimeError:
            deriv = None
        if deriv is None or deriv.shape[0] != len(units) * images.shape[0]:
            no_repeat.add(layer)
            deriv = None
    if deriv is None:
        deriv = _derivative(adapter, layer, units, images.repeat(len(units), 1, 1, 1), inside=False)
    if deriv is None:
        return [{} for _ in units]
    mean = deriv.detach().view(len(units), images.shape[0], -1).mean(1)  # [U, classes]
    out = []
    for i in range(len(units)):
        up = mean[i].topk(min(TOP_CLASSES, mean.shape[1]))
        down = (-mean[i]).topk(min(TOP_CLASSES, mean.shape[1]))
        out.append(
            {
                "raises": [
                    (int(j), adapter.labels.name(int(j)), round(float(v), 4))
                    for v, j in zip(up.values, up.indices, strict=True)
                ],
                "lowers": [
                    (int(j), adapter.labels.name(int(j)), round(-float(v), 4))
                    for v, j in zip(down.values, down.indices, strict=True)
                ],
            }
        )
    return out


def _derivative(
    adapter: ModelAdapter, layer: str, units: list[int], images: torch.Tensor, inside: bool
) -> torch.Tensor | None:
    """The logits' forward-mode derivative along each unit's channel at ``layer``, ``[U * B,
    classes]`` (unit-major). ``inside``: ``images`` are the B images once and the hook repeats
    the layer's output per unit; otherwise ``images`` are already repeated."""
    import torch.autograd.forward_ad as fwad
    from torch.nn.attention import SDPBackend, sdpa_kernel

    u = len(units)
    module = adapter.get_module(layer)
    adapter.layout(layer)  # probed now if unknown: a probe inside the hook would run this hook

    def hook(mod: nn.Module, inputs: Any, output: Any) -> Any:
        out = output[0] if isinstance(output, (tuple, list)) else output
        if inside:
            out = out.repeat(u, *([1] * (out.dim() - 1)))
        grid = torch.zeros_like(to_grid(adapter, layer, out))  # [U * B, C, H, W]
        view = grid.view(u, -1, *grid.shape[1:])
        for i, c in enumerate(units):
            view[i, :, c] = 1.0
        tangent = from_grid(adapter, layer, torch.zeros_like(out), grid).contiguous()
        dual = fwad.make_dual(out, tangent)
        return (dual, *output[1:]) if isinstance(output, (tuple, list)) else dual

    was_training = adapter.module.training
    adapter.module.eval()
    handle = module.register_forward_hook(hook)
    try:
        # attention's fused kernels have no forward mode: its plain form (matmul, softmax) has
        with torch.no_grad(), fwad.dual_level(), sdpa_kernel(SDPBackend.MATH):
            logits = adapter(images)
            return fwad.unpack_dual(logits).tangent
    finally:
        handle.remove()
        adapter.module.train(was_training)


def _inputs(
    adapter: ModelAdapter, layer: str, prev: str, units: list[int], tops: list[torch.Tensor]
) -> list[list[Any]]:
    """Per unit, the channels of ``prev`` that drive it most on its top examples ``tops``
    (:func:`~featviz.analysis.attribution.channel_inputs`, the channel's spatial mean)."""
    weights = channel_inputs(adapter, tops, layer, prev, units, spatial_mean=True)
    out = []
    for row in weights:
        top = row.topk(min(TOP_INPUTS, row.numel()))
        out.append([(int(j), round(float(v), 5)) for v, j in zip(top.values, top.indices, strict=True)])
    return out

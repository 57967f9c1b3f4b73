"""``featviz microscope``: build a Microscope (on one process or the ranks of ``torchrun``),
write its static site, serve it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from featviz.cli.options import (
    _load,
    _say,
    device_option,
    model_options,
    out_option,
    quiet_option,
    seed_option,
    size_option,
    steps_option,
)
from featviz.models import DEFAULT_MODEL


@click.group()
def microscope() -> None:
    """Build a browsable Microscope of a model."""


@contextmanager
def _ranks(device: str) -> Iterator[str]:
    """Under torchrun (``WORLD_SIZE`` over 1): join the process group (nccl on GPU, gloo on
    CPU), give each rank its own GPU where ``device`` is auto, and leave the group at the end.
    Yields the device this process renders on."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield device
        return
    import torch
    import torch.distributed as dist

    dist.init_process_group("nccl" if torch.cuda.is_available() and device != "cpu" else "gloo")
    if torch.cuda.is_available() and device == "auto":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    try:
        yield device
    finally:
        dist.destroy_process_group()


@microscope.command("build")
@click.argument("model", default=DEFAULT_MODEL)
@out_option("the folder (resumable: run the same command again)", required=True)
@click.option("--layers", help="comma-separated layers (default: an early, a middle and a late stage)")
@click.option("--all", "all_layers", is_flag=True, help="every channel of every top-level numbered stage")
@click.option("--units-per-layer", type=int, help="channels 0..N-1 of each layer  [default: 32; all with --all]")
@click.option("--data", default="shipped", show_default=True, help="images for the dataset examples")
@click.option("--examples-limit", type=int, help="only the first N images of the data")
@size_option(None, default=128, show_default=True)
@steps_option("steps per render (the microscope recipe's 32 when left out; diversity sets: three quarters)")
@click.option("-k", "k", type=int, default=9, show_default=True, help="dataset examples per list")
@click.option("--batch", type=int, default=8, show_default=True, help="units per render")
@seed_option
@device_option()
@model_options
@quiet_option("no progress bars")
def microscope_build(
    model: str,
    out: str,
    layers: str | None,
    all_layers: bool,
    units_per_layer: int | None,
    data: str,
    examples_limit: int | None,
    size: int,
    steps: int | None,
    k: int,
    batch: int,
    seed: int,
    device: str,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Render every chosen unit of MODEL with its dataset examples into OUT, resumably.

    Under torchrun (torchrun --nproc-per-node N -m featviz microscope build ...) the ranks
    share the units and the data (gloo on CPU, nccl on GPU).
    """
    from featviz.io.outputs import check_writable
    from featviz.microscope import build

    adapter = _load(model, weights, pretrained)
    names = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    if all_layers:
        from featviz.models.layers import stages

        names = stages(adapter)
    elif units_per_layer is None:
        units_per_layer = 32
    check_writable(Path(out) / "catalog.sqlite")
    with _ranks(device) as device:
        report = build(
            adapter,
            out,
            layers=names,
            units_per_layer=units_per_layer,
            data=data,
            size=size,
            steps=steps,
            k=k,
            batch=batch,
            seed=seed,
            examples_limit=examples_limit,
            device=device,
            progress=not quiet,
        )
    who = f"rank {report.rank} of {report.world}: " if report.world > 1 else ""
    click.echo(
        f"{who}{out}: {len(report.layers)} layers, {report.units} units ({report.rendered} rendered, "
        f"{report.skipped} already done) in {report.seconds:.1f} s; examples at {report.images_per_second:.1f} images/s"
    )
    phases = {k: v for k, v in report.timings.items() if not k.startswith("layer:") and k != "units"}
    if phases and not quiet:
        click.echo("seconds by phase: " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))


@microscope.command("site")
@click.argument("folder")
def microscope_site(folder: str) -> None:
    """Write (again) the static site of a built Microscope FOLDER: open FOLDER/index.html."""
    from featviz.microscope.catalog import require
    from featviz.microscope.site import write_site

    require(folder)
    pages = write_site(folder)
    click.echo(f"wrote {len(pages)} files; open {Path(folder) / 'index.html'}")


@microscope.command("serve")
@click.argument("folder")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="beyond loopback: open to the network")
@click.option("--queue", type=int, default=16, show_default=True, help="units that may wait for a render")
@device_option("where skipped units are rendered")
def microscope_serve(folder: str, port: int, host: str, queue: int, device: str) -> None:
    """Serve a built Microscope FOLDER locally; opening a unit the build skipped renders it."""
    from featviz.microscope.serve import LOOPBACK, serve

    def ready(url: str) -> None:  # once the folder, its catalog and the port are checked
        if host not in LOOPBACK:
            _say(f"warning: listening on {host}: anyone who can reach this machine can browse {folder}")
        click.echo(f"serving {folder} at {url} (Ctrl-C stops)")

    try:
        serve(folder, host=host, port=port, queue=queue, device=device, ready=ready)
    except KeyboardInterrupt:
        _say("stopped (a unit whose render was under way renders again when its page is opened)")
        sys.exit(130)

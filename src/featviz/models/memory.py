"""How much memory a render will take, estimated before it starts, and how much there is.

A render that does not fit should fail in a second with a number, not after the kernel has
killed the process. The estimate scales what one small probe forward of the model stores
per input pixel; it errs on the high side.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from featviz.models.adapter import ModelAdapter

PROBE = 64  # pixels: the probe image's side


def activation_bytes_per_pixel(adapter: ModelAdapter) -> float:
    """Bytes of module outputs per input pixel of one image (all modules, one forward)."""
    cache = adapter.__dict__.setdefault("_memory", {})
    if "per_pixel" not in cache:
        total = 0
        size = max(PROBE, adapter.min_size) if not adapter.fixed_size else adapter.input_size

        def hook(module: torch.nn.Module, inputs: object, output: object) -> None:
            nonlocal total
            outs = output if isinstance(output, (tuple, list)) else (output,)
            total += sum(o.numel() * o.element_size() for o in outs if isinstance(o, torch.Tensor))

        module = adapter.module
        handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
        was_training = module.training
        try:
            module.eval()
            with torch.no_grad():
                adapter(torch.full((1, 3, size, size), 0.5, device=adapter.device))
        finally:
            for h in handles:
                h.remove()
            module.train(was_training)
        cache["per_pixel"] = total / (size * size)
    return float(cache["per_pixel"])


def available_bytes(device: torch.device) -> int:
    """Memory a run on ``device`` can still take: free GPU memory, or the system's
    available memory (Linux ``MemAvailable``, else physical pages x page size)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def render_bytes(
    adapter: ModelAdapter, image: tuple[int, int], model_input: tuple[int, int], batch: int, copies: int
) -> float:
    """Estimated peak bytes of a render: the image, its parameters, gradients and optimizer
    state (~12 floats per pixel and channel), the transformed copies (~6), and the model's
    activations for the forward and the backward of every copy."""
    image_px = image[0] * image[1]
    input_px = model_input[0] * model_input[1]
    per_image = image_px * 3 * 4 * 12 + copies * input_px * (3 * 4 * 6 + 2 * activation_bytes_per_pixel(adapter))
    return batch * per_image


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n < 2**40 else f"{n / 2**40:.1f} TiB"

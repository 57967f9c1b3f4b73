"""Trained weights for torchvision and timm models: from their library's download (checked
first, so that a machine without a network hears so in one line within seconds) or from a
file the user passes.

A file is read as tensors only -- safetensors, or ``torch.load(weights_only=True)`` -- so a
weights file cannot run code.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from featviz.errors import FeatvizError

#: Seconds a download's host has to answer before featviz says it cannot be reached.
PROBE_SECONDS = 5.0
#: Suffixes of weights files (a --weights value with one of these is a file, not a name).
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def is_weights_file(value: Any) -> bool:
    """Whether a ``weights=`` value names a file rather than one of the library's weights."""
    return isinstance(value, (str, Path)) and (Path(value).suffix.lower() in WEIGHT_SUFFIXES or Path(value).is_file())


def fill(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path, name: str) -> None:
    """Load ``state`` (read from ``path``) into ``module``, refusing it in one line when it does not fit."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[:2]
        raise FeatvizError(f"{path} does not fit {name}: {' '.join(first)}") from None


def classes_in(module: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    """The number of classes of a checkpoint trained from ``module``'s architecture with
    another classifier (a model fine-tuned on 10 classes): when the only tensors whose shape
    differs are those whose first axis is the module's number of outputs, and the file's all
    have one other first axis, that number; else ``None`` (the file fits, or does not for
    another reason, said when it is loaded).

    >>> m = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(4, 1000))
    >>> classes_in(m, {**m.state_dict(), "2.weight": torch.zeros(10, 4), "2.bias": torch.zeros(10)})
    10
    """
    own = module.state_dict()
    differ = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    outputs = getattr(module, "num_classes", None) or 1000
    if not differ or any(own[k].shape[0] != outputs or own[k].shape[1:] != state[k].shape[1:] for k in differ):
        return None
    found = {int(state[k].shape[0]) for k in differ}
    return found.pop() if len(found) == 1 else None


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of ``path`` (a state dict, or a checkpoint holding one under
    ``state_dict``, ``model`` or ``model_state``), read as tensors only."""
    path = Path(path)
    if not path.is_file():
        raise FeatvizError(f"weights file not found: {path} (expected a .pth, .pt or .safetensors state dict)")
    state: Any
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader's error is the file's fault, said in one line
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise FeatvizError(
            f"{path} is not a weights file featviz can read as tensors ({type(err).__name__}: {reason})"
        ) from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise FeatvizError(f"{path} holds a {type(state).__name__}: expected a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_download(url: str, name: str, cached: bool) -> None:
    """Refuse, in one line and within :data:`PROBE_SECONDS`, a download that cannot happen:
    nothing cached and the host not reachable (or ``HF_HUB_OFFLINE`` / ``TORCH_HUB_OFFLINE``
    asks for no network). The message names the file option to use instead."""
    if cached:
        return
    host = urlparse(url).hostname or url
    offline = any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TORCH_HUB_OFFLINE")
    )
    reason = "offline mode is set" if offline else _unreachable(host)
    if reason:
        raise FeatvizError(
            f"cannot download the weights of {name}: {reason}. Download {url} on a machine with a network "
            "and pass the file: --weights FILE (weights=FILE in Python)"
        )


def _unreachable(host: str) -> str | None:
    """Why ``host`` cannot be reached on port 443 (name lookup included), or ``None``."""
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=PROBE_SECONDS).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{host} cannot be reached ({err.strerror or err})")

    worker = threading.Thread(target=probe, daemon=True)  # a name lookup ignores socket timeouts
    worker.start()
    worker.join(PROBE_SECONDS)
    return outcome[0] if outcome else f"{host} did not answer within {PROBE_SECONDS:.0f} s"


def torchvision_cached(url: str) -> bool:
    """Whether torch.hub already holds the file of ``url``."""
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name).is_file()


def timm_source(arch: str) -> tuple[str, bool]:
    """Where timm would download ``arch``'s weights from, and whether they are cached."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo = hub_id.split("@")[0]
        cached = any(
            isinstance(try_to_load_from_cache(repo, f), str) for f in ("model.safetensors", "pytorch_model.bin")
        )
        return f"https://huggingface.co/{repo}", cached
    url = getattr(cfg, "url", None) if cfg is not None else None
    if url:
        return url, torchvision_cached(url)
    raise FeatvizError(f"timm:{arch} has no trained weights to download: pass a file with --weights FILE")

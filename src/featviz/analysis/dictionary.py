"""The passes behind :func:`featviz.concepts`: a dictionary of directions over a layer's
channels learned on a stream of images (``MiniBatchNMF.partial_fit``, one batch of positions
at a time), the presence of each direction at every position (non-negative least squares),
and one pass that sums up what a concept page shows (:class:`Tally`).

Every spatial position of every image is one sample of ``C`` channel values, clamped at 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from featviz.data.sources import Item, SourceDataset, collate
from featviz.errors import ImageError
from featviz.models import LOGITS, ModelAdapter
from featviz.models.grids import from_grid, to_grid
from featviz.models.hooks import capture, intervene

NNLS_STEPS = 200  # steps of the presence maps' least squares
FORGET = 0.7  # scikit-learn's forget factor, here per pass over the data
MAX_ROWS = 256  # rows of a layer's output expanded at once (tangents, removals)


def batches(source: list[Item], size: int, order: list[int], batch: int, workers: int) -> Any:
    """``(indices, images, unreadable indices)`` for the items in ``order``, ``batch`` at a time."""
    dataset = SourceDataset(source, size, order)
    return torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate)


def positions(grid: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` as ``[N * H * W, C]`` samples, clamped at 0."""
    return grid.clamp(min=0).permute(0, 2, 3, 1).reshape(-1, grid.shape[1])


def learn(
    adapter: ModelAdapter,
    name: str,
    source: list[Item],
    size: int,
    k: int,
    batch: int,
    passes: int,
    seed: int,
    workers: int,
    progress: bool,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The ``[k, C]`` directions (unit length) from ``partial_fit`` on each batch's positions,
    ``passes`` times over ``source`` in a seeded random order, and what the passes counted.
    The forget factor is set so that one pass forgets as much as ``fit`` on all of it would."""
    from sklearn.decomposition import MiniBatchNMF
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    nmf: Any = None
    largest, samples, skipped = 0, 0, set()
    bar = tqdm(total=passes * len(source), disable=not progress, desc=f"concepts of {name}", unit="img")
    try:
        with torch.inference_mode(), capture(adapter, [name]) as cap:
            for _ in range(passes):
                order = torch.randperm(len(source), generator=gen).tolist()
                for idx, images, bad in batches(source, size, order, batch, workers):
                    skipped |= {source[i].id for i in bad}
                    bar.update(len(idx) + len(bad))
                    if not idx:
                        continue
                    rows = positions(to_grid(adapter, name, cap(images.to(adapter.device))[name])).float()
                    x = rows.cpu().numpy()
                    if nmf is None:  # one pass forgets as much as fit() on all the data would
                        total = len(source) * len(rows) / len(idx)
                        forget = FORGET ** (len(rows) / total)
                        nmf = MiniBatchNMF(
                            k, init="nndsvda", batch_size=len(rows), forget_factor=forget, random_state=seed
                        )
                    nmf.partial_fit(x)
                    largest, samples = max(largest, len(rows)), samples + len(rows)
    finally:
        bar.close()
    if nmf is None:
        raise ImageError(f"no readable image among the {len(source)} of the data")
    components = torch.from_numpy(nmf.components_).float()
    directions = components / components.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return directions, {"largest_batch": largest, "samples_seen": samples, "skipped": sorted(skipped)}


def presence(grid: torch.Tensor, directions: torch.Tensor, steps: int = NNLS_STEPS) -> torch.Tensor:
    """How much of each direction every position holds, ``[N, k, H, W]`` (>= 0), for a layer's
    grid ``[N, C, H, W]`` clamped at 0 and directions ``[k, C]``: at each position the
    non-negative least squares weights ``argmin_{w >= 0} |a+ - w D|``, by accelerated
    projected gradient (FISTA) for ``steps`` steps from the clamped projections.

    >>> d = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> presence(torch.tensor([[[[2.0]], [[-1.0]]]]), d).flatten().tolist()
    [2.0, 0.0]
    """
    n, c, h, w = grid.shape
    d = directions.to(grid.device, torch.float32)
    x = positions(grid.detach().float())
    gram, b = d @ d.T, x @ d.T
    lipschitz = float(torch.linalg.eigvalsh(gram.double().cpu())[-1])
    step = 1.0 / max(lipschitz, 1e-12)
    weights = b.clamp(min=0)
    ahead, t = weights, 1.0
    for _ in range(steps):
        after = (ahead - step * (ahead @ gram - b)).clamp(min=0)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        ahead = after + ((t - 1) / t_next) * (after - weights)
        weights, t = after, t_next
    return weights.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def expanded_logits(adapter: ModelAdapter, name: str, x: torch.Tensor, make: Any, rows: int) -> torch.Tensor:
    """The logits of ``x`` with ``name``'s output grid replaced by ``make(grid)``, ``rows``
    blocks of the batch. The output is expanded in place, so the layers before it run once; a
    model whose later layers also read an earlier output (a skip around ``name``) cannot take
    that, and gets the images repeated instead."""
    b = x.shape[0]
    adapter.layout(name)  # read once before the hook: reading it runs the model

    def change(out: torch.Tensor) -> torch.Tensor:
        base = out[:b]
        return from_grid(adapter, name, base, make(to_grid(adapter, name, base)))

    with intervene(adapter, name, change):
        try:
            return adapter(x)
        except RuntimeError as err:  # a batch that does not match another: "The size of tensor a ..."
            if isinstance(err, RecursionError) or "size" not in str(err).lower():
                raise
            return adapter(x.repeat(rows, 1, 1, 1))


def class_gradient(
    adapter: ModelAdapter, name: str, x: torch.Tensor, known: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layer's grid on ``x``, the gradient there of each image's class logit (its label
    where ``known`` has one, else the top prediction) and those classes."""
    held: dict[str, torch.Tensor] = {}
    adapter.layout(name)  # read once before the hook: reading it runs the model

    def leaf(out: torch.Tensor) -> torch.Tensor:  # the graph starts here: the layers before need none
        held["act"] = out.detach().requires_grad_()
        return held["act"]

    with torch.enable_grad(), intervene(adapter, name, leaf):
        logits = adapter(x)
        cls = torch.where(known >= 0, known, logits.detach().argmax(1).cpu())
        (grad,) = torch.autograd.grad(logits.gather(1, cls.to(logits.device)[:, None]).sum(), held["act"])
    return to_grid(adapter, name, held["act"].detach()), to_grid(adapter, name, grad), cls


def along(adapter: ModelAdapter, name: str, x: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """``[r, N, K]``: the derivative of every logit of every image of ``x`` along each of the
    ``r`` directions added at every position of ``name`` (forward mode, one expanded pass)."""
    import torch.autograd.forward_ad as fwad
    from torch.nn.attention import SDPBackend, sdpa_kernel

    r, b = len(directions), x.shape[0]

    def make(grid: torch.Tensor) -> torch.Tensor:
        shape = grid.shape[1:]
        tangent = directions.to(grid)[:, None, :, None, None].expand(r, b, *shape).reshape(r * b, *shape)
        return fwad.make_dual(grid.repeat(r, 1, 1, 1).contiguous(), tangent.contiguous())

    # attention's fused kernels have no forward mode: its plain form (matmul, softmax) has
    with torch.no_grad(), fwad.dual_level(), sdpa_kernel(SDPBackend.MATH):
        logits = expanded_logits(adapter, name, x, make, r)
        tangent = fwad.unpack_dual(logits).tangent
    if tangent is None:  # the logits do not depend on the layer
        return torch.zeros(r, b, logits.shape[-1])
    return tangent.detach().float().cpu().view(r, b, -1)


def describe(
    adapter: ModelAdapter,
    name: str,
    source: list[Item],
    known: torch.Tensor,
    size: int,
    directions: torch.Tensor,
    top: int,
    batch: int,
    workers: int,
    progress: bool,
) -> Tally:
    """One pass with the dictionary fixed: each concept's presence, top examples, the classes
    it drives and its importance per class, summed up in a :class:`Tally`."""
    from tqdm.auto import tqdm

    k, dirs = len(directions), directions.to(adapter.device)
    with torch.no_grad(), capture(adapter, [name, LOGITS]) as cap:
        probe = cap(torch.full((1, 3, size, size), 0.5, device=adapter.device))
    h, w = to_grid(adapter, name, probe[name]).shape[-2:]
    tally = Tally.empty(k, probe[LOGITS].shape[-1], (int(h), int(w)))
    chunk = max(1, MAX_ROWS // batch)  # directions per forward-mode pass
    bar = tqdm(total=len(source), disable=not progress, desc=f"describing {k} concepts", unit="img")
    try:
        for idx, images, bad in batches(source, size, list(range(len(source))), batch, workers):
            bar.update(len(idx) + len(bad))
            if not idx:
                continue
            x = images.to(adapter.device)
            act, grad, cls = class_gradient(adapter, name, x, known[idx])
            maps = presence(act, dirs)  # [B, k, h, w]
            slopes = torch.cat([along(adapter, name, x, dirs[s : s + chunk]) for s in range(0, k, chunk)])
            tally.add(torch.tensor(idx), act, grad, maps, dirs, slopes, cls, top)
    finally:
        bar.close()
    if not tally.images:
        raise ImageError(f"no readable image among the {len(source)} of the data")
    return tally


@dataclass
class Tally:
    """What :func:`describe` sums up, batch by batch (per concept unless said)."""

    presence: torch.Tensor  # [k] sum over positions
    max: torch.Tensor  # [k]
    value: torch.Tensor  # [k, n] top peaks
    index: torch.Tensor  # [k, n] their items
    maps: torch.Tensor  # [k, n, h, w] their presence maps
    drives: torch.Tensor  # [k, K] sum over images
    importance: torch.Tensor  # [k, K] sum over each class's images
    counts: torch.Tensor  # [K] images per class
    images: int = 0
    positions: int = 0
    error: float = 0.0  # squared residual of the reconstruction
    norm: float = 0.0  # squared norm of the clamped activation

    @classmethod
    def empty(cls, k: int, classes: int, grid: tuple[int, int]) -> Tally:
        zeros = torch.zeros(k, classes)
        return cls(
            torch.zeros(k),
            torch.zeros(k),
            torch.zeros(k, 0),
            torch.zeros(k, 0, dtype=torch.long),
            torch.zeros(k, 0, *grid),
            zeros,
            zeros.clone(),
            torch.zeros(classes, dtype=torch.long),
        )

    def add(
        self,
        idx: torch.Tensor,
        act: torch.Tensor,
        grad: torch.Tensor,
        maps: torch.Tensor,
        dirs: torch.Tensor,
        slopes: torch.Tensor,
        cls: torch.Tensor,
        top: int,
    ) -> None:
        """One batch: items ``idx``, the layer's grid and the class gradient there, the
        presence maps, the derivatives along the directions ``[k, B, K]`` and the classes."""
        positive = act.float().clamp(min=0)
        self.error += float(((positive - torch.einsum("bkhw,kc->bchw", maps, dirs)) ** 2).sum())
        self.norm += float((positive**2).sum())
        self.presence += maps.sum((0, 2, 3)).cpu()
        peak = maps.flatten(2).amax(2).cpu()  # [B, k]
        self.max = torch.maximum(self.max, peak.max(0).values)
        self.images += len(idx)
        self.positions += maps.shape[0] * maps.shape[2] * maps.shape[3]
        self.drives += slopes.sum(1)
        share = torch.einsum("bkhw,bchw,kc->bk", maps, grad.float(), dirs).cpu()  # gradient x the concept's part
        self.importance.index_add_(1, cls, share.T)
        self.counts.index_add_(0, cls, torch.ones(len(idx), dtype=torch.long))
        self._merge(peak.T, idx, maps.transpose(0, 1).cpu(), top)

    def _merge(self, values: torch.Tensor, idx: torch.Tensor, maps: torch.Tensor, top: int) -> None:
        """Keep each concept's ``top`` highest peaks; ties go to the lower item index."""
        v = torch.cat([self.value, values], 1)
        i = torch.cat([self.index, idx[None].expand(len(values), -1)], 1)
        m = torch.cat([self.maps, maps], 1)
        by_index = i.argsort(dim=1, stable=True)
        v, i = v.gather(1, by_index), i.gather(1, by_index)
        order = v.argsort(dim=1, descending=True, stable=True)[:, :top]
        keep = by_index.gather(1, order)
        self.value, self.index = v.gather(1, order), i.gather(1, order)
        self.maps = m.gather(1, keep[..., None, None].expand(-1, -1, *m.shape[2:]))

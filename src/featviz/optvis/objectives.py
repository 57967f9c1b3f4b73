"""Objectives: immutable scores to maximize, with exact algebra.

An objective maps captured activations to one score per image (a ``[batch]`` tensor) and
declares the layers it reads; the union of those layers decides which hooks are registered.
Objectives combine with ``+ - * /``, negation, ``sum()`` and products of objectives::

    >>> obj = channel("blocks.5", 51) - 0.05 * l2()
    >>> obj
    channel('blocks.5', 51) - 0.05 * l2()
    >>> obj.layers
    ('blocks.5', 'input')

Scores are maximized; only the render loop negates them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import torch

from featviz.errors import UnitError
from featviz.models.adapter import INPUT, LOGITS
from featviz.models.grids import to_grid
from featviz.models.hooks import Activations

ScoreFn = Callable[[Activations], torch.Tensor]
Operand = Union["Objective", float, int]

# repr precedence: atoms bind tightest, then unary minus, products, sums.
_SUM, _PROD, _NEG, _ATOM = 1, 2, 3, 4


class Objective:
    """A score per image, computed from activations. Immutable; combine with arithmetic."""

    __slots__ = ("_fn", "layers", "name", "_prec", "_chain")
    _fn: ScoreFn
    layers: tuple[str, ...]
    name: str
    _prec: int
    _chain: tuple[tuple[str, Objective], ...]

    def __init__(
        self,
        fn: ScoreFn,
        layers: Sequence[str] = (),
        name: str = "objective",
        _prec: int = _ATOM,
        _chain: tuple[tuple[str, Objective], ...] = (),
    ) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "layers", tuple(dict.fromkeys(layers)))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_prec", _prec)
        object.__setattr__(self, "_chain", _chain)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("objectives are immutable; combine them into new ones instead")

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self._fn(acts)

    def __repr__(self) -> str:
        return self.name

    # -- algebra -----------------------------------------------------------------------------
    def _text(self, prec: int) -> str:
        return f"({self.name})" if self._prec < prec else self.name

    @staticmethod
    def _wrap(value: Operand) -> Objective:
        if isinstance(value, Objective):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            return Objective(lambda acts: torch.tensor(number), (), f"{value!r}", _ATOM)
        raise TypeError(f"expected an Objective or a number, got {type(value).__name__}")

    def _binary(self, other: Operand, op: str, prec: int, swap: bool = False) -> Objective:
        try:
            a, b = self, self._wrap(other)
        except TypeError:
            return NotImplemented
        if swap:
            a, b = b, a
        # The right operand of - and / needs brackets at equal precedence: a - (b + c).
        right_prec = prec + 1 if op in "-/" else prec
        name = f"{a._text(prec)} {op} {b._text(right_prec)}"
        # A chain a + b - c + ... (or a * b / c ...) stays one flat node evaluated in a loop,
        # so that a long expression does not nest one call per term.
        head = a._chain if a._prec == prec and a._chain else (("", a),)
        chain = (*head, (op, b))
        return Objective(_fold(chain), a.layers + b.layers, name, prec, chain)

    def __add__(self, other: Operand) -> Objective:
        return self._binary(other, "+", _SUM)

    def __radd__(self, other: Operand) -> Objective:
        if isinstance(other, (int, float)) and other == 0:  # makes sum([...]) read cleanly
            return self
        return self._binary(other, "+", _SUM, swap=True)

    def __sub__(self, other: Operand) -> Objective:
        return self._binary(other, "-", _SUM)

    def __rsub__(self, other: Operand) -> Objective:
        return self._binary(other, "-", _SUM, swap=True)

    def __mul__(self, other: Operand) -> Objective:
        return self._binary(other, "*", _PROD)

    def __rmul__(self, other: Operand) -> Objective:
        return self._binary(other, "*", _PROD, swap=True)

    def __truediv__(self, other: Operand) -> Objective:
        return self._binary(other, "/", _PROD)

    def __rtruediv__(self, other: Operand) -> Objective:
        return self._binary(other, "/", _PROD, swap=True)

    def __neg__(self) -> Objective:
        inner = self
        return Objective(lambda acts: -inner(acts), inner.layers, f"-{inner._text(_NEG)}", _NEG)

    def __pos__(self) -> Objective:
        return self


# -- helpers -----------------------------------------------------------------------------------
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": lambda x, y: x / y,
}


def _fold(chain: tuple[tuple[str, Objective], ...]) -> ScoreFn:
    """Left to right over ``(op, objective)`` pairs: ``((a op1 b) op2 c) ...``."""

    def fn(acts: Activations) -> torch.Tensor:
        total = chain[0][1](acts)
        for op, obj in chain[1:]:
            total = _OPS[op](total, obj(acts))
        return total

    return fn


def _args(*args: Any, **kwargs: Any) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items() if v is not None]
    return ", ".join(parts)


def _layer_name(layer: Any) -> str:
    return layer if isinstance(layer, str) else getattr(layer, "_featviz_name", repr(layer))


def as_grid(acts: Activations, layer: str) -> torch.Tensor:
    """A layer's activation as ``[B, C, H, W]``: conv maps as they are (channels-last maps,
    such as a Swin stage's ``[B, H, W, C]``, permuted), token sequences
    ``[B, T, C]`` laid out on their square grid (class / register tokens dropped), vectors
    ``[B, C]`` as ``[B, C, 1, 1]`` (:func:`featviz.models.grids.to_grid`)."""
    return to_grid(getattr(acts, "adapter", None), layer, acts[layer])


def _check_channel(grid: torch.Tensor, layer: str, channel: int) -> None:
    if not 0 <= channel < grid.shape[1]:
        raise UnitError(
            f"channel {channel} out of range for {layer!r}: it has {grid.shape[1]} channels (0..{grid.shape[1] - 1})"
        )


def _select(score: torch.Tensor, batch: int | None) -> torch.Tensor:
    """Keep image ``batch``'s score and zero the others (``None`` keeps all)."""
    if batch is None:
        return score
    if not 0 <= batch < score.shape[0]:
        raise UnitError(f"batch index {batch} out of range for a batch of {score.shape[0]}")
    mask = torch.zeros_like(score)
    mask[batch] = 1.0
    return score * mask


def _make(fn: ScoreFn, layers: Sequence[str], name: str, batch: int | None) -> Objective:
    return Objective(lambda acts: _select(fn(acts), batch), layers, name)


# -- unit objectives ---------------------------------------------------------------------------
def channel(layer: str, index: int, *, batch: int | None = None) -> Objective:
    """Mean activation of one channel over all positions."""

    def fn(acts: Activations) -> torch.Tensor:
        grid = as_grid(acts, layer)
        _check_channel(grid, layer, index)
        return grid[:, index].mean(dim=(1, 2))

    return _make(fn, [layer], f"channel({_args(layer, index, batch=batch)})", batch)


def neuron(
    layer: str,
    index: int,
    x: int | None = None,
    y: int | None = None,
    *,
    grid: tuple[int, int] | None = None,
    batch: int | None = None,
) -> Objective:
    """Activation of one channel at one position (the centre when ``x``/``y`` are left out).

    ``grid=(h, w)`` says which grid ``x, y`` refer to (the layer's at the model's input size,
    what ``featviz layers`` prints); when the render feeds another size the position maps to
    the same place of the image on that grid. Without it, ``x, y`` index the grid as it comes.
    """
    if grid is not None and x is not None and y is not None and not (0 <= x < grid[1] and 0 <= y < grid[0]):
        raise UnitError(f"position x={x}, y={y} outside the {grid[1]}x{grid[0]} grid of {layer!r}")

    def fn(acts: Activations) -> torch.Tensor:
        act = as_grid(acts, layer)
        _check_channel(act, layer, index)
        h, w = act.shape[-2:]
        px, py = w // 2 if x is None else x, h // 2 if y is None else y
        if grid is not None and x is not None and y is not None and (h, w) != tuple(grid):
            px = min(w - 1, int((x + 0.5) * w / grid[1]))
            py = min(h - 1, int((y + 0.5) * h / grid[0]))
        if not (0 <= px < w and 0 <= py < h):
            raise UnitError(f"position x={px}, y={py} outside the {w}x{h} grid of {layer!r}")
        return act[:, index, py, px]

    position = (x, y) if x is not None or y is not None else ()
    extra = {"grid": tuple(grid) if grid is not None and position else None, "batch": batch}
    return _make(fn, [layer], f"neuron({_args(layer, index, *position, **extra)})", batch)


def layer(name: str, *, batch: int | None = None) -> Objective:
    """DeepDream: mean of squared activations over the whole layer."""

    def fn(acts: Activations) -> torch.Tensor:
        return as_grid(acts, name).pow(2).flatten(1).mean(1)

    return _make(fn, [name], f"layer({_args(name, batch=batch)})", batch)


def class_logit(cls: int | str, *, batch: int | None = None) -> Objective:
    """Pre-softmax logit of a class, given by index or name."""

    def fn(acts: Activations) -> torch.Tensor:
        return acts[LOGITS][:, acts.adapter.class_index(cls)]

    return _make(fn, [LOGITS], f"class_logit({_args(cls, batch=batch)})", batch)


def class_probability(cls: int | str, *, batch: int | None = None) -> Objective:
    """Softmax probability of a class."""

    def fn(acts: Activations) -> torch.Tensor:
        return acts[LOGITS].softmax(-1)[:, acts.adapter.class_index(cls)]

    return _make(fn, [LOGITS], f"class_probability({_args(cls, batch=batch)})", batch)


def direction(
    layer: str, vector: Sequence[float] | torch.Tensor, *, cossim_pow: float = 0.0, batch: int | None = None
) -> Objective:
    """Projection of every position's activation on ``vector``, averaged over positions.

    With ``cossim_pow > 0`` the dot product is multiplied by the cosine similarity to that
    power (clamped at 0.1), which favours the direction over sheer magnitude (Lucid's
    ``direction_neuron_cossim``).
    """
    vec = torch.as_tensor(vector, dtype=torch.float32).flatten()

    def fn(acts: Activations) -> torch.Tensor:
        grid = as_grid(acts, layer)
        if grid.shape[1] != vec.numel():
            raise UnitError(f"direction has {vec.numel()} values but {layer!r} has {grid.shape[1]} channels")
        v = vec.to(grid.device, grid.dtype).view(1, -1, 1, 1)
        dot = (grid * v).sum(1)
        if cossim_pow:
            cos = dot / (grid.norm(dim=1) * v.norm() + 1e-8)
            dot = dot * cos.clamp(min=0.1) ** cossim_pow
        return dot.flatten(1).mean(1)

    # every value in the name, so that a record's objective reads back (float32 values print exactly)
    name = f"direction({_args(layer, vec.tolist(), batch=batch)}" + (
        f", cossim_pow={cossim_pow!r})" if cossim_pow else ")"
    )
    return _make(fn, [layer], name, batch)


def channels(
    layer: str, weights: Mapping[int, float] | Sequence[float] | torch.Tensor, *, batch: int | None = None
) -> Objective:
    """Weighted sum of channel means: ``{51: 1.0, 12: -0.5}`` or one weight per channel."""
    if isinstance(weights, Mapping):
        items = sorted(weights.items())
    else:
        items = list(enumerate(torch.as_tensor(weights, dtype=torch.float32).flatten().tolist()))

    def fn(acts: Activations) -> torch.Tensor:
        grid = as_grid(acts, layer)
        for c, _ in items:
            _check_channel(grid, layer, c)
        idx = torch.tensor([c for c, _ in items], device=grid.device)
        w = torch.tensor([v for _, v in items], device=grid.device, dtype=grid.dtype)
        return (grid[:, idx].mean(dim=(2, 3)) * w).sum(1)

    label = dict(items) if len(items) <= 4 else f"<{len(items)} weights>"
    return _make(fn, [layer], f"channels({_args(layer, label, batch=batch)})", batch)


def diversity(layer: str) -> Objective:
    """Dissimilarity of the images of a batch: minus the mean cosine similarity of each
    image's Gram matrix at ``layer`` to the others' (Lucid's diversity). 0 for one image."""

    def fn(acts: Activations) -> torch.Tensor:
        grid = as_grid(acts, layer)
        b, c = grid.shape[:2]
        if b < 2:
            return grid.new_zeros(b)
        flat = grid.reshape(b, c, -1)
        gram = torch.nn.functional.normalize((flat @ flat.transpose(1, 2)).reshape(b, -1), dim=1)
        sim = gram @ gram.T
        return -(sim.sum(1) - sim.diagonal()) / (b - 1)

    return Objective(fn, [layer], f"diversity({layer!r})")


# -- penalties on the image (scores that grow with the unwanted property) --------------------
def l1(constant: float = 0.5) -> Objective:
    """Mean absolute deviation of the image from ``constant``."""
    return Objective(
        lambda acts: (acts[INPUT] - constant).abs().flatten(1).mean(1),
        [INPUT],
        "l1()" if constant == 0.5 else f"l1({constant!r})",
    )


def l2(constant: float = 0.5) -> Objective:
    """Root mean square deviation of the image from ``constant`` (grey by default)."""

    def fn(acts: Activations) -> torch.Tensor:
        return ((acts[INPUT] - constant).pow(2).flatten(1).mean(1) + 1e-12).sqrt()

    return Objective(fn, [INPUT], "l2()" if constant == 0.5 else f"l2({constant!r})")


def total_variation() -> Objective:
    """Mean absolute difference between neighbouring pixels."""

    def fn(acts: Activations) -> torch.Tensor:
        img = acts[INPUT]
        dx = (img[..., :, 1:] - img[..., :, :-1]).abs().flatten(1).mean(1)
        dy = (img[..., 1:, :] - img[..., :-1, :]).abs().flatten(1).mean(1)
        return dx + dy

    return Objective(fn, [INPUT], "total_variation()")


def batched(objectives: Sequence[Objective]) -> Objective:
    """One objective per image: image ``i`` of the batch is scored by ``objectives[i]``.

    This is how one render optimizes many units at once (one forward pass per step)::

        >>> batched([channel("blocks.5", 0), channel("blocks.5", 1)])
        batched([channel('blocks.5', 0), channel('blocks.5', 1)])
    """
    objs = tuple(objectives)
    if not objs:
        raise UnitError("batched() needs at least one objective")
    layers = [name for o in objs for name in o.layers]

    def fn(acts: Activations) -> torch.Tensor:
        scores = [o(acts) for o in objs]
        size = next((s.shape[0] for s in scores if s.dim() > 0), len(objs))
        if size != len(objs):
            raise UnitError(f"batched() got {len(objs)} objectives for a batch of {size} images")
        return torch.stack([s[i] if s.dim() > 0 else s for i, s in enumerate(scores)])

    names = ", ".join(repr(o) for o in objs[:4]) + (f", ... ({len(objs)} in all)" if len(objs) > 4 else "")
    return Objective(fn, layers, f"batched([{names}])")


def from_function(fn: Callable[[Activations], torch.Tensor], adapter: Any) -> Objective:
    """An objective from a plain function of the activations (``acts["blocks.4"]`` is that
    layer's output, ``acts["logits"]`` the logits): a score per image, or one number. The
    layers it reads are found by calling it once on a probe (a grey image through
    ``adapter``, each layer captured when the function asks for it), so that a render
    captures those and stops the forward pass after the deepest. A record names it by its
    ``__qualname__``; a replay asks for it again.

    >>> import featviz
    >>> model = featviz.load_model()
    >>> o = from_function(lambda acts: acts["blocks.2"][:, 5].mean((1, 2)), model)
    >>> o.layers, repr(o)
    (('blocks.2',), '<function <lambda>>')
    """
    from featviz.models.hooks import capture

    asked: list[str] = []
    side = adapter.input_size if adapter.fixed_size else max(64, adapter.min_size)
    grey = torch.full((1, 3, side, side), 0.5, device=adapter.device)

    class Probe(Activations):
        def __missing__(self, key: str) -> torch.Tensor:
            name = adapter.layer_name(key)  # an unknown layer is refused, naming the nearest
            with capture(adapter, [name]) as cap:
                self[key] = cap(grey)[name]
            asked.append(name)
            return self[key]

    with torch.no_grad():
        score = fn(Probe(adapter))
    if not isinstance(score, torch.Tensor) or score.numel() not in (1,) or not asked:
        what = f"a tensor of shape {tuple(score.shape)}" if isinstance(score, torch.Tensor) else type(score).__name__
        raise UnitError(
            f"an objective function returns a score per image (or one number) from the activations it reads, "
            f"got {what}{'' if asked else ' reading no layer'}"
        )
    return Objective(fn, asked, f"<function {getattr(fn, '__qualname__', type(fn).__name__)}>")

from __future__ import annotations

import resource
import sys

import pytest
import torch

import featviz
from featviz.models import speed
from featviz.models.hooks import capture, hook_count
from featviz.models.speed import fast_inference, held_heap


def _grad_flags(module):
    return [p.requires_grad for p in module.parameters()]


def test_render_leaves_no_hook_and_restores_the_model(lite0):
    module = lite0.module
    module.train()
    module.classifier.weight.requires_grad_(False)  # a caller's own mix of flags
    flags = _grad_flags(module)
    before = hook_count(module)
    featviz.render(lite0, "blocks.3:5 + logits:hen", steps=3, size=64, progress=False)
    assert hook_count(module) == before == 0
    assert _grad_flags(module) == flags
    assert module.training
    module.eval()
    module.classifier.weight.requires_grad_(True)


def test_hooks_are_removed_after_an_error(lite0):
    module = lite0.module
    flags = _grad_flags(module)
    with pytest.raises(featviz.UnitError, match="24 channels"):
        featviz.render(lite0, "blocks.1:99", steps=3, size=64, progress=False)
    assert hook_count(module) == 0
    assert _grad_flags(module) == flags and not module.training


def test_weights_are_frozen_inside_a_render(lite0):
    seen = []

    def spy(state):
        seen.append(all(p.grad is None for p in lite0.module.parameters()))
        seen.append(any(p.requires_grad for p in lite0.module.parameters()))

    featviz.render(lite0, "blocks.2:1", steps=2, size=64, progress=False, callbacks=[spy])
    assert seen == [True, False, True, False]


def test_forward_stops_after_the_deepest_needed_layer(lite0):
    ran = []
    with capture(lite0, ["blocks.2", "blocks.1"]) as cap:
        blocks = lite0.module.blocks
        handles = [blocks[i].register_forward_pre_hook(lambda m, i, n=i: ran.append(n)) for i in range(7)]
        try:
            acts = cap(torch.rand(1, 3, 64, 64))
        finally:
            for h in handles:
                h.remove()
    assert set(acts) == {"blocks.1", "blocks.2"}
    assert ran == [0, 1, 2]  # blocks 3..6 never ran


def test_weight_layout_is_restored_and_nested_captures_do_not_interfere(lite0):
    weights = [p for p in lite0.module.parameters() if p.dim() == 4]
    before = [(p.data_ptr(), p.stride()) for p in weights]
    x = torch.rand(1, 3, 64, 64)
    with fast_inference(lite0, ["blocks.1"]), capture(lite0, ["blocks.1"]) as outer:
        assert weights[0].is_contiguous(memory_format=torch.channels_last)
        with fast_inference(lite0, ["blocks.3"]), capture(lite0, ["blocks.3"]) as inner:
            deep = inner(x)
            shallow = outer(x)
    assert set(deep) == {"blocks.3"} and set(shallow) == {"blocks.1"}
    assert [(p.data_ptr(), p.stride()) for p in weights] == before


def test_batchnorm_folding_is_exact_and_undone(lite0):
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        plain = lite0(x)
    state = {k: v.clone() for k, v in lite0.module.state_dict().items()}
    with fast_inference(lite0, channels_last=False), capture(lite0, ["logits"]) as cap, torch.no_grad():
        folded = cap(x)["logits"]
        assert any("forward" in m.__dict__ for m in lite0.module.modules())
    assert torch.allclose(folded, plain, atol=1e-4)
    assert not any("forward" in m.__dict__ for m in lite0.module.modules())
    after = lite0.module.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())


def test_a_cpu_render_keeps_its_freed_memory_between_steps(lite0):
    """Each step allocates and frees activations of the same sizes; on glibc they stay in the
    heap for the render (no page faults after the first steps, where a render used to fault
    thousands of pages each step) and the thresholds are left at glibc's own maximum after."""
    faults: list[int] = []

    def count(state):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

    with held_heap() as held:
        assert held == (sys.platform == "linux")  # the CI's Debian has glibc
    featviz.render(lite0, "logits:hen", steps=16, size=224, callbacks=[count], progress=False)
    per_step = (faults[-1] - faults[4]) / (len(faults) - 5)
    # 4 crops of 160 px: 2,446 per step without in a fresh process; 0-320 held (in a process
    # that ran the whole suite before, other threads' arenas still fault a little)
    assert per_step < 1000, per_step
    assert speed._heap_depth == 0

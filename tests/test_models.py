from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

import featviz
from featviz.data.photos import resize, to_tensor
from featviz.models.zoo import RandomWeightsWarning


@pytest.mark.parametrize(("photo", "index", "name"), [("chelsea", 285, "Egyptian cat"), ("coffee", 967, "espresso")])
def test_embedded_model_classifies_photos(lite0, photo, index, name):
    image = resize(to_tensor(getattr(data, photo)()), 224)[None]
    top = lite0.predict(image)[0][0]
    assert top[:2] == (index, name)
    assert top[2] > 0.3


def test_embedded_model_is_offline_and_normalizes_itself(lite0):
    assert lite0.mean == (0.5, 0.5, 0.5) and lite0.std == (0.5, 0.5, 0.5)
    assert lite0.input_size == 224
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(lite0.normalize(x), x * 2 - 1)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite_judges_agree_on_chelsea(name):
    model = featviz.load_model(name)
    image = resize(to_tensor(data.chelsea()), model.input_size)[None]
    assert model.predict(image, k=3)[0][0][0] in (281, 282, 285)  # the cat classes


def test_labels_both_ways_with_suggestions():
    labels = featviz.imagenet_labels()
    assert labels.index("hen") == 8 and labels.index("HEN") == 8 and labels.index("8") == 8
    assert labels.name(285) == "Egyptian cat"
    with pytest.raises(featviz.UnknownClassError, match="hen"):
        labels.index("hne")
    with pytest.raises(featviz.UnknownClassError, match="0..999"):
        labels.name(1000)


def test_unknown_model_lists_what_exists():
    with pytest.raises(featviz.UnknownModelError, match="efficientnet_lite0"):
        featviz.load_model("efficientnet_lit0")
    with pytest.raises(featviz.UnknownModelError, match="resnet18"):
        featviz.load_model("torchvision:resnet81")


def test_torchvision_and_timm_by_name():
    with pytest.warns(RandomWeightsWarning, match="weights='DEFAULT'"):
        resnet = featviz.load_model("torchvision:resnet18", weights=None)
    assert "layer3.1.conv2" in resnet.layers() and resnet.labels.name(8) == "hen"
    with pytest.warns(RandomWeightsWarning, match="pretrained=True"):
        mobilenet = featviz.load_model("timm:mobilenetv3_small_050", pretrained=False)
    assert mobilenet.name == "timm:mobilenetv3_small_050"
    assert mobilenet(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_unknown_layer_suggests_nearest(lite0):
    with pytest.raises(featviz.UnknownLayerError, match=r"blocks\.5"):
        lite0.layer_name("blocks.55")
    assert lite0.layer_name(lite0.module.blocks[5]) == "blocks.5"


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_embedded_models_are_timms_module_for_module(name):
    """featviz builds the Lite models itself (no timm import at start-up); names, tensors and
    logits are those of timm's tf_efficientnet_lite*, TensorFlow's SAME padding included."""
    import timm

    ours = featviz.load_model(name).module
    theirs = timm.create_model(f"tf_{name}", pretrained=False).eval()
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 97, 130) * 2 - 1  # odd sizes: stride-2 convolutions pad unevenly
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 6),
    stride=st.integers(1, 3),
    groups=st.sampled_from([1, 4]),
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    channels_last=st.booleans(),
)
def test_same_padding_without_a_padded_copy_is_tensorflows(k, stride, groups, h, w, channels_last):
    """Conv2dSame pads through the convolution itself (a kernel one larger when the padding is
    uneven) rather than copying the input into a padded tensor: the output is TensorFlow's
    SAME, written out with F.pad, for every kernel, stride and size."""
    import math

    import torch.nn.functional as F

    from featviz.models.lite import Conv2dSame

    torch.manual_seed(0)
    conv = Conv2dSame(4, 8, k, stride, groups=groups, bias=True)
    x = torch.randn(2, 4, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    pads = []
    for size in (w, h):
        total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    expected = F.conv2d(F.pad(x, pads), conv.weight, conv.bias, stride, 0, 1, groups)
    got = conv(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_lite0_in_a_render_computes_what_timm_computes(lite0):
    """Inside a render the model is folded, channels-last, its 1x1 convolutions are matrix
    products and its stride-2 convolutions pad without a copy: logits and the input gradient
    (the only gradient a render takes) are still timm's, on odd sizes."""
    import timm

    from featviz.models.speed import fast_inference

    theirs = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    theirs.load_state_dict(lite0.module.state_dict())
    for seed in (1, 7):
        x = (torch.rand(1, 3, 131, 98, generator=torch.Generator().manual_seed(seed)) * 2 - 1).requires_grad_()
        expected = theirs(x)
        (expected_grad,) = torch.autograd.grad(expected[0, 8], x)
        with fast_inference(lite0):
            got = lite0.module(x)
            (grad,) = torch.autograd.grad(got[0, 8], x)
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
        assert (grad - expected_grad).abs().max() < 1e-2 * expected_grad.abs().max()
        if seed == 1:
            assert torch.allclose(grad, expected_grad, atol=1e-6, rtol=1e-3)
        else:  # an input where a ReLU6 sits on its kink: the folded weights' rounding flips that
            # unit's gradient and the change spreads over its receptive field; the direction holds
            assert torch.nn.functional.cosine_similarity(grad.flatten(), expected_grad.flatten(), dim=0) > 0.9999


def test_render_command_starts_without_timm_torchvision_or_dynamo(tmp_path):
    """What a plain ``featviz render`` imports decides its start-up: timm (with torchvision and
    torch._dynamo behind it) and torch.optim's optimizer classes cost ~3.5 s together."""
    import subprocess
    import sys

    out = tmp_path / "x.png"
    code = (
        "import sys\n"
        "from featviz.cli import main\n"
        f"sys.argv = ['featviz', 'render', 'efficientnet_lite0', 'logits:hen', '--steps', '2', '--size', '48', "
        f"'--out', {str(out)!r}, '-q']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in ('timm', 'torchvision', 'torch._dynamo') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]", run.stdout
    assert out.exists()

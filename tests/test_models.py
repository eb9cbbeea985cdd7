import random

import pytest
import torch
import torchvision

import gdzoo
from gdzoo.models import create_model, default_widths, list_archs


def _random_widths(widths, rng: random.Random):
    """The same spec shape with every width replaced by a random value in [1, original / 4]."""
    if isinstance(widths, dict):
        return {k: _random_widths(v, rng) for k, v in widths.items()}
    if isinstance(widths, list):
        return [_random_widths(v, rng) for v in widths]
    return rng.randint(1, max(1, widths // 4))


def _leaves(widths):
    """(container, key) of every int in a widths spec, in order."""
    items = widths.items() if isinstance(widths, dict) else enumerate(widths)
    for key, value in items:
        if isinstance(value, int):
            yield widths, key
        else:
            yield from _leaves(value)


def test_resnet56_params_and_macs():
    model = create_model("cifar_resnet56")
    macs, params = gdzoo.count_flops(model, (1, 3, 32, 32))
    assert params == 855_770
    assert macs == 125_747_840  # ~125.7M: convs + shortcuts + fc


def test_resnet50_matches_torchvision():
    model = create_model("resnet50")
    macs, params = gdzoo.count_flops(model, (3, 224, 224))
    assert params == 25_557_032
    assert abs(macs - 4.09e9) / 4.09e9 < 0.01
    reference = torchvision.models.resnet50().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet101"])
def test_other_resnets_load_torchvision_weights(arch):
    create_model(arch).load_state_dict(getattr(torchvision.models, arch)().state_dict(), strict=True)


@pytest.mark.parametrize("arch", list_archs())
def test_widths_round_trip(arch):
    rng = random.Random(arch)
    widths = _random_widths(default_widths(arch), rng)
    leaves = list(_leaves(widths))
    for container, key in (leaves[0], leaves[len(leaves) // 2], leaves[-1]):
        container[key] = 1
    model = create_model(arch, widths=widths)
    assert model.widths == widths
    rebuilt = create_model(arch, widths=model.widths)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    size = (1, 3, 32, 32) if arch.startswith("cifar") else (1, 3, 64, 64)
    x = torch.randn(size)
    torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x))
    assert [f["num_chs"] for f in model.feature_info][-1] == model.num_features


def test_width_one_everywhere_runs():
    widths = default_widths("cifar_resnet20")
    ones = {"stages": [1, 1, 1], "blocks": [[1] * 3] * 3}
    assert len(ones["blocks"]) == len(widths["blocks"])
    model = create_model("cifar_resnet20", widths=ones)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_feature_info_reflects_pruned_widths():
    widths = default_widths("resnet50")
    widths["stem"], widths["stages"] = 40, [100, 200, 300, 400]
    model = create_model("resnet50", widths=widths)
    assert [f["num_chs"] for f in model.feature_info] == [40, 100, 200, 300, 400]
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 400, 2, 2)


def test_backbone_api():
    model = create_model("cifar_resnet20", num_classes=7)
    x = torch.randn(3, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (3, 64, 8, 8)
    assert model.forward_head(feats, pre_logits=True).shape == (3, 64)
    assert model.get_classifier() is model.fc and model.fc.out_features == 7
    model.reset_classifier(4)
    assert model(x).shape == (3, 4) and model.num_classes == 4
    model.reset_classifier(0)
    assert model(x).shape == (3, 64)


@pytest.mark.parametrize(
    "arch, widths, message",
    [
        ("cifar_resnet20", [16, 32, 64], "widths for cifar_resnet20 must be a dict"),
        ("cifar_resnet20", {"stages": [16, 32, 64]}, "missing key(s) ['blocks']"),
        ("cifar_resnet20", {"stages": [16, 32, 64], "blocks": [[16] * 3] * 3, "stem": 3}, "unknown key(s) ['stem']"),
        ("cifar_resnet20", {"stages": [16, 32], "blocks": [[16] * 3] * 3}, 'widths["stages"] must have 3 entries, got 2'),
        ("cifar_resnet20", {"stages": [16, 0, 64], "blocks": [[16] * 3] * 3}, 'widths["stages"][1] must be >= 1, got 0'),
        ("cifar_resnet20", {"stages": [16, 32, -4], "blocks": [[16] * 3] * 3}, 'widths["stages"][2] must be >= 1, got -4'),
        ("cifar_resnet20", {"stages": [16, 32, 64], "blocks": [[16] * 3, [32, 32.5, 32], [64] * 3]},
         'widths["blocks"][1][1] must be a positive int, got 32.5 (float)'),
        ("cifar_resnet20", {"stages": [16, 32, 64], "blocks": [[16] * 3, [32] * 4, [64] * 3]},
         'widths["blocks"][1] must have 3 entries, got 4'),
        ("cifar_resnet20", {"stages": [True, 32, 64], "blocks": [[16] * 3] * 3}, 'widths["stages"][0] must be a positive int, got True'),
        ("resnet50", {"stem": "64", "stages": [256, 512, 1024, 2048], "blocks": default_widths("resnet50")["blocks"]},
         'widths["stem"] must be a positive int, got \'64\''),
        ("resnet50", {**default_widths("resnet50"), "blocks": [[[64, 64]] * 3, [[128, 128]] * 4, [[256, 256]] * 6, [[512]] * 3]},
         'widths["blocks"][3][0] must have 2 entries, got 1'),
        ("cifar_vgg16", {"convs": [64] * 12}, 'widths["convs"] must have 13 entries, got 12'),
    ],
)
def test_invalid_widths_name_the_entry(arch, widths, message):
    with pytest.raises(ValueError) as info:
        create_model(arch, widths=widths)
    assert message in str(info.value)


def test_unknown_arch_lists_close_names():
    with pytest.raises(ValueError, match=r"unknown arch 'cifar_resnet57'. Did you mean cifar_resnet56"):
        create_model("cifar_resnet57")


def test_count_flops_validates_input_size():
    with pytest.raises(ValueError, match=r"input_size must be \(C, H, W\) or \(N, C, H, W\), got \(32, 32\)"):
        gdzoo.count_flops(create_model("cifar_resnet20"), (32, 32))


def test_count_flops_scales_with_batch_and_width():
    model = create_model("cifar_resnet20")
    macs1, params = gdzoo.count_flops(model, (3, 32, 32))
    macs4, _ = gdzoo.count_flops(model, (4, 3, 32, 32))
    assert macs4 == 4 * macs1
    widths = default_widths("cifar_resnet20")
    widths["blocks"][0][0] = 8  # halves one 16->16 conv pair's inner width
    narrower = create_model("cifar_resnet20", widths=widths)
    macs_n, params_n = gdzoo.count_flops(narrower, (3, 32, 32))
    assert macs1 - macs_n == 2 * 8 * 16 * 9 * 32 * 32
    assert params - params_n == 2 * 8 * 16 * 9 + 2 * 8

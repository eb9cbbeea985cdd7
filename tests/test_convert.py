"""gdzoo.upstream: the authors' checkpoints (plain and gated) become exports with the same function.

The reference models below re-implement the authors' CIFAR ResNet with their key names and their
gated forward ``bn(x) * g * bn_mask``, so CI (no shared data) checks conversion against it on
synthetic state dicts; the real checkpoints are checked too when ``../shared`` is present.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from gdzoo.cli import main
from gdzoo.models import create_model
from gdzoo.upstream import UpstreamCheckpointError, convert_upstream

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
UPSTREAM = SHARED / "upstream"


class RefGBN(nn.Module):
    """The authors' gated BN: ``bn(x) * g * bn_mask`` with their buffer names."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, c, 1, 1))
        self.register_buffer("area", torch.ones(1))
        self.register_buffer("score", torch.zeros(1, c, 1, 1))
        self.register_buffer("bn_mask", torch.ones(1, c, 1, 1))
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.g * self.bn_mask


class RefBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = norm(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class RefResNet(nn.Module):
    """The authors' CIFAR ResNet (key names conv1, bn1, layerN.i.*, shortcut.{0,1}, linear)."""

    def __init__(self, depth: int, gated: bool) -> None:
        super().__init__()
        norm = RefGBN if gated else nn.BatchNorm2d
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = norm(16)
        cin = 16
        for s, w in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                blocks.append(RefBlock(cin, w, 2 if s and not i else 1, norm))
                cin = w
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _residual_groups(ref: RefResNet) -> list[list[nn.Module]]:
    groups = []
    for s in (1, 2, 3):
        stage = getattr(ref, f"layer{s}")
        first = [ref.bn1] if s == 1 else [stage[0].shortcut[1]]
        groups.append(first + [b.bn2 for b in stage])
    return groups


@torch.no_grad()
def _random_reference(depth: int, gated: bool, seed: int) -> RefResNet:
    """Random weights/BN statistics/gates; gated: random masks, shared within residual groups, >= 1 kept."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ref = RefResNet(depth, gated).eval()
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        if isinstance(m, RefGBN):
            c = m.bn.num_features
            m.g.copy_((torch.rand(c, generator=g) + 0.2).view(1, c, 1, 1))
            m.score.copy_(torch.rand(1, c, 1, 1, generator=g))

    def random_mask(c: int) -> torch.Tensor:
        mask = (torch.rand(c, generator=g) < 0.6).float()
        mask[torch.randint(c, (1,), generator=g)] = 1.0
        return mask.view(1, c, 1, 1)

    if gated:
        for m in ref.modules():
            if isinstance(m, RefGBN):
                m.bn_mask.copy_(random_mask(m.bn.num_features))
        for group in _residual_groups(ref):
            shared = random_mask(group[0].bn.num_features)
            for m in group:
                m.bn_mask.copy_(shared)
    return ref


def _load_export(folder: Path) -> nn.Module:
    """Rebuild an export from its files alone (arch + widths + safetensors, strict)."""
    cfg = json.loads((folder / "config.json").read_text())
    model = create_model(cfg["arch"], widths=cfg["widths"], num_classes=cfg["num_classes"])
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    return model.eval()


def _assert_same_logits(ref: nn.Module, model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        a, b = ref.eval()(x), model.eval()(x)
    assert (a - b).abs().max() <= 1e-4 * a.abs().max(), float((a - b).abs().max())


@pytest.mark.parametrize("depth,seed", [(20, 0), (20, 1), (32, 2)])
def test_gated_state_dict_melts_to_the_same_function(tmp_path: Path, depth: int, seed: int) -> None:
    ref = _random_reference(depth, gated=True, seed=seed)
    out = convert_upstream(ref.state_dict(), tmp_path / "gated")
    model = _load_export(out)
    _assert_same_logits(ref, model, torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(seed)))
    n = (depth - 2) // 6
    stages = [ref.layer1[0].bn2] + [getattr(ref, f"layer{s}")[0].shortcut[1] for s in (2, 3)]
    assert model.widths == {
        "stages": [int(m.bn_mask.sum()) for m in stages],
        "blocks": [[int(getattr(ref, f"layer{s}")[i].bn1.bn_mask.sum()) for i in range(n)] for s in (1, 2, 3)]}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arch"] == f"cifar_resnet{depth}" and cfg["pruned"] and "top1" not in cfg["metrics"]
    assert cfg["provenance"]["upstream_repo"] == "youzhonghui/gate-decorator-pruning"
    assert cfg["provenance"]["upstream_license"] == "Apache-2.0"
    assert "include the 5,000 validation images" in cfg["provenance"]["training_data"]
    assert list(cfg["mean"]) == [0.4914, 0.4822, 0.4465] and list(cfg["std"]) == [0.247, 0.243, 0.261]


def test_plain_checkpoint_file_converts_unchanged(tmp_path: Path) -> None:
    ref = _random_reference(20, gated=False, seed=3)
    ckp = tmp_path / "plain.ckp"
    torch.save(ref.state_dict(), ckp)
    out = convert_upstream(ckp, tmp_path / "plain")
    model = _load_export(out)
    assert model.widths == create_model("cifar_resnet20").widths
    _assert_same_logits(ref, model, torch.randn(4, 3, 32, 32))
    cfg = json.loads((out / "config.json").read_text())
    from gdzoo.zoo.export import sha256_file

    assert cfg["provenance"]["source_file"] == "plain.ckp"
    assert cfg["provenance"]["source_sha256"] == sha256_file(ckp)
    assert not cfg["pruned"]


def test_inconsistent_group_masks_are_refused_naming_the_layers(tmp_path: Path) -> None:
    ref = _random_reference(20, gated=True, seed=4)
    with torch.no_grad():
        mask = ref.layer2[1].bn2.bn_mask
        mask[0, 0] = 1.0 - mask[0, 0]
    with pytest.raises(UpstreamCheckpointError, match=r"inconsistent masks.*layer2\.1\.bn2") as err:
        convert_upstream(ref.state_dict(), tmp_path / "bad")
    assert "layer2.0.shortcut.1" in str(err.value) and "Fix:" in str(err.value)
    assert not (tmp_path / "bad").exists() and list(tmp_path.iterdir()) == []


class _Opaque:
    """Any object a weights-only load cannot rebuild."""


def test_pickles_that_need_objects_are_refused(tmp_path: Path) -> None:
    ckp = tmp_path / "model.ckp"
    torch.save({"conv1.weight": torch.zeros(1), "meta": _Opaque()}, ckp)
    with pytest.raises(UpstreamCheckpointError, match="not a weights-only checkpoint.*Fix:"):
        convert_upstream(ckp, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("edit,message", [
    (lambda sd: sd.update({"layer1.0.extra.weight": torch.zeros(1)}), r"unknown key\(s\).*layer1\.0\.extra\.weight"),
    (lambda sd: sd.pop("layer3.2.bn1.g"), r"missing key\(s\).*layer3\.2\.bn1\.g"),
    (lambda sd: sd.pop("layer1.2.bn1.bn.running_var"), r"missing key\(s\).*layer1\.2\.bn1\.bn\.running_var"),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("layer3.2.")], r"unknown key layout.*\[3, 3, 2\]"),
    (lambda sd: sd["bn1.bn_mask"].fill_(0.5), r"bn1\.bn_mask.*0 and 1"),
    (lambda sd: sd["layer1.1.bn1.bn_mask"].zero_(), r"every channel of \['layer1\.1\.bn1'\] is masked"),
])
def test_bad_key_layouts_are_refused(tmp_path: Path, edit, message: str) -> None:
    sd = _random_reference(20, gated=True, seed=5).state_dict()
    edit(sd)
    with pytest.raises(UpstreamCheckpointError, match=message):
        convert_upstream(sd, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_converts_and_reports_errors(tmp_path: Path) -> None:
    ckp = tmp_path / "gated.ckp"
    torch.save(_random_reference(20, gated=True, seed=6).state_dict(), ckp)
    runner = CliRunner()
    result = runner.invoke(main, ["convert-upstream", str(ckp), "--out", str(tmp_path / "exp"), "--name", "r20-test"])
    assert result.exit_code == 0, result.output
    assert "top1 not measured" in result.output
    assert json.loads((tmp_path / "exp" / "config.json").read_text())["name"] == "r20-test"
    assert {p.name for p in (tmp_path / "exp").iterdir()} == {"config.json", "model.safetensors", "README.md"}
    again = runner.invoke(main, ["convert-upstream", str(ckp), "--out", str(tmp_path / "exp")])
    assert again.exit_code != 0 and "already exists" in again.output
    missing = runner.invoke(main, ["convert-upstream", str(tmp_path / "nope.ckp"), "--out", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "no such file" in missing.output


def _real_images(n: int) -> torch.Tensor:
    """The first ``n`` JPEGs of the shared CIFAR-10 tarball, normalised as the authors did."""
    import numpy as np
    from PIL import Image

    from gdzoo.data import CIFAR10_MEAN, CIFAR10_STD

    images = []
    with tarfile.open(SHARED / "data" / "cifar10-jpeg-train.tar.gz", "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                images.append(torch.from_numpy(np.array(image)).permute(2, 0, 1))
                if len(images) == n:
                    break
    x = torch.stack(images).float() / 255
    return (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)


@pytest.mark.skipif(not (UPSTREAM / "resnet56_cifar10_70percent_flops_reduced.ckp").exists()
                    or not (SHARED / "data" / "cifar10-jpeg-train.tar.gz").exists(),
                    reason="authors' checkpoints / CIFAR-10 JPEGs not present in ../shared")
def test_authors_70_percent_checkpoint_melts_exactly_on_real_images(tmp_path: Path) -> None:
    ckp = UPSTREAM / "resnet56_cifar10_70percent_flops_reduced.ckp"
    ref = RefResNet(56, gated=True)
    ref.load_state_dict(torch.load(ckp, map_location="cpu", weights_only=True), strict=True)
    model = _load_export(convert_upstream(ckp, tmp_path / "gbn70"))
    assert model.widths["stages"] == [16, 32, 64]
    assert sum(map(sum, model.widths["blocks"])) < sum(map(sum, create_model("cifar_resnet56").widths["blocks"]))
    _assert_same_logits(ref, model, _real_images(64))


def test_accuracy_is_measured_on_given_validation_images_with_the_leakage_note(tmp_path: Path) -> None:
    from gdzoo.data import CIFAR10_MEAN, CIFAR10_STD, ImageTensors
    from gdzoo.zoo.datasets import CIFAR10_LABELS

    ref = _random_reference(20, gated=True, seed=7)
    g = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    x = (images.float() / 255 - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        predicted = ref(x).argmax(1)
    labels = torch.where(torch.arange(40) % 2 == 0, predicted, (predicted + 1) % 10)  # exactly half right
    out = convert_upstream(ref.state_dict(), tmp_path / "m", data=ImageTensors(images, labels, list(CIFAR10_LABELS)))
    metrics = json.loads((out / "config.json").read_text())["metrics"]
    assert metrics["top1"] == pytest.approx(50.0)
    assert metrics["eval_split"] == "cifar10-jpeg val (last 500/class)"
    assert "Optimistic" in metrics["eval_notes"] and "50k original CIFAR-10" in metrics["eval_notes"]
    with pytest.raises(UpstreamCheckpointError, match="not CIFAR-10's"):
        convert_upstream(ref.state_dict(), tmp_path / "n", data=ImageTensors(images, labels, list("abcdefghij")))
    assert not (tmp_path / "n").exists()

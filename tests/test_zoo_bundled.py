"""The weights shipped in the package: they load offline, match the registry, and score what their
cards say on the CIFAR-10 JPEG validation split (when ../shared holds it)."""
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import gdzoo
from gdzoo.cli import main
from gdzoo.data import ImageTensors, TensorLoader
from gdzoo.training import evaluate
from gdzoo.zoo import get_entry

SHIPPED = ["resnet56", "resnet56-gbn70"]
ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg-train.tar.gz"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_offline_and_match_the_registry(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = get_entry(name)
    assert entry.status == "in package"
    model = gdzoo.load(name).eval()
    assert model.widths == entry.widths
    assert gdzoo.count_flops(model, (3, 32, 32)) == entry.macs_params()
    config = json.loads((entry.bundled / "config.json").read_text())
    assert config["metrics"]["top1"] == pytest.approx(entry.metrics["top1"])
    assert model.pretrained_cfg["label_names"][0] == "airplane"
    info = CliRunner().invoke(main, ["info", name])
    assert info.exit_code == 0 and f"shipped by:  {config['reproduce']}" in info.output
    assert config["reproduce"].startswith("gdzoo reproduce resnet56-70 --preset cpu")
    logits = model(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def _validation_split() -> ImageTensors:
    """The 5,000 validation images (files 4500-4999.jpg of each class), decoded from the archive."""
    by_class: dict[str, list] = {}
    with tarfile.open(ARCHIVE, "r:gz") as tar:
        for member in tar:
            path = Path(member.name)
            if member.isfile() and path.suffix == ".jpg" and int(path.stem) >= 4500:
                image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                by_class.setdefault(path.parent.name, []).append((path.name, np.array(image)))
    classes = sorted(by_class)
    images, labels = [], []
    for label, cls in enumerate(classes):
        for _, array in sorted(by_class[cls], key=lambda item: item[0]):
            images.append(torch.from_numpy(array).permute(2, 0, 1))
            labels.append(label)
    return ImageTensors(torch.stack(images), torch.tensor(labels), classes)


@pytest.mark.skipif(not ARCHIVE.exists(), reason="the CIFAR-10 JPEG archive is not in ../shared/data")
def test_shipped_models_score_their_cards_on_the_validation_split():
    val = _validation_split()
    assert len(val.labels) == 5000
    for name in SHIPPED:
        model = gdzoo.load(name)
        cfg = model.pretrained_cfg
        loader = TensorLoader(val, 500, train=False, mean=cfg["mean"], std=cfg["std"])
        top1 = 100 * evaluate(model, loader.epoch(0))["top1"]
        assert abs(top1 - get_entry(name).metrics["top1"]) <= 0.05, name

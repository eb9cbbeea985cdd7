"""export_model: the folder's contents, atomic writes, and a model card the Hub accepts."""
import filecmp
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file

import gdzoo
from gdzoo.zoo import export_model, load
from gdzoo.zoo import export as export_module
from zoo_helpers import export, pruned_model, states_equal

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model = pruned_model("cifar_resnet56", seed=31)
    return model, export(model, tmp_path_factory.mktemp("e") / "r56")


def test_folder_holds_config_safetensors_and_card(folder):
    model, path = folder
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["arch"] == "cifar_resnet56" and cfg["widths"] == model.widths and cfg["num_classes"] == 10
    assert cfg["input_size"] == [3, 32, 32] and len(cfg["mean"]) == len(cfg["std"]) == 3
    assert cfg["label_names"][:2] == ["airplane", "automobile"] and cfg["gdzoo_version"] == gdzoo.__version__
    assert cfg["provenance"] == {"test": True} and cfg["pruned"] is True
    assert (cfg["metrics"]["macs"], cfg["metrics"]["params"]) == gdzoo.count_flops(model, (3, 32, 32))
    assert 0 < cfg["reduction"]["macs"] < 1
    assert states_equal(load_file(path / "model.safetensors"), model.state_dict())
    assert states_equal(load(path).state_dict(), model.state_dict())


def test_card_metadata_is_valid_for_the_hub(folder, hub_server):
    _, path = folder
    card = ModelCard.load(path / "README.md")
    card.validate()  # the client's own check, POSTed to /api/validate-yaml
    data = card.data.to_dict()
    assert data["library_name"] == "gdzoo" and data["license"] == "apache-2.0"
    assert data["datasets"] == ["uoft-cs/cifar10"] and "gdzoo" in data["tags"]
    assert ModelCardData(**data).to_dict() == data  # structural round trip
    name, results = model_index_to_eval_results(data["model-index"])
    by_type = {r.metric_type: r.metric_value for r in results}
    cfg = json.loads((path / "config.json").read_text())
    assert name == cfg["name"] and by_type == {"accuracy": 12.5, "macs": cfg["metrics"]["macs"],
                                               "params": cfg["metrics"]["params"]}
    assert all(r.task_type == "image-classification" and r.dataset_split == "test" for r in results)
    text = card.text
    assert "gdzoo reproduce resnet56-70 --preset smoke" in text and "gdzoo.count_flops" in text
    assert "random weights: a test fixture" in text  # how accuracy was measured


def test_server_rejects_invalid_metadata(hub_server):
    bad = ModelCard("---\nlicense: [1, 2]\ndatasets: [a/b/c]\n---\n# x\n")
    with pytest.raises(ValueError, match="license.*must be a string"):
        bad.validate()


def test_packaged_template_is_the_canonical_one():
    assert filecmp.cmp(ROOT / "hub_cards" / "model_card.md", ROOT / "gdzoo" / "zoo" / "templates" / "model_card.md",
                       shallow=False), "copy hub_cards/model_card.md to gdzoo/zoo/templates/model_card.md"


def test_imagenet_export_uses_imagenet_preprocessing(tmp_path):
    model = pruned_model("resnet50", seed=32)
    cfg = json.loads((export(model, tmp_path / "r50") / "config.json").read_text())
    assert cfg["input_size"] == [3, 224, 224] and cfg["mean"] == [0.485, 0.456, 0.406]
    assert len(cfg["label_names"]) == 1000 and cfg["label_names"][0].startswith("tench")


def test_export_is_atomic(tmp_path, monkeypatch):
    model = pruned_model(seed=33)
    target = export(model, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export(model, target)

    def broken_card(*args, **kwargs):
        raise RuntimeError("disk full while writing the card")

    monkeypatch.setattr(export_module, "render_card", broken_card)
    other = pruned_model(seed=34)
    for dest in (target, tmp_path / "fresh"):
        with pytest.raises(RuntimeError, match="disk full"):
            export_model(other, dest, name="x", dataset="cifar10", metrics={}, provenance={}, overwrite=True)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # old export untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folders left behind
    monkeypatch.undo()
    export_model(other, target, name="x", dataset="cifar10", metrics={}, provenance={}, overwrite=True)
    assert states_equal(load(target).state_dict(), other.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_export_rejects_bad_input(tmp_path):
    model = pruned_model(seed=35)
    with pytest.raises(ValueError, match="gdzoo model"):
        export_model(torch.nn.Linear(2, 2), tmp_path / "a", name="x", dataset="cifar10", metrics={}, provenance={})
    with pytest.raises(ValueError, match="unknown metrics key"):
        export_model(model, tmp_path / "a", name="x", dataset="cifar10", metrics={"acc": 1}, provenance={})
    with pytest.raises(ValueError, match="metrics\\['macs'\\]"):
        export_model(model, tmp_path / "a", name="x", dataset="cifar10", metrics={"macs": 1}, provenance={})
    with pytest.raises(ValueError, match="pass mean, std and input_size"):
        export_model(model, tmp_path / "a", name="x", dataset="svhn", metrics={}, provenance={})
    with pytest.raises(TypeError):
        export_model(model, tmp_path / "a", name="x", dataset="cifar10", metrics={}, provenance={"f": object()})
    assert not list(tmp_path.iterdir())

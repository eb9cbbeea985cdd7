"""The registry, gdzoo.list_models / create_model, and the list/info commands."""
import json
import shutil

import pytest
import torch
import torchvision
from click.testing import CliRunner

import gdzoo
from gdzoo.cli import main
from gdzoo.models import default_widths
from gdzoo.zoo import NotPublishedError, UnknownModelError, get_entry, update_from_export
from gdzoo.zoo.errors import CorruptWeightsError
from gdzoo.zoo.registry import data_dir
from zoo_helpers import export, pruned_model

NAMES = ["resnet56", "resnet56-gbn70", "resnet50", "resnet50-gbn60", "resnet50-gbn50"]


def test_every_entry_is_listed_honestly():
    table = gdzoo.list_models()
    assert sorted(r["name"] for r in table) == sorted(NAMES)
    rows = {r["name"]: r for r in table}
    assert {r["name"]: r["status"] for r in table} == {  # nothing is on the Hub yet; CIFAR weights ship inside
        "resnet50": "recipe only", "resnet50-gbn60": "recipe only", "resnet50-gbn50": "recipe only",
        "resnet56": "in package", "resnet56-gbn70": "in package"}
    pruned = gdzoo.create_model("resnet56-gbn70")
    assert (rows["resnet56-gbn70"]["macs_value"], rows["resnet56-gbn70"]["params_value"]) == gdzoo.count_flops(
        pruned, (3, 32, 32))
    assert rows["resnet56-gbn70"]["reduction"] == "-70.1% / -67.1%"
    for name in ("resnet50-gbn60", "resnet50-gbn50"):
        assert rows[name]["macs"] == rows[name]["params"] == rows[name]["top1"] == "—"
        assert rows[name]["reduction"].startswith("target -")
    assert rows["resnet50-gbn60"]["reduction"] == "target -40.54% MACs"
    macs, params = gdzoo.count_flops(gdzoo.create_model("cifar_resnet56"), (3, 32, 32))
    assert (rows["resnet56"]["macs_value"], rows["resnet56"]["params_value"]) == (macs, params)
    text = str(table)
    assert text.splitlines()[0].split()[:5] == ["name", "dataset", "top-1", "MACs", "params"]
    assert "not measured yet" in text and "reported upstream" in text


def test_resnet50_top1_is_torchvisions_own_number():
    reported = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    entry = get_entry("resnet50")
    assert entry.metrics["top1"] == pytest.approx(reported) and entry.metrics["top1_upstream"]
    assert entry.widths == default_widths("resnet50")


def test_create_model_is_timm_style():
    arch = gdzoo.create_model("cifar_resnet56", widths={"stages": [8, 8, 8], "blocks": [[4] * 9] * 3})
    assert arch.widths["stages"] == [8, 8, 8]
    zoo = gdzoo.create_model("resnet56", num_classes=7)
    assert zoo.fc.out_features == 7 and zoo.pretrained_cfg["input_size"] == (3, 32, 32)
    with pytest.raises(NotPublishedError, match="gdzoo reproduce gbn-50"):
        gdzoo.create_model("resnet50-gbn50", pretrained=True)
    shipped = gdzoo.create_model("resnet56-gbn70", pretrained=True)  # weights inside the package
    torch.testing.assert_close(shipped.fc.weight, gdzoo.load("resnet56-gbn70").fc.weight)
    with pytest.raises(NotPublishedError, match="widths of 'resnet50-gbn60' are not known yet"):
        gdzoo.create_model("resnet50-gbn60")
    with pytest.raises(ValueError, match="bare architecture"):
        gdzoo.create_model("cifar_resnet20", pretrained=True)
    with pytest.raises(NotPublishedError, match="torchvision"):  # an arch and a zoo entry: the entry wins
        gdzoo.create_model("resnet50", pretrained=True)
    with pytest.raises(UnknownModelError, match="Did you mean"):
        gdzoo.create_model("resnet56-gbn7")


def test_a_runs_export_drops_in_without_code_changes(tmp_path, monkeypatch):
    """update_from_export writes the widths file and metrics; the entry then lists real numbers."""
    root = tmp_path / "data"
    shutil.copytree(data_dir(), root)
    model = pruned_model("cifar_resnet56", seed=21)
    folder = export(model, tmp_path / "run", name="resnet56-gbn70")
    update_from_export("resnet56-gbn70", folder, revision="a" * 40, root=root)
    assert json.loads((root / "widths" / "resnet56-gbn70.json").read_text()) == model.widths
    monkeypatch.setenv("GDZOO_REGISTRY", str(root))
    entry = get_entry("resnet56-gbn70")
    assert entry.status == "published" and entry.widths == model.widths and entry.metrics["top1"] == 12.5
    row = gdzoo.list_models("resnet56-gbn70")[0]
    macs, params = gdzoo.count_flops(model, (3, 32, 32))
    assert (row["macs_value"], row["params_value"]) == (macs, params)
    assert row["reduction"].startswith("-") and "/" in row["reduction"]
    built = gdzoo.create_model("resnet56-gbn70")  # architecture only, random weights
    assert built.widths == model.widths


def test_cli_list_and_info():
    runner = CliRunner()
    listed = runner.invoke(main, ["list"])
    assert listed.exit_code == 0, listed.output
    assert all(name in listed.output for name in NAMES) and "recipe only" in listed.output
    info = runner.invoke(main, ["info", "resnet50-gbn60"])
    assert info.exit_code == 0, info.output
    assert "recipe only" in info.output and "gdzoo reproduce gbn-60" in info.output
    bad = runner.invoke(main, ["info", "resnet50-gbn6"])
    assert bad.exit_code != 0 and "Did you mean 'resnet50-gbn60'" in bad.output


def test_cli_info_of_an_export_folder(tmp_path):
    model = pruned_model("cifar_resnet56", seed=22)
    folder = export(model, tmp_path / "x")
    out = CliRunner().invoke(main, ["info", str(folder)])
    assert out.exit_code == 0, out.output
    macs, params = gdzoo.count_flops(model, (3, 32, 32))
    assert f"MACs:        {macs:,}" in out.output and f"params:      {params:,}" in out.output
    assert "gdzoo reproduce resnet56-70 --preset smoke" in out.output


def test_cli_info_of_a_hub_repo(hub_server, tmp_path):
    from gdzoo.zoo import push_folder

    folder = export(pruned_model("cifar_resnet56", seed=23), tmp_path / "x")
    push_folder(folder, "test-org/info-check")
    out = CliRunner().invoke(main, ["info", "hf-hub:test-org/info-check"])
    assert out.exit_code == 0, out.output
    assert "cifar_resnet56 (pruned widths)" in out.output
    missing = CliRunner().invoke(main, ["info", "hf-hub:test-org/does-not-exist"])
    assert missing.exit_code != 0 and "not found" in missing.output


def test_bundled_export_loads_offline_from_the_package_data(tmp_path, monkeypatch):
    """bundle=True ships the export in data/weights/: the entry loads with no Hub and no cache."""
    root = tmp_path / "data"
    shutil.copytree(data_dir(), root)
    model = pruned_model("cifar_resnet56", seed=23)
    folder = export(model, tmp_path / "run", name="resnet56-gbn70")
    update_from_export("resnet56-gbn70", folder, bundle=True, root=root)
    assert sorted(p.name for p in (root / "weights" / "resnet56-gbn70").iterdir()) == [
        "README.md", "config.json", "model.safetensors"]
    monkeypatch.setenv("GDZOO_REGISTRY", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = get_entry("resnet56-gbn70")
    assert entry.status == "in package" and entry.bundled == root / "weights" / "resnet56-gbn70"
    loaded = gdzoo.load("resnet56-gbn70")
    expected = model.state_dict()
    assert all(torch.equal(loaded.state_dict()[k], expected[k]) for k in expected)
    weights = root / "weights" / "resnet56-gbn70" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(CorruptWeightsError, match="not the registry's pinned"):
        gdzoo.load("resnet56-gbn70")

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import gdzoo
from gdzoo.cli import main
from gdzoo.engine import ticktock
from gdzoo.reproduce import reproduce
from gdzoo.run_folder import RunError

TINY = """
name = "tiny-gbn"
arch = "cifar_resnet20"
seed = 3
[data]
source = "synthetic"
num_classes = 4
image_size = 16
batch_size = 16
eval_batch_size = 32
synthetic_train = 64
synthetic_val = 32
data_description = "synthetic"
dataset = "synthetic"
[baseline]
epochs = 1
lr = 0.05
[prune]
target_macs_ratio = 0.5
fraction_per_tick = 0.1
tick_steps = 2
ticks_per_tock = 2
tock_epochs = 2
tock_steps = 2
[finetune]
epochs = 1
lr = 0.01
"""


@pytest.fixture()
def tiny_recipe(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return str(path)


def _final_masks(out: Path) -> dict:
    state = torch.load(out / "state" / "prune.pt", weights_only=True)
    return {k: v for k, v in state["model"].items() if k.endswith(".mask")}


@pytest.mark.parametrize("recipe, target", [("resnet56-70", 0.30), ("gbn-60", 0.5946), ("gbn-50", 0.4494)])
def test_smoke_presets_export_a_loadable_model_at_target(tmp_path, recipe, target):
    out = tmp_path / "run"
    summary = reproduce(recipe, preset="smoke", out=str(out), device="cpu")
    assert abs(summary["macs_ratio"] - target) <= 0.01
    model = gdzoo.load(str(out / "export"))
    size = summary["input_size"]
    macs, params = gdzoo.count_flops(model, size)
    assert macs == summary["macs"] and params == summary["params"]
    assert abs(macs / summary["baseline_macs"] - target) <= 0.01
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["widths"] == model.widths
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {r["event"] for r in records if r["stage"] == "prune"} >= {"tick", "tock"}


def test_killed_mid_tock_and_resumed_ends_like_an_uninterrupted_run(tmp_path, tiny_recipe, monkeypatch):
    reference = tmp_path / "reference"
    reproduce(tiny_recipe, out=str(reference), device="cpu")

    real = ticktock.train_one_epoch
    tock_calls = []

    def dies_in_second_tock(*args, penalty=None, **kwargs):
        if penalty is not None:
            tock_calls.append(1)
            if len(tock_calls) == 3:  # second Tock's first epoch (Tocks here run 2 epochs)
                raise KeyboardInterrupt("killed mid-Tock")
        return real(*args, penalty=penalty, **kwargs)

    monkeypatch.setattr(ticktock, "train_one_epoch", dies_in_second_tock)
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        reproduce(tiny_recipe, out=str(resumed), device="cpu")
    assert not (resumed / "export").exists()
    state = torch.load(resumed / "state" / "prune.pt", weights_only=True)
    assert state["tocks"] == 1 and not state["done"]
    monkeypatch.setattr(ticktock, "train_one_epoch", real)
    with pytest.raises(RunError, match="already holds this run; pass --resume"):
        reproduce(tiny_recipe, out=str(resumed), device="cpu")
    reproduce(tiny_recipe, out=str(resumed), device="cpu", resume=True)

    expected, got = _final_masks(reference), _final_masks(resumed)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    ref_metrics = json.loads((reference / "metrics.json").read_text())
    res_metrics = json.loads((resumed / "metrics.json").read_text())
    assert res_metrics["widths"] == ref_metrics["widths"]
    ref_weights = load_file(reference / "export" / "model.safetensors")
    res_weights = load_file(resumed / "export" / "model.safetensors")
    assert all(torch.equal(ref_weights[k], res_weights[k]) for k in ref_weights)


def _cli(*args):
    return CliRunner().invoke(main, ["reproduce", *args])


def test_bad_inputs_fail_clearly_without_export(tmp_path, tiny_recipe):
    result = _cli("no-such-recipe", "--out", str(tmp_path / "a"))
    assert result.exit_code == 1 and "unknown recipe 'no-such-recipe'" in result.output

    result = _cli("resnet56-70", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "b"))
    assert result.exit_code == 1 and "missing does not exist; pass --data" in result.output
    assert not (tmp_path / "b" / "export").exists()

    (tmp_path / "empty").mkdir()
    result = _cli("resnet56-70", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "c"))
    assert result.exit_code == 1 and "has no class sub-folders" in result.output

    folder = tmp_path / "three"
    for c in range(3):
        (folder / "train" / f"c{c}").mkdir(parents=True)
        for i in range(3):
            from PIL import Image
            Image.new("RGB", (32, 32)).save(folder / "train" / f"c{c}" / f"{i}.png")
    recipe = tmp_path / "folder.toml"
    recipe.write_text(TINY.replace('source = "synthetic"', 'source = "small-folder"\nval_per_class = 1'))
    result = _cli(str(recipe), "--data", str(folder), "--out", str(tmp_path / "d"))
    assert result.exit_code == 1
    assert f"the data at {folder} has 3 classes but recipe folder expects 4; check --data" in result.output
    assert not (tmp_path / "d" / "export").exists()

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _cli(tiny_recipe, "--out", str(blocker / "run"))
    assert result.exit_code == 1 and "choose a writable --out" in result.output

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = _cli(tiny_recipe, "--out", str(other))
    assert result.exit_code == 1 and "is not an empty folder of a gdzoo run" in result.output
    assert (other / "notes.txt").read_text() == "mine"

    bad_prune = tmp_path / "bad.toml"
    bad_prune.write_text(TINY.replace("fraction_per_tick = 0.1", "fraction_per_tik = 0.1"))
    result = _cli(str(bad_prune), "--out", str(tmp_path / "e"))
    assert result.exit_code == 1 and "unknown key(s) ['fraction_per_tik'] in [prune]" in result.output
    assert not (tmp_path / "e").exists()  # refused before the baseline stage, not hours into the run

    for setting, message in (("epochz = 1", "unknown key(s) ['epochz'] in [finetune]"),
                             ("distill_weight = 1.5", "[finetune] of recipe bad: distill_weight must be in (0, 1]")):
        bad_prune.write_text(TINY.replace("[finetune]\n", f"[finetune]\n{setting}\n"))
        result = _cli(str(bad_prune), "--out", str(tmp_path / "f"))
        assert result.exit_code == 1 and message in result.output
        assert not (tmp_path / "f").exists()


def test_output_folder_of_another_run_is_refused(tmp_path, tiny_recipe):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"recipe": {"recipe": "resnet56-70", "preset": "smoke"}, "seed": 0}))
    with pytest.raises(RunError, match=r"holds another run \(recipe 'resnet56-70', preset 'smoke', seed 0\)"):
        reproduce(tiny_recipe, out=str(out), device="cpu", resume=True)


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="needs torchrun")
def test_torchrun_two_processes_write_one_export(tmp_path, tiny_recipe):
    out = tmp_path / "ddp"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(bin_dir / "torchrun"), "--standalone", "--nproc-per-node", "2",
                             str(bin_dir / "gdzoo"), "reproduce", tiny_recipe, "--out", str(out), "--device", "cpu"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (out / "export").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    summary = json.loads((out / "metrics.json").read_text())
    assert abs(summary["macs_ratio"] - 0.5) <= 0.01
    assert summary["eval_samples"] == 32  # both ranks' halves of the validation split, all-reduced
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len([r for r in records if r["event"] == "done" and r["stage"] == "export"]) == 1  # rank 0 writes


def test_compute_seconds_excludes_the_gap_before_a_resume(tmp_path):
    from gdzoo.run_folder import compute_seconds

    (tmp_path / "run.json").write_text("{}")
    os.utime(tmp_path / "run.json", (100, 100))
    records = [{"time": 101, "event": "start"}, {"time": 130, "event": "tick"}, {"time": 500, "event": "start"},
               {"time": 520, "event": "tock"}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert compute_seconds(tmp_path, now=530) == (130 - 101) + (530 - 500)


@pytest.fixture(scope="module")
def finished_tiny_run(tmp_path_factory) -> Path:
    """One finished run of TINY, shared by the --reuse tests (which only read it)."""
    root = tmp_path_factory.mktemp("finished")
    (root / "tiny.toml").write_text(TINY)
    reproduce(str(root / "tiny.toml"), out=str(root / "run"), device="cpu")
    return root / "run"


def test_reuse_skips_the_stages_whose_inputs_match(tmp_path, finished_tiny_run):
    first = finished_tiny_run
    longer = tmp_path / "longer.toml"
    longer.write_text(TINY.replace("[finetune]\nepochs = 1", "[finetune]\nepochs = 2"))
    second = tmp_path / "second"
    summary = reproduce(str(longer), out=str(second), device="cpu", reuse=str(first))

    events = [json.loads(line) for line in (second / "log.jsonl").read_text().splitlines()]
    assert [e["stages"] for e in events if e["event"] == "reuse"] == [["baseline", "pruned"]]
    assert not [e for e in events if e["stage"] in ("baseline", "prune") and e["event"] != "done"]
    assert [e["index"] for e in events if e["stage"] == "finetune" and e["event"] == "epoch"] == [1, 2]
    assert summary["widths"] == json.loads((first / "metrics.json").read_text())["widths"]
    pruned_first = torch.load(first / "state" / "pruned.pt", weights_only=True)["model"]
    pruned_second = torch.load(second / "state" / "pruned.pt", weights_only=True)["model"]
    assert all(torch.equal(pruned_first[k], pruned_second[k]) for k in pruned_first)


def test_reuse_refuses_runs_with_other_inputs_and_leaves_no_run(tmp_path, tiny_recipe, finished_tiny_run):
    first = finished_tiny_run
    other_data = tmp_path / "other.toml"
    other_data.write_text(TINY.replace("batch_size = 16", "batch_size = 8"))
    out = tmp_path / "second"
    with pytest.raises(RunError, match=r"nothing to reuse, its \[data\] differs from this recipe's"):
        reproduce(str(other_data), out=str(out), device="cpu", reuse=str(first))
    assert list(out.iterdir()) == []
    with pytest.raises(RunError, match="that run used seed 3 and --init scratch, this one seed 4"):
        reproduce(tiny_recipe, out=str(out), device="cpu", seed=4, reuse=str(first))
    result = _cli(tiny_recipe, "--out", str(out), "--reuse", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "no gdzoo run there (run.json missing)" in result.output
    assert list(out.iterdir()) == []


def test_distillation_fine_tunes_with_the_trained_baseline_as_teacher(tmp_path, finished_tiny_run, monkeypatch):
    from gdzoo import distill

    teachers = []

    class Recording(distill.Distillation):
        def __init__(self, teacher, weight, temperature):
            super().__init__(teacher, weight, temperature)
            teachers.append((teacher, weight, temperature))

    monkeypatch.setattr(distill, "Distillation", Recording)
    recipe = tmp_path / "kd.toml"
    recipe.write_text(TINY.replace("[finetune]\n", "[finetune]\ndistill_weight = 0.9\ndistill_temperature = 2.0\n"))
    summary = reproduce(str(recipe), out=str(tmp_path / "kd"), device="cpu", reuse=str(finished_tiny_run))

    [(teacher, weight, temperature)] = teachers
    assert (weight, temperature) == (0.9, 2.0)
    baseline = torch.load(finished_tiny_run / "state" / "baseline.pt", weights_only=True)["model"]
    assert teacher.state_dict().keys() == baseline.keys()
    assert all(torch.equal(teacher.state_dict()[k], baseline[k]) for k in baseline)
    # the card states the schedule that made the weights, distillation included
    provenance = json.loads((tmp_path / "kd" / "export" / "config.json").read_text())["provenance"]
    assert provenance["schedule"]["finetune"] == {"epochs": 1, "lr": 0.01, "distill_weight": 0.9,
                                                  "distill_temperature": 2.0}
    assert provenance["schedule"]["prune"]["fraction_per_tick"] == 0.1
    assert '"distill_weight": 0.9' in (tmp_path / "kd" / "export" / "README.md").read_text()
    # the export's reference MACs are still the unpruned model's
    assert summary["baseline_macs"] == json.loads((finished_tiny_run / "metrics.json").read_text())["baseline_macs"]

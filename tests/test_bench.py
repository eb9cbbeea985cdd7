"""gdzoo.bench: end-to-end run on tiny settings, JSON rows, interleaving, width rounding, BN folding, errors."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import gdzoo
from gdzoo.bench import (REQUIRED_KEYS, BenchConfig, BenchError, MissingWidthsError, Options, Variant, fold_bn,
                         interleaved_order, peak_memory, resolve, resolve_with_baselines, round_widths, run_bench)
from gdzoo.cli import main
from gdzoo.models import create_model, default_widths
from zoo_helpers import export, narrow_widths, pruned_model

TINY = dict(batch_sizes=(1, 2), repeats=2, warmup=1, min_time_s=0.0, threads=1)


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _leaves(w):
    if isinstance(w, dict):
        return [x for k in sorted(w) for x in _leaves(w[k])]
    if isinstance(w, list):
        return [x for v in w for x in _leaves(v)]
    return [w]


def _randomize_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()


# ----- width rounding ------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["cifar_resnet56", "resnet50", "cifar_vgg16"])
def test_round_widths_properties(arch):
    for seed in range(3):
        w = narrow_widths(arch, seed, cap=100)
        before = json.dumps(w)
        r = round_widths(w, arch, 8)
        assert json.dumps(w) == before  # pure: the input is untouched
        create_model(arch, widths=r)  # a valid spec of the same structure
        for orig, new, cap in zip(_leaves(w), _leaves(r), _leaves(default_widths(arch))):
            assert orig <= new <= cap
            assert new % 8 == 0 or new == cap
            assert new - orig < 8
        assert round_widths(r, arch, 8) == r  # idempotent
    assert round_widths(default_widths(arch), arch, 8) == default_widths(arch)
    assert round_widths(w, arch, 1) == w


def test_round_widths_examples_and_errors():
    w = {"stages": [16, 32, 59], "blocks": [[1] * 9, [9] * 9, [64] * 9]}
    assert round_widths(w, "cifar_resnet56", 8) == {"stages": [16, 32, 64], "blocks": [[8] * 9, [16] * 9, [64] * 9]}
    with pytest.raises(ValueError, match="keys"):
        round_widths({"stages": [16, 32, 64]}, "cifar_resnet56", 8)
    with pytest.raises(ValueError, match="list of 9"):
        round_widths({"stages": [16, 32, 64], "blocks": [[1] * 8] * 3}, "cifar_resnet56", 8)
    with pytest.raises(ValueError, match="positive int"):
        round_widths({"stages": [16, 32, 0], "blocks": [[1] * 9] * 3}, "cifar_resnet56", 8)
    with pytest.raises(ValueError, match="multiple"):
        round_widths(w, "cifar_resnet56", 0)


# ----- BN folding ----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,size", [("cifar_resnet20", 32), ("resnet18", 64)])
def test_fold_bn_is_exact(arch, size):
    torch.manual_seed(0)
    model = _randomize_bn(create_model(arch, widths=narrow_widths(arch, 1, cap=24) if arch == "resnet18" else None))
    fused = fold_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        ref, out = model(x), fused(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


# ----- resolving names -----------------------------------------------------------------------------
@pytest.fixture()
def unpruned_zoo(tmp_path, monkeypatch):
    """The packaged registry with resnet56-gbn70's run undone (no widths, no shipped weights), so these
    tests see a pruned entry whose structure is still unknown, whatever the zoo ships today."""
    import shutil

    from gdzoo.zoo.registry import data_dir

    root = tmp_path / "registry"
    shutil.copytree(data_dir(), root)
    shutil.rmtree(root / "weights", ignore_errors=True)
    (root / "widths" / "resnet56-gbn70.json").unlink(missing_ok=True)
    monkeypatch.setenv("GDZOO_REGISTRY", str(root))
    return root


def test_unknown_name_and_missing_widths_errors(tmp_path, unpruned_zoo):
    with pytest.raises(BenchError, match="unknown model 'resnet65'.*Did you mean"):
        resolve("resnet65")
    with pytest.raises(MissingWidthsError, match="gdzoo reproduce resnet56-70.*--widths-from"):
        resolve("resnet56-gbn70")
    bad = tmp_path / "w.json"
    bad.write_text(json.dumps({"arch": "resnet50", "widths": default_widths("resnet50")}))
    with pytest.raises(BenchError, match="structure is resnet50"):
        resolve("resnet56-gbn70", str(bad))
    with pytest.raises(BenchError, match="already has widths"):
        resolve("resnet56", str(bad))
    with pytest.raises(BenchError, match="no config.json"):
        resolve("resnet56-gbn70", str(tmp_path / "nowhere"))
    with pytest.raises(BenchError, match="not among"):
        resolve_with_baselines(["resnet56"], {"resnet50-gbn60": str(bad)})
    result = CliRunner().invoke(main, ["bench", "resnet56-gbn70"])
    assert result.exit_code != 0 and "has no pruned widths yet" in result.output


def test_resolve_baselines_and_sources(tmp_path, unpruned_zoo):
    w = narrow_widths("cifar_resnet56", 0)
    (tmp_path / "widths.json").write_text(json.dumps(w))  # bare widths spec
    vs = resolve_with_baselines(["resnet56-gbn70"], {"resnet56-gbn70": str(tmp_path / "widths.json")}, round_to=8)
    assert [(v.name, v.role, v.baseline) for v in vs] == [
        ("resnet56", "baseline", None), ("resnet56-gbn70", "variant", "resnet56"),
        ("resnet56-gbn70@r8", "variant", "resnet56")]
    assert vs[1].widths == w and "proxy" in vs[1].source and vs[1].weights == "random"
    assert vs[2].widths == round_widths(w, "cifar_resnet56", 8)
    # a requested baseline is timed once; an export folder's baseline is its unpruned arch
    folder = export(pruned_model("cifar_resnet20", seed=2), tmp_path / "exp")
    vs = resolve_with_baselines(["resnet56", str(folder)])
    assert [(v.name, v.role, v.baseline) for v in vs] == [
        ("resnet56", "baseline", None), ("cifar_resnet20 (unpruned)", "baseline", None),
        ("test-variant", "variant", "cifar_resnet20 (unpruned)")]
    assert vs[2].weights == "trained"
    # two runs' exports of one variant are told apart by their folders
    other = export(pruned_model("cifar_resnet20", seed=3), tmp_path / "exp2")
    assert [v.name for v in resolve_with_baselines([str(folder), str(other)])] == [
        "cifar_resnet20 (unpruned)", str(folder), str(other)]
    # a --baseline given as one of the requested folders is timed once
    pair = resolve_with_baselines([str(other), str(folder)], baseline=str(other))
    assert [(v.name, v.role, v.baseline) for v in pair] == [(str(other), "baseline", None),
                                                          (str(folder), "variant", str(other))]
    with pytest.raises(BenchError, match="the same model is named twice"):
        resolve_with_baselines(["resnet56", "resnet56"])
    ref = gdzoo.load(str(folder))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(vs[2].build()(x), ref.eval()(x))


# ----- running -------------------------------------------------------------------------------------
def test_interleaved_order():
    assert interleaved_order("abc", 0) == list("abc")
    assert interleaved_order("abc", 1) == list("cba")
    assert interleaved_order("abc", 2) == list("abc")


def test_run_bench_rows_and_interleaving():
    base = Variant("base", "cifar_resnet20", default_widths("cifar_resnet20"), 10, (3, 32, 32), "random", "test",
                   role="baseline")
    w = narrow_widths("cifar_resnet20", 3)
    small = Variant("small", "cifar_resnet20", w, 10, (3, 32, 32), "random", "test", baseline="base")
    opts = [Options(), Options(fold_bn=True, channels_last=True)]
    rows = run_bench([base, small], BenchConfig(options=opts, **TINY))
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert all(k in r for k in REQUIRED_KEYS)
        assert r["throughput"] > 0 and r["latency_ms"] > 0 and r["device"] == "cpu" and r["threads"] == 1
        assert r["throughput"] == pytest.approx(r["batch_size"] * 1e3 / r["latency_ms"])
        model = create_model("cifar_resnet20", widths=r["widths"])
        assert (r["macs"], r["params"]) == gdzoo.count_flops(model, (3, 32, 32))
        assert r["peak_memory_bytes"] > r["params"] * 4
    by = {(r["name"], r["options"], r["batch_size"]): r for r in rows}
    s = by[("small", "plain", 2)]
    assert s["macs_ratio"] == pytest.approx(by[("base", "plain", 2)]["macs"] / s["macs"])
    assert s["speedup"] == pytest.approx(s["throughput"] / by[("base", "plain", 2)]["throughput"])
    assert by[("small", "fold_bn+channels_last", 1)]["speedup_vs_plain"] > 0
    assert by[("base", "plain", 1)]["speedup"] is None
    assert by[("base", "plain", 2)]["peak_memory_bytes"] > by[("base", "plain", 1)]["peak_memory_bytes"]
    units = [("base", "plain"), ("base", "fold_bn+channels_last"), ("small", "plain"),
             ("small", "fold_bn+channels_last")]
    assert [(n, o) for r_, n, o in run_bench.last_order] == units + units[::-1]


def test_peak_memory_cpu_counts_activations():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 1)).eval()
    x = torch.randn(2, 3, 8, 8)
    peak, how = peak_memory(model, x)
    static = sum(p.numel() * 4 for p in model.parameters()) + x.numel() * 4
    # the first conv's output (2x16x8x8 floats) must be alive while the second conv runs
    assert static + 2 * 16 * 64 * 4 <= peak <= static + (2 * 16 * 64 + 2 * 4 * 64) * 4 * 2
    assert "TorchDispatchMode" in how


def test_cli_end_to_end_writes_json(tmp_path, unpruned_zoo):
    widths = tmp_path / "run"
    export(pruned_model("cifar_resnet56", seed=4), widths / "export", name="resnet56-gbn70")
    out = tmp_path / "rows.json"
    result = CliRunner().invoke(main, [
        "bench", "resnet56-gbn70", "--widths-from", str(widths), "--batch-sizes", "1,2", "--repeats", "1",
        "--warmup", "1", "--threads", "1", "--fold-bn", "--also-plain", "--no-memory", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert {(r["name"], r["options"]) for r in rows} == {
        (n, o) for n in ("resnet56", "resnet56-gbn70") for o in ("plain", "fold_bn")}
    assert all(r["weights"] == "random" and r["throughput"] > 0 and r["peak_memory_bytes"] is None for r in rows)
    pruned = [r for r in rows if r["name"] == "resnet56-gbn70"]
    assert all(r["macs_ratio"] > 1 and r["baseline"] == "resnet56" for r in pruned)
    assert "| resnet56-gbn70 | random | fold_bn | 2 |" in result.output


def test_shipped_entry_is_benchmarked_with_its_trained_weights():
    vs = resolve_with_baselines(["resnet56-gbn70"])
    assert [(v.name, v.role, v.weights) for v in vs] == [
        ("resnet56", "baseline", "trained"), ("resnet56-gbn70", "variant", "trained")]

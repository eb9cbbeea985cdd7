"""gdzoo.load / push_folder against the in-process Hub server (HF_ENDPOINT set by conftest)."""
import hashlib
import json
import uuid
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, try_to_load_from_cache

import gdzoo
from gdzoo.zoo import (ConfigError, CorruptWeightsError, NotPublishedError, RemoteNotFoundError,
                       UnknownModelError, UnsafeWeightsError, WidthsMismatchError, load, push_folder)
from zoo_helpers import export, folder_files, pruned_model, push_files, states_equal


def _repo() -> str:
    return f"test-org/m-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def cifar_export(tmp_path_factory):
    model = pruned_model("cifar_resnet56", seed=1)
    return model, export(model, tmp_path_factory.mktemp("exp") / "r56")


def _cached(cache: Path, repo: str, filename: str, revision: str):
    hit = try_to_load_from_cache(repo, filename, cache_dir=cache, revision=revision)
    return hit if isinstance(hit, str) else None


def test_push_then_load_by_branch_and_sha(hub_server, cifar_export, tmp_path):
    model, folder = cifar_export
    repo = _repo()
    info = push_folder(folder, repo)
    assert HfApi().model_info(repo).sha == info.oid
    for name in (f"hf-hub:{repo}", f"hf-hub:{repo}@{info.oid}", f"hf-hub:{repo}@main"):
        loaded = load(name, cache_dir=tmp_path)
        assert states_equal(loaded.state_dict(), model.state_dict())
    cfg = loaded.pretrained_cfg
    assert cfg["input_size"] == (3, 32, 32) and len(cfg["mean"]) == 3 and cfg["label_names"][0] == "airplane"


def test_older_revision_returns_older_weights(hub_server, tmp_path):
    repo = _repo()
    old, new = pruned_model(seed=2), pruned_model(seed=3)
    first = push_folder(export(old, tmp_path / "old"), repo).oid
    second = push_folder(export(new, tmp_path / "new"), repo).oid
    assert first != second
    cache = tmp_path / "cache"
    assert states_equal(load(f"hf-hub:{repo}", cache_dir=cache).state_dict(), new.state_dict())
    assert states_equal(load(f"hf-hub:{repo}@{first}", cache_dir=cache).state_dict(), old.state_dict())
    assert states_equal(load(f"hf-hub:{repo}", revision=first, cache_dir=cache).state_dict(), old.state_dict())


def test_push_to_a_branch_leaves_main_alone(hub_server, tmp_path):
    repo = _repo()
    a, b = pruned_model(seed=4), pruned_model(seed=5)
    push_folder(export(a, tmp_path / "a"), repo)
    push_folder(export(b, tmp_path / "b"), repo, revision="experiment")
    assert states_equal(load(f"hf-hub:{repo}@experiment", cache_dir=tmp_path / "c").state_dict(), b.state_dict())
    assert states_equal(load(f"hf-hub:{repo}", cache_dir=tmp_path / "c").state_dict(), a.state_dict())


def test_num_classes_reset_and_features_only(hub_server, cifar_export, tmp_path):
    model, folder = cifar_export
    repo = _repo()
    push_folder(folder, repo)
    tuned = load(f"hf-hub:{repo}", num_classes=3, cache_dir=tmp_path).eval()
    assert tuned.fc.out_features == 3 and tuned(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert tuned.pretrained_cfg["num_classes"] == 3 and tuned.pretrained_cfg["label_names"] is None
    body = {k: v for k, v in tuned.state_dict().items() if not k.startswith("fc.")}
    assert states_equal(body, {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")})

    feats = load(f"hf-hub:{repo}", features_only=True, cache_dir=tmp_path).eval()
    outs = feats(torch.randn(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [i["num_chs"] for i in model.feature_info]
    assert [32 // o.shape[-1] for o in outs] == [i["reduction"] for i in model.feature_info]
    assert feats.pretrained_cfg["mean"] == tuned.pretrained_cfg["mean"]


def test_features_only_on_imagenet_resnet(tmp_path):
    model = pruned_model("resnet50", seed=6)
    feats = load(export(model, tmp_path / "r50"), features_only=True, out_indices=(1, 4)).eval()
    outs = feats(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [model.feature_info[1]["num_chs"], model.feature_info[4]["num_chs"]]
    assert [o.shape[-1] for o in outs] == [16, 2]


def test_missing_repo_revision_and_config(hub_server, tmp_path):
    with pytest.raises(RemoteNotFoundError, match="not found"):
        load(f"hf-hub:{_repo()}", cache_dir=tmp_path)
    repo = _repo()
    push_files(repo, {"notes.txt": b"hello"})
    with pytest.raises(RemoteNotFoundError, match="revision 'nope' not found"):
        load(f"hf-hub:{repo}@nope", cache_dir=tmp_path)
    with pytest.raises(RemoteNotFoundError, match="has no config.json"):
        load(f"hf-hub:{repo}", cache_dir=tmp_path)


def test_private_repo_needs_a_token(hub_server, cifar_export, tmp_path):
    repo = _repo()
    HfApi(token="hf_test").create_repo(repo, private=True)
    push_files(repo, folder_files(cifar_export[1]), token="hf_test")
    with pytest.raises(RemoteNotFoundError, match="log in"):
        load(f"hf-hub:{repo}", cache_dir=tmp_path)
    assert load(f"hf-hub:{repo}", cache_dir=tmp_path, token="hf_test") is not None


def test_missing_weights_file_evicts_the_config(hub_server, cifar_export, tmp_path):
    repo = _repo()
    files = folder_files(cifar_export[1])
    sha = push_files(repo, {"config.json": files["config.json"]})
    with pytest.raises(RemoteNotFoundError, match="no model.safetensors"):
        load(f"hf-hub:{repo}", cache_dir=tmp_path)
    assert _cached(tmp_path, repo, "config.json", sha) is None


def test_pickle_only_repo_is_refused_without_unpickling(hub_server, cifar_export, tmp_path):
    repo = _repo()
    files = folder_files(cifar_export[1])
    # Not even a valid pickle: proves gdzoo never tries to read it.
    push_files(repo, {"config.json": files["config.json"], "pytorch_model.bin": b"\x80\x04 not a real pickle"})
    with pytest.raises(UnsafeWeightsError, match="pytorch_model.bin.*never unpickles"):
        load(f"hf-hub:{repo}", cache_dir=tmp_path)
    assert not list(tmp_path.rglob("pytorch_model.bin"))


def test_truncated_weights_fail_the_recorded_sha256_and_are_evicted(hub_server, cifar_export, tmp_path):
    repo = _repo()
    files = folder_files(cifar_export[1])
    files["model.safetensors"] = files["model.safetensors"][:-100]
    sha = push_files(repo, files)
    with pytest.raises(CorruptWeightsError, match="sha256"):
        load(f"hf-hub:{repo}", cache_dir=tmp_path)
    assert _cached(tmp_path, repo, "model.safetensors", sha) is None
    assert not [p for p in (tmp_path).rglob("blobs/*") if p.stat().st_size == len(files["model.safetensors"])]


def test_unparseable_safetensors_without_recorded_sha(hub_server, cifar_export, tmp_path):
    repo = _repo()
    files = folder_files(cifar_export[1])
    cfg = json.loads(files["config.json"])
    del cfg["weights"]
    files.update({"config.json": json.dumps(cfg).encode(), "model.safetensors": files["model.safetensors"][:50]})
    sha = push_files(repo, files)
    with pytest.raises(CorruptWeightsError, match="not a readable safetensors"):
        load(f"hf-hub:{repo}", cache_dir=tmp_path)
    assert _cached(tmp_path, repo, "model.safetensors", sha) is None


def test_widths_that_do_not_match_the_weights(hub_server, cifar_export, tmp_path):
    repo = _repo()
    files = folder_files(cifar_export[1])
    cfg = json.loads(files["config.json"])
    cfg["widths"]["blocks"][0][0] += 1
    files["config.json"] = json.dumps(cfg).encode()
    sha = push_files(repo, files)
    with pytest.raises(WidthsMismatchError, match=r"layer1\.0\.conv1\.weight"):
        load(f"hf-hub:{repo}", cache_dir=tmp_path)
    assert _cached(tmp_path, repo, "model.safetensors", sha) is None
    assert _cached(tmp_path, repo, "config.json", sha) is None


def test_unknown_arch_in_config(hub_server, cifar_export, tmp_path):
    repo = _repo()
    cfg = json.loads(folder_files(cifar_export[1])["config.json"])
    cfg["arch"] = "cifar_resnet57"
    push_files(repo, {"config.json": json.dumps(cfg).encode()})
    with pytest.raises(ConfigError, match="unknown arch 'cifar_resnet57'"):
        load(f"hf-hub:{repo}", cache_dir=tmp_path)


def test_pinned_registry_sha256_is_enforced(hub_server, cifar_export, tmp_path, monkeypatch):
    model, folder = cifar_export
    repo = _repo()
    commit = push_folder(folder, repo).oid
    weights = (folder / "model.safetensors").read_bytes()
    reg = tmp_path / "registry"
    (reg / "entries").mkdir(parents=True)
    (reg / "widths").mkdir()
    (reg / "widths" / "r56-test.json").write_text(json.dumps(model.widths))
    entry = {"name": "r56-test", "arch": "cifar_resnet56", "dataset": "cifar10", "widths": "file",
             "baseline": "resnet56", "description": "test", "metrics": {"top1": 12.5},
             "hub": {"repo_id": repo, "revision": commit, "sha256": hashlib.sha256(weights).hexdigest()},
             "target": None, "recipe": {"command": "gdzoo reproduce resnet56-70"}, "license": "apache-2.0"}
    (reg / "entries" / "r56-test.json").write_text(json.dumps(entry))
    monkeypatch.setenv("GDZOO_REGISTRY", str(reg))
    assert gdzoo.list_models("r56-test")[0]["status"] == "published"
    assert states_equal(load("r56-test", cache_dir=tmp_path / "ok").state_dict(), model.state_dict())

    entry["hub"]["sha256"] = "0" * 64
    (reg / "entries" / "r56-test.json").write_text(json.dumps(entry))
    monkeypatch.setenv("GDZOO_REGISTRY", str(reg) + "/")  # a new value: the registry is re-read
    with pytest.raises(CorruptWeightsError, match="registry's pinned"):
        load("r56-test", cache_dir=tmp_path / "bad")
    assert _cached(tmp_path / "bad", repo, "model.safetensors", commit) is None


def test_unpublished_entry_names_its_reproduce_command():
    with pytest.raises(NotPublishedError, match="not published yet.*gdzoo reproduce gbn-60"):
        gdzoo.load("resnet50-gbn60")
    with pytest.raises(NotPublishedError, match="gdzoo reproduce gbn-50"):
        gdzoo.load("resnet50-gbn50")


def test_unknown_name_lists_close_names():
    with pytest.raises(UnknownModelError, match="Did you mean 'resnet50-gbn60'"):
        gdzoo.load("resnet50-gbn-60")
    with pytest.raises(UnknownModelError, match="hf-hub:someorg/model"):
        gdzoo.load("someorg/model")

"""End to end, as a user runs it: `gdzoo push` then gdzoo.load in a fresh process against a Hub server,
then gdzoo.load in another process with that server stopped and HF_HUB_OFFLINE=1 (huggingface_hub
reads its environment at import, so each phase is its own process)."""
import os
import subprocess
import sys

from safetensors.torch import load_file

from hub_server import HubServer
from zoo_helpers import export, pruned_model, states_equal

PUSH_AND_LOAD = """
import sys, gdzoo
from gdzoo.cli import main
from safetensors.torch import save_file
push, jobs = sys.argv[1] == "push", sys.argv[2:]
for folder, repo, out in zip(jobs[0::3], jobs[1::3], jobs[2::3]):
    if push:
        main(["push", folder, "--repo", repo], standalone_mode=False)
    save_file(gdzoo.load("hf-hub:" + repo).state_dict(), out)
"""


def _run(args, env):
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_push_load_then_offline_load(tmp_path):
    models = {"org/r56-pruned": pruned_model("cifar_resnet56", seed=11),
              "org/r50-pruned": pruned_model("resnet50", seed=12)}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    base_env.update(HF_HOME=str(tmp_path / "home"), HF_HUB_CACHE=str(tmp_path / "cache"),
                    HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_TOKEN="hf_test_token")
    jobs = [(str(export(m, tmp_path / repo.split("/")[1])), repo) for repo, m in models.items()]
    server = HubServer().start()
    try:
        online = [str(tmp_path / f"online{i}.safetensors") for i in range(2)]
        out = _run(["-c", PUSH_AND_LOAD, "push", *[x for (f, r), o in zip(jobs, online) for x in (f, r, o)]],
                   {**base_env, "HF_ENDPOINT": server.url})
    finally:
        server.stop()
    for folder, repo in jobs:
        assert f"pushed {folder} to {repo}@main: commit " in out
    assert "hf_test_token" not in out
    offline = [str(tmp_path / f"offline{i}.safetensors") for i in range(2)]
    _run(["-c", PUSH_AND_LOAD, "load", *[x for (f, r), o in zip(jobs, offline) for x in (f, r, o)]],
         {**base_env, "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "1"})
    for model, a, b in zip(models.values(), online, offline):
        assert states_equal(load_file(a), model.state_dict())
        assert states_equal(load_file(b), model.state_dict())

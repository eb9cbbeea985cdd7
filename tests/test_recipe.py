import pytest

from gdzoo.recipe import RecipeError, list_recipes, load_recipe, take


def _write(tmp_path, text):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return str(path)


BASE = """
name = "mine"
arch = "cifar_resnet20"
[data]
source = "synthetic"
batch_size = 16
[baseline]
epochs = 2
[prune]
[finetune]
epochs = 3
[presets.quick.finetune]
epochs = 1
[presets.quick.data]
batch_size = 8
"""


def test_preset_deep_merges(tmp_path):
    recipe = load_recipe(_write(tmp_path, BASE), preset="quick")
    assert recipe["finetune"] == {"epochs": 1}
    assert recipe["data"] == {"source": "synthetic", "batch_size": 8}
    assert recipe["baseline"] == {"epochs": 2}
    assert "presets" not in recipe and recipe["preset"] == "quick" and recipe["recipe"] == "mine"


def test_unknown_preset_and_recipe(tmp_path):
    with pytest.raises(RecipeError, match="recipe mine has no preset 'fast'; its presets: quick"):
        load_recipe(_write(tmp_path, BASE), preset="fast")
    with pytest.raises(RecipeError, match=r"unknown recipe 'resnet56-71'. Did you mean resnet56-70"):
        load_recipe("resnet56-71")
    with pytest.raises(RecipeError, match="recipe file .*nope.toml does not exist"):
        load_recipe(str(tmp_path / "nope.toml"))


def test_malformed_recipe(tmp_path):
    with pytest.raises(RecipeError, match="is not valid TOML"):
        load_recipe(_write(tmp_path, "name = \n"))
    with pytest.raises(RecipeError, match=r"lacks the \[finetune\] entry"):
        load_recipe(_write(tmp_path, BASE.replace("[finetune]\nepochs = 3\n", "")))


def test_take_refuses_unknown_keys():
    assert take({"lr": 0.5}, {"lr": 0.1, "epochs": 3}, "finetune") == {"lr": 0.5, "epochs": 3}
    with pytest.raises(RecipeError, match=r"unknown key\(s\) \['lrr'\] in \[finetune\]; known keys: epochs, lr"):
        take({"lrr": 0.5}, {"lr": 0.1, "epochs": 3}, "finetune")


def test_shipped_recipes_load_with_their_smoke_preset():
    assert {"gbn-50", "gbn-60", "resnet56-70"} <= set(list_recipes())
    for name in ("gbn-50", "gbn-60", "resnet56-70"):
        recipe = load_recipe(name, preset="smoke")
        assert recipe["data"]["source"] == "synthetic"


def test_preset_extends_another_preset(tmp_path):
    text = BASE + '[presets.quicker]\nextends = "quick"\nfinetune = { epochs = 0 }\nbaseline = { lr = 0.5 }\n'
    recipe = load_recipe(_write(tmp_path, text), preset="quicker")
    assert recipe["finetune"] == {"epochs": 0}
    assert recipe["data"] == {"source": "synthetic", "batch_size": 8}
    assert recipe["baseline"] == {"epochs": 2, "lr": 0.5}
    looped = BASE + '[presets.a]\nextends = "b"\n[presets.b]\nextends = "a"\n'
    with pytest.raises(RecipeError, match="preset 'a' of recipe mine extends itself through a -> b -> a"):
        load_recipe(_write(tmp_path, looped), preset="a")
    dangling = BASE + '[presets.a]\nextends = "fast"\n'
    with pytest.raises(RecipeError, match="recipe mine has no preset 'fast'; its presets: a, quick"):
        load_recipe(_write(tmp_path, dangling), preset="a")


def test_resnet56_ablation_presets_share_the_cpu_schedule():
    cpu = load_recipe("resnet56-70", preset="cpu")
    one_shot = load_recipe("resnet56-70", preset="cpu-one-shot")
    tick_only = load_recipe("resnet56-70", preset="cpu-tick-only")
    assert (one_shot["prune"]["mode"], tick_only["prune"]["mode"]) == ("one_shot", "tick_only")
    # Tick-Tock's full-model epochs (Tocks) move to fine-tuning; gates-only batches stay the same
    assert one_shot["finetune"]["epochs"] == tick_only["finetune"]["epochs"] == 8
    assert cpu["finetune"]["epochs"] == 5 and cpu["prune"]["tock_epochs"] == 1
    assert tick_only["prune"]["tick_steps"] == cpu["prune"]["tick_steps"] == 20
    assert one_shot["prune"]["tick_steps"] == 320
    assert one_shot["data"] == tick_only["data"] == cpu["data"]

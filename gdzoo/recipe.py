"""Recipes: declarative TOML files that regenerate a zoo variant, with named presets.

A recipe names the architecture, the data, and the settings of each stage (``baseline``,
``prune``, ``finetune``); ``[presets.NAME]`` tables override any of them (deep merge), e.g. the
``smoke`` preset that runs the whole pipeline on synthetic data in under a minute on CPU.
See ``recipes/README.md`` for every key.
"""
from __future__ import annotations

import copy
import difflib
import sys
from pathlib import Path
from typing import Any, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class RecipeError(ValueError):
    """An unknown or malformed recipe; the message names the key or file to fix."""


def recipes_dir() -> Path:
    """Folder of the shipped recipes: inside the installed wheel, or the source checkout's."""
    packaged = Path(__file__).resolve().parent / "recipes"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "recipes"


def list_recipes() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.toml"))


def _merge(base: dict, override: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_toml(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"recipe {path} is not valid TOML: {error}") from error


def resolve_recipe_path(name_or_path: str) -> Path:
    """A path to a .toml file, or the name of a shipped recipe."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        return path
    shipped = recipes_dir() / f"{name_or_path}.toml"
    if not shipped.is_file():
        close = difflib.get_close_matches(name_or_path, list_recipes(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise RecipeError(f"unknown recipe {name_or_path!r}.{hint} Shipped recipes: {', '.join(list_recipes())}; "
                          f"or pass a path to a .toml file")
    return shipped


def _load_raw(path: Path, seen: tuple = ()) -> dict:
    """A recipe file merged over the recipe it ``extends`` (a shipped name or a path beside it)."""
    if path.resolve() in seen:
        raise RecipeError(f"recipe {path} extends itself through {' -> '.join(str(p) for p in seen)}")
    raw = load_toml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    beside = path.parent / f"{parent}.toml"
    base = _load_raw(beside if beside.is_file() else resolve_recipe_path(parent), (*seen, path.resolve()))
    return _merge(base, raw)


def _preset_table(presets: dict, name: str, recipe: str, seen: tuple = ()) -> dict:
    """A preset merged over the preset it ``extends`` (e.g. an ablation of the ``cpu`` schedule)."""
    if name not in presets:
        raise RecipeError(f"recipe {recipe} has no preset {name!r}; its presets: {', '.join(sorted(presets)) or 'none'}")
    if name in seen:
        raise RecipeError(f"preset {name!r} of recipe {recipe} extends itself through {' -> '.join((*seen, name))}")
    table = dict(presets[name])
    parent = table.pop("extends", None)
    return table if parent is None else _merge(_preset_table(presets, parent, recipe, (*seen, name)), table)


def load_recipe(name_or_path: str, preset: Optional[str] = None, overrides: Optional[dict] = None) -> dict:
    """The recipe as a dict with ``preset`` applied and its presets table removed."""
    path = resolve_recipe_path(name_or_path)
    raw = _load_raw(path)
    presets = raw.pop("presets", {})
    recipe = raw
    if preset is not None:
        recipe = _merge(recipe, _preset_table(presets, preset, path.stem))
    if overrides:
        recipe = _merge(recipe, overrides)
    recipe["recipe"] = path.stem
    recipe["preset"] = preset
    for key in ("name", "arch", "data", "baseline", "prune", "finetune"):
        if key not in recipe:
            raise RecipeError(f"recipe {path} lacks the [{key}] entry" if key in ("data", "baseline", "prune", "finetune")
                              else f"recipe {path} lacks the top-level key {key!r}")
    return recipe


def take(table: dict[str, Any], defaults: dict[str, Any], where: str) -> dict[str, Any]:
    """``defaults`` updated by ``table``, refusing keys that ``defaults`` does not know."""
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise RecipeError(f"unknown key(s) {unknown} in [{where}]; known keys: {', '.join(sorted(defaults))}")
    return {**defaults, **table}

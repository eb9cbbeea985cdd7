"""``gdzoo list``, ``gdzoo info`` and ``gdzoo push``."""
from __future__ import annotations

import json

import click

from .errors import ZooLoadError
from .hubconfig import ConfigError


@click.command("list")
@click.argument("pattern", required=False)
def list_command(pattern: str | None) -> None:
    """Show the zoo: name, dataset, top-1, MACs, params, reduction vs baseline, status."""
    from .listing import list_models

    click.echo(str(list_models(pattern)))


@click.command("info")
@click.argument("name")
def info_command(name: str) -> None:
    """Print a model's essentials: a zoo NAME, hf-hub:ORG/REPO[@REV] or an export folder."""
    from .loading import fetch_config, resolve
    from .registry import UnknownModelError

    try:
        source = resolve(name)
        if source.entry is not None:
            _echo_entry(source.entry)
            return
        _echo_config(fetch_config(source), source.label)
    except (UnknownModelError, ZooLoadError, ConfigError, ValueError) as e:
        raise click.ClickException(str(e)) from None


def _echo_entry(entry) -> None:
    from .datasets import get_dataset
    from .listing import list_models

    row = next(r for r in list_models() if r["name"] == entry.name)
    lines = [
        f"name:        {entry.name}",
        f"status:      {entry.status}",
        f"description: {entry.description}",
        f"arch:        {entry.arch} ({'widths not known yet' if entry.widths is None else 'widths shipped'})",
        f"dataset:     {get_dataset(entry.dataset).pretty}",
        f"top-1:       {row['top1']}" + (f"  ({entry.metrics['top1_source']})" if entry.metrics.get("top1_source") else ""),
        f"MACs:        {row['macs']}",
        f"params:      {row['params']}",
        f"vs baseline: {row['reduction']}" + (f" ({entry.baseline})" if entry.baseline else ""),
        f"hub:         {entry.repo_id}@{entry.revision or '(not published)'}",
        f"sha256:      {entry.sha256 or '—'}",
        f"reproduce:   {entry.reproduce or entry.recipe.get('description', '—')}",
    ]
    if entry.bundled is not None:  # the shipped weights may come from a preset of the recipe
        made_by = json.loads((entry.bundled / "config.json").read_text()).get("reproduce")
        lines.append(f"shipped by:  {made_by or '—'}")
    click.echo("\n".join(lines))


def _echo_config(cfg: dict, label: str) -> None:
    m = cfg["metrics"]
    red = cfg.get("reduction")
    lines = [
        f"source:      {label}",
        f"name:        {cfg['name']}",
        f"arch:        {cfg['arch']} ({'pruned' if cfg.get('pruned') else 'default'} widths)",
        f"dataset:     {cfg['dataset']} ({cfg['num_classes']} classes, input {'x'.join(map(str, cfg['input_size']))})",
        f"mean/std:    {cfg['mean']} / {cfg['std']}",
        f"top-1:       {m.get('top1', '—')}" + (f"  ({m['eval_notes']})" if m.get("eval_notes") else ""),
        f"MACs:        {m['macs']:,}",
        f"params:      {m['params']:,}",
    ]
    if red:
        lines.append(f"vs baseline: MACs -{100 * red['macs']:.2f}%, params -{100 * red['params']:.2f}% "
                     f"({red['baseline']})")
    lines += [f"reproduce:   {cfg.get('reproduce') or '—'}",
              f"weights:     {cfg.get('weights', {}).get('sha256', '—')}",
              f"gdzoo:       {cfg.get('gdzoo_version')}",
              f"provenance:  {json.dumps(cfg.get('provenance', {}), sort_keys=True)}"]
    click.echo("\n".join(lines))


@click.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--repo", "repo_id", required=True, help="ORG/NAME on the Hub (created if missing).")
@click.option("--revision", default=None, help="Branch to commit to (created if missing); default main.")
@click.option("--private", is_flag=True, help="Create the repo private.")
def push_command(folder: str, repo_id: str, revision: str | None, private: bool) -> None:
    """Publish an export FOLDER (config.json, model.safetensors, README.md) to the Hub.

    The token comes from huggingface_hub's usual sources (HF_TOKEN, `hf auth login`); it is never printed.
    """
    from huggingface_hub.errors import HfHubHTTPError

    from .push import push_folder

    try:
        info = push_folder(folder, repo_id, revision=revision, private=private)
    except (ConfigError, ZooLoadError, FileNotFoundError, HfHubHTTPError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"pushed {folder} to {repo_id}@{revision or 'main'}: commit {info.oid}")
    click.echo(f"load it with: gdzoo.load('hf-hub:{repo_id}@{info.oid}')")

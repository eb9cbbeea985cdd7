"""``gdzoo reproduce`` command."""
from __future__ import annotations

import json

import click

from .data import DataError
from .recipe import RecipeError
from .reproduce import reproduce
from .run_folder import RunError


@click.command("reproduce")
@click.argument("recipe")
@click.option("--data", "data_path", type=click.Path(), help="Data folder (ImageFolder tree); default: the recipe's source.")
@click.option("--out", type=click.Path(), help="Output folder; default runs/<recipe>[-<preset>].")
@click.option("--preset", help="A [presets.NAME] table of the recipe, e.g. smoke or cpu.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--push", "push_repo", metavar="ORG/NAME", help="Publish the export to this Hub repo when done.")
@click.option("--device", help="cpu, cuda, cuda:1 ...; default: cuda if available (under torchrun: cuda:LOCAL_RANK).")
@click.option("--init", help="Baseline to start from: scratch, torchvision, a zoo name, hf-hub:ORG/NAME or an export folder.")
@click.option("--seed", type=int, help="Overrides the recipe's seed.")
@click.option("--amp", type=click.Choice(["auto", "off", "bf16", "fp16"]), default="auto", show_default=True,
              help="Autocast dtype; auto = bf16 on CUDA, off on CPU.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model for training.")
@click.option("--reuse", type=click.Path(), metavar="RUN_DIR",
              help="Copy the finished stages of an earlier run whose inputs match (e.g. to fine-tune longer "
                   "without pruning again).")
def reproduce_command(recipe, data_path, out, preset, resume, push_repo, device, init, seed, amp, channels_last,
                      compile_, reuse):
    """Regenerate a zoo variant end to end from RECIPE (a shipped recipe name or a .toml path).

    Stages: baseline -> gates -> Tick-Tock -> melt -> fine-tune -> evaluate -> export (+ push).
    Launch with torchrun for several processes (only rank 0 writes).
    """
    try:
        summary = reproduce(recipe, data_path=data_path, out=out, preset=preset, resume=resume, push=push_repo,
                            device=device, init=init, seed=seed, amp=amp, channels_last=channels_last,
                            compile=compile_, reuse=reuse)
    except (RunError, RecipeError, DataError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps({k: summary[k] for k in ("variant", "top1", "macs_ratio", "params_ratio", "wall_time_s")}))

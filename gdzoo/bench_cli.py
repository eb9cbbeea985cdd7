"""``gdzoo bench`` command."""
from __future__ import annotations

import click

from .bench import (BenchConfig, BenchError, Options, format_table, resolve_with_baselines, run_bench,
                    write_json)


def _ints(value: str) -> list[int]:
    try:
        out = [int(v) for v in value.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter(f"expected integers like 1,256, got {value!r}") from None
    if not out or any(v < 1 for v in out):
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return out


@click.command("bench")
@click.argument("names", nargs=-1, required=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--batch-sizes", default="1,256", show_default=True,
              help="Comma-separated; the largest gives throughput, 1 gives latency.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True)
@click.option("--fold-bn", is_flag=True, help="Fold BatchNorm into the convs (torch.fx fuse).")
@click.option("--channels-last", is_flag=True, help="channels_last model and inputs.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the models (slow to compile on CPU).")
@click.option("--also-plain", is_flag=True,
              help="Also time every model without --fold-bn/--channels-last/--compile in the same interleaved run.")
@click.option("--threads", type=int, help="torch.set_num_threads (CPU).")
@click.option("--repeats", type=int, default=7, show_default=True, help="Interleaved rounds; medians are reported.")
@click.option("--warmup", type=int, default=2, show_default=True, help="Untimed forwards per model and batch size.")
@click.option("--widths-from", "widths_from", multiple=True, metavar="[NAME=]PATH",
              help="Structure for a pruned zoo entry without widths: an export folder, a `gdzoo reproduce` "
                   "run folder or a widths JSON (timed as a labelled proxy). Bare PATH: for the only NAME.")
@click.option("--baseline", help="Baseline to compare with (default: the entry's baseline / the unpruned arch).")
@click.option("--round-to", type=int, help="Also time each pruned structure with widths rounded up to this multiple.")
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory measurement.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the result rows here.")
def bench_command(names, device, batch_sizes, dtype, fold_bn, channels_last, compile_, also_plain, threads, repeats,
                  warmup, widths_from, baseline, round_to, no_memory, json_path):
    """Inference speed of NAMES (zoo entries, export folders or arch names) against their baselines.

    Every model and its baseline are timed in one interleaved run (warm-up, then REPEATS rounds in
    alternating order; medians). Models without published weights are timed with random weights.
    """
    sources = {}
    for item in widths_from:
        name, sep, path = item.partition("=")
        if not sep:
            if len(names) != 1:
                raise click.BadParameter("with several NAMES write --widths-from NAME=PATH", param_hint="--widths-from")
            name, path = names[0], item
        sources[name] = path
    opts = Options(fold_bn=fold_bn, channels_last=channels_last, compile=compile_)
    options = [Options(), opts] if also_plain and opts != Options() else [opts]
    try:
        variants = resolve_with_baselines(list(names), sources, baseline=baseline, round_to=round_to)
        cfg = BenchConfig(batch_sizes=_ints(batch_sizes), device=device, dtype=dtype, options=options, threads=threads,
                          repeats=repeats, warmup=warmup, memory=not no_memory)
        for v in variants:
            click.echo(f"{v.role:8s} {v.name}: {v.source} ({v.weights} weights)", err=True)
        rows = run_bench(variants, cfg, log=lambda s: click.echo(s, err=True))
    except BenchError as error:
        raise click.ClickException(str(error)) from error
    click.echo(format_table(rows))
    r0 = rows[0]
    click.echo(f"\n{r0['env_date']}, torch {r0['env_torch']}, {r0['device']}, {r0['threads']} threads, "
               f"load average {r0['env_loadavg']} -> {r0['env_loadavg_after']}")
    if json_path:
        write_json(rows, json_path)
        click.echo(f"wrote {len(rows)} rows to {json_path}", err=True)

"""Convert the Gate Decorator authors' CIFAR ResNet checkpoints into gdzoo exports.

The authors (youzhonghui/gate-decorator-pruning, Apache-2.0) release plain state dicts and *gated*
ones, where every BN ``<bn>`` became ``<bn>.g`` (gate), ``<bn>.bn_mask`` and ``<bn>.bn.*`` with
forward ``bn(x) * g * bn_mask``. A gated checkpoint is still full width; it is loaded into
``decorate``-d gdzoo modules and melted by the engine, so the export is the small plain model with
the same function. Only ``torch.load(weights_only=True)`` is used: nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import click
import numpy as np
import torch
from torch import nn

from .data import CIFAR10_MEAN, CIFAR10_STD, DataError, ImageTensors, TensorLoader, load_validation_split
from .engine.gates import decorate
from .engine.graph import ChannelGraph, build_graph
from .engine.melt import melt
from .models import create_model
from .models.cifar_resnet import DEPTHS
from .zoo.datasets import CIFAR10_LABELS
from .zoo.export import export_model, sha256_file

UPSTREAM_REPO = "youzhonghui/gate-decorator-pruning"
UPSTREAM_LICENSE = "Apache-2.0"
EVAL_SPLIT = "cifar10-jpeg val (last 500/class)"
TRAINING_DATA = ("all 50,000 original CIFAR-10 training images (the authors'), which include the 5,000 validation "
                 "images of the CIFAR-10 JPEG split: accuracy of this model or any model started from it is "
                 "optimistic on that split")
LEAKAGE_NOTE = ("Top-1 on the 5,000 validation images of the CIFAR-10 JPEG-q75 folder (files 4500-4999.jpg of "
                "each class), single 32x32 view, mean/std {mean}/{std}. Optimistic: the authors trained on all "
                "50k original CIFAR-10 training images, which include these images (in lossless form); JPEG "
                "re-encoding is a domain gap that lowers accuracy. Not comparable to CIFAR-10 test-set numbers.")
_GATED_SUFFIXES = (".g", ".bn_mask", ".score", ".area")
_BLOCK_KEY = re.compile(r"^layer([123])\.(\d+)\.conv1\.weight$")

StateDict = Mapping[str, torch.Tensor]


class UpstreamCheckpointError(ValueError):
    """A checkpoint gdzoo cannot convert; the message names the problem and the fix."""


def load_checkpoint(path: Union[str, os.PathLike]) -> dict[str, torch.Tensor]:
    """Load ``path`` with ``weights_only=True``: a checkpoint that needs more is refused, never unpickled."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UpstreamCheckpointError(f"{path}: no such file; pass the path of an authors' .ckp state dict") from None
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise UpstreamCheckpointError(f"{path} is not a readable torch checkpoint ({err})") from None
        raise UpstreamCheckpointError(
            f"{path} is not a weights-only checkpoint: loading it would unpickle Python objects, which gdzoo "
            "refuses. Fix: in an environment you trust, load it and save only its tensors, e.g. "
            "torch.save(model.state_dict(), 'clean.ckp'), then convert that file") from None
    except Exception as err:  # noqa: BLE001 - torch raises KeyError/RuntimeError/EOFError on non-checkpoints
        raise UpstreamCheckpointError(f"{path} is not a readable torch checkpoint ({type(err).__name__}: "
                                      f"{err}); pass a state dict saved with torch.save") from None
    return _as_state_dict(obj, str(path))


def _as_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise UpstreamCheckpointError(f"{source}: expected a non-empty state dict (name -> tensor), got "
                                      f"{type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise UpstreamCheckpointError(
            f"{source}: entries {bad[:5]} are not tensors, so this is not a flat state dict (a training "
            "checkpoint wrapping one?). Fix: pass the inner state dict, e.g. ckp['state_dict']")
    return dict(obj)


def is_gated(state_dict: StateDict) -> bool:
    """True for the authors' gated form (any ``<bn>.g`` / ``<bn>.bn_mask`` / ``<bn>.bn.*`` key)."""
    return any(k.endswith(_GATED_SUFFIXES) or ".bn." in k for k in state_dict)


def _gdzoo_name(key: str) -> Optional[str]:
    """gdzoo state-dict name of an upstream key (None: bookkeeping that is dropped)."""
    if key.endswith((".score", ".area")):
        return None
    key = key.replace(".shortcut.", ".downsample.")
    key = re.sub(r"^linear\.", "fc.", key)
    key = re.sub(r"\.bn\.(weight|bias|running_mean|running_var|num_batches_tracked)$", r".\1", key)
    return re.sub(r"\.g$", ".gate", re.sub(r"\.bn_mask$", ".mask", key))


def _upstream_name(key: str, gated: bool) -> str:
    """Inverse of :func:`_gdzoo_name`, for error messages in the checkpoint's own terms."""
    key = re.sub(r"^fc\.", "linear.", key.replace(".downsample.", ".shortcut."))
    if gated:
        key = re.sub(r"\.(weight|bias|running_mean|running_var|num_batches_tracked)$",
                     lambda m: m.group(0) if "conv" in key or key.startswith("linear") or ".shortcut.0." in key
                     else f".bn.{m.group(1)}", key)
        key = re.sub(r"\.gate$", ".g", re.sub(r"\.mask$", ".bn_mask", key))
    return key


def _arch_and_widths(sd: StateDict) -> tuple[str, dict, int]:
    """Depth from the number of blocks, widths from the tensor shapes (so pre-sliced models work too)."""
    blocks: dict[int, list[int]] = {1: [], 2: [], 3: []}
    for key in sd:
        m = _BLOCK_KEY.match(key)
        if m:
            blocks[int(m.group(1))].append(int(m.group(2)))
    counts = [len(v) for v in blocks.values()]
    n = counts[0]
    if n == 0 or len(set(counts)) != 1 or any(sorted(v) != list(range(n)) for v in blocks.values()):
        raise UpstreamCheckpointError(
            f"unknown key layout: expected layer{{1,2,3}}.{{i}}.conv1.weight for i = 0..n-1 in each of 3 "
            f"stages (CIFAR ResNet), found block counts {counts}. Fix: convert only CIFAR ResNet state dicts "
            f"of the authors' repo ({', '.join(f'resnet{d}' for d in DEPTHS)})")
    depth = 6 * n + 2
    if depth not in DEPTHS:
        raise UpstreamCheckpointError(f"{n} blocks per stage is CIFAR ResNet-{depth}, which gdzoo does not "
                                      f"define; supported depths: {', '.join(map(str, DEPTHS))}")
    try:
        widths = {"stages": [int(sd[f"layer{s}.0.conv2.weight"].shape[0]) for s in (1, 2, 3)],
                  "blocks": [[int(sd[f"layer{s}.{i}.conv1.weight"].shape[0]) for i in range(n)] for s in (1, 2, 3)]}
        num_classes = int(sd["linear.weight"].shape[0])
    except KeyError as err:
        raise UpstreamCheckpointError(f"missing key {err.args[0]!r}: not a complete CIFAR ResNet state dict "
                                      "of the authors' layout; pass the whole checkpoint") from None
    return f"cifar_resnet{depth}", widths, num_classes


def build_model(state_dict: StateDict) -> nn.Module:
    """The gdzoo CIFAR ResNet holding ``state_dict``'s weights: plain, or decorated for the gated form."""
    sd = _as_state_dict(state_dict, "state dict")
    gated = is_gated(sd)
    arch, widths, num_classes = _arch_and_widths(sd)
    model = create_model(arch, widths=widths, num_classes=num_classes)
    if gated:
        decorate(model)
    expected = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        name = _gdzoo_name(key)
        if name is None:
            continue
        if name not in expected:
            unknown.append(key)
            continue
        mapped[name] = value.reshape(-1) if name.endswith((".gate", ".mask")) else value
    if unknown:
        raise UpstreamCheckpointError(
            f"unknown key(s) for a {'gated' if gated else 'plain'} {arch}: {unknown[:5]}"
            f"{' ...' if len(unknown) > 5 else ''}. Fix: pass an unmodified checkpoint of the authors' repo "
            f"({UPSTREAM_REPO}); keys are conv1, bn1, layer{{1,2,3}}.{{i}}.conv/bn{{1,2}}, "
            "layer{2,3}.0.shortcut.{0,1}, linear, with <bn>.g/.bn_mask/.bn.* in gated form")
    missing = [_upstream_name(k, gated) for k in expected if k not in mapped]
    if missing:
        raise UpstreamCheckpointError(
            f"missing key(s) for a {'gated' if gated else 'plain'} {arch}: {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}. Fix: pass the complete checkpoint (in gated form every "
            "BN needs .g, .bn_mask and .bn.{weight,bias,running_mean,running_var,num_batches_tracked})")
    bad_masks = [_upstream_name(k, True) for k, v in mapped.items()
                 if k.endswith(".mask") and not bool(((v == 0) | (v == 1)).all())]
    if bad_masks:
        raise UpstreamCheckpointError(f"{bad_masks[:5]} hold values other than 0 and 1; a bn_mask must be 0/1")
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise UpstreamCheckpointError(f"tensor shapes do not fit {arch} with widths inferred from the conv "
                                      f"weights: {err}. Fix: pass an unmodified checkpoint") from None
    return model.eval()


def check_shared_masks(graph: ChannelGraph) -> None:
    """Raise if BNs the graph ties together (residual additions) disagree on a channel's mask.

    Melting such a model would not be exact: a channel dropped in one member still flows through another.
    """
    for group in graph.groups:
        for unit in group.units:
            kept, pruned, channel = [], [], None
            for name in group.members:
                channels = np.flatnonzero(graph.bn_units[name] == unit)
                bits = graph.gated[name].mask.detach().cpu().numpy()[channels] != 0
                if bits.any():
                    kept.append(_upstream_name(name, True))
                if not bits.all():
                    pruned.append(_upstream_name(name, True))
                if channel is None and channels.size:
                    channel = int(channels[0])
            if kept and pruned:
                raise UpstreamCheckpointError(
                    f"inconsistent masks in a BN group joined by residual additions: channel {channel} is kept "
                    f"by {kept} but pruned by {pruned}. BNs whose outputs are added must share one bn_mask, "
                    "else the pruned model cannot be built exactly. Fix: set one mask for the whole group in "
                    "the source model (e.g. the AND of the members' masks), fine-tune, and re-save")
    unprunable = [_upstream_name(name, True) for name, m in graph.gated.items()
                  if bool(((graph.bn_units[name] < 0) & (m.mask.detach().cpu().numpy() == 0)).any())]
    if unprunable:
        raise UpstreamCheckpointError(f"{unprunable} mask channels that feed the input or output directly and "
                                      "cannot be removed; unmask them in the source model")


def _check_widths(graph: ChannelGraph) -> None:
    empty = sorted(name for name, width in graph.kept_channels().items() if width == 0)
    if empty:
        raise UpstreamCheckpointError(
            f"every channel of {[_upstream_name(n, True) for n in empty]} is masked: that removes a whole layer, "
            "which a gdzoo CIFAR ResNet cannot represent (widths must be >= 1). Fix: keep at least one channel")


def melt_gated(model: nn.Module) -> nn.Module:
    """Melt a model built by :func:`build_model` from a gated checkpoint, after checking its masks."""
    graph = build_graph(model, (3, 32, 32))
    check_shared_masks(graph)
    _check_widths(graph)
    melted = melt(model, graph=graph).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, out = model(x), melted(x)
    if not torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max())):
        raise RuntimeError(f"melted model differs from the gated one by {float((out - ref).abs().max()):.3g}; "
                           "this is a gdzoo engine bug, please report it with the checkpoint")
    return melted


def measure_top1(model: nn.Module, val: ImageTensors, batch_size: int = 500) -> dict[str, float]:
    """Top-1/top-5 (percent) with the authors' normalisation, after checking the class order."""
    from .training import evaluate

    if list(val.classes) != list(CIFAR10_LABELS):
        raise UpstreamCheckpointError(f"data classes {val.classes} are not CIFAR-10's {list(CIFAR10_LABELS)} "
                                      "in label order; pass the CIFAR-10 ImageFolder tree")
    loader = TensorLoader(val, batch_size, train=False, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    result = evaluate(model, loader.epoch(0), disable_progress=True)
    return {"top1": 100 * result["top1"], "top5": 100 * result["top5"], "samples": result["samples"]}


def convert_upstream(
    source: Union[str, os.PathLike, StateDict],
    out_dir: Union[str, os.PathLike],
    *,
    data: Union[str, os.PathLike, ImageTensors, None] = None,
    name: Optional[str] = None,
    overwrite: bool = False,
) -> Path:
    """Convert an authors' checkpoint (path or state dict, plain or gated) into a gdzoo export folder.

    ``data``: a CIFAR-10 ImageFolder tree (or its decoded validation :class:`ImageTensors`) to measure
    top-1 on; without it the export makes no accuracy claim. ``name`` defaults to ``out_dir``'s name.
    Everything is checked before anything is written; the folder appears complete or not at all.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    if isinstance(source, Mapping):
        sd, origin = _as_state_dict(source, "state dict"), {"source_file": None, "source_sha256": None}
    else:
        sd = load_checkpoint(source)
        origin = {"source_file": Path(source).name, "source_sha256": sha256_file(Path(source))}
    gated = is_gated(sd)
    model = build_model(sd)
    if gated:
        model = melt_gated(model)
    metrics: dict[str, Any] = {"eval_notes": "Accuracy not measured at conversion (no validation data given); "
                                             "gdzoo makes no accuracy claim for these weights."}
    if data is not None:
        val = data if isinstance(data, ImageTensors) else load_validation_split(data)
        measured = measure_top1(model, val)
        metrics = {"top1": measured["top1"], "top5": measured["top5"], "eval_split": EVAL_SPLIT,
                   "eval_notes": LEAKAGE_NOTE.format(mean=CIFAR10_MEAN, std=CIFAR10_STD)}
    provenance = {
        **origin,
        "source_form": "gated (bn(x) * g * bn_mask), melted by gdzoo.engine" if gated else "plain state dict",
        "upstream_repo": UPSTREAM_REPO,
        "upstream_url": f"https://github.com/{UPSTREAM_REPO}",
        "upstream_license": UPSTREAM_LICENSE,
        "training_data": TRAINING_DATA,
        "converted_by": "gdzoo.upstream.convert_upstream",
    }
    summary = (f"The Gate Decorator authors' {'pruned' if gated else 'unpruned'} CIFAR-10 `{model.arch}` "
               f"({UPSTREAM_REPO}, {UPSTREAM_LICENSE}), converted to gdzoo"
               f"{' by melting its gates and masks into a smaller plain model with the same function' if gated else ''}.")
    return export_model(model, out, name=name or out.name, dataset="cifar10", metrics=metrics,
                        provenance=provenance, mean=CIFAR10_MEAN, std=CIFAR10_STD, license="apache-2.0",
                        summary=summary, overwrite=overwrite)


@click.command("convert-upstream")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Export folder to create (must not exist unless --overwrite).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="CIFAR-10 ImageFolder tree; top-1 is measured on its last 500 files per class.")
@click.option("--name", default=None, help="Variant name in config.json and the card (default: the folder name).")
@click.option("--overwrite", is_flag=True, help="Replace an existing export folder atomically.")
def convert_upstream_command(checkpoint: Path, out_dir: Path, data: Optional[Path], name: Optional[str],
                             overwrite: bool) -> None:
    """Convert a Gate Decorator authors' CIFAR ResNet checkpoint (plain or gated) into a gdzoo export."""
    try:
        out = convert_upstream(checkpoint, out_dir, data=data, name=name, overwrite=overwrite)
    except (UpstreamCheckpointError, FileExistsError, DataError) as err:
        raise click.ClickException(str(err)) from None
    cfg = json.loads((out / "config.json").read_text())
    top1 = cfg["metrics"].get("top1")
    click.echo(f"wrote {out}: {cfg['arch']} widths {json.dumps(cfg['widths'])}")
    click.echo(f"MACs {cfg['metrics']['macs']:,}  params {cfg['metrics']['params']:,}  "
               + (f"top1 {top1:.2f}% on {cfg['metrics']['eval_split']} (optimistic: see the card)"
                  if top1 is not None else "top1 not measured (pass --data)"))

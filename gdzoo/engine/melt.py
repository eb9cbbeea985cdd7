"""Melt: turn a gated, masked model into the plain, smaller model with the same function (the *how*).

Gate*mask is folded into each BN's affine (:func:`undecorate`), then every masked unit's channels
are dropped from each conv (incl. depthwise groups), BN and linear the traced graph says they
touch. gdzoo models are rebuilt with ``create_model(arch, widths=...)`` and the sliced weights
loaded strictly, so the result is a normal zoo model; other models are edited in place.
"""
from __future__ import annotations

import copy
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..models import create_model, default_input_size, is_gdzoo_model
from ..models.cifar_resnet import CifarResNet
from ..models.resnet import _LAYERS, ResNet
from ..models.vgg import CifarVGG
from .gates import undecorate, unwrap
from .graph import ChannelGraph, build_graph


def _graph_for(model: nn.Module, graph: Optional[ChannelGraph],
               example: Union[torch.Tensor, Sequence[int], None]) -> ChannelGraph:
    if graph is not None:
        return graph
    if example is None:
        if not is_gdzoo_model(model):
            raise ValueError("pass graph= or example= (an input tensor or (C, H, W)) for a non-gdzoo model")
        example = default_input_size(model.arch)
    return build_graph(model, example)


def _param(old: nn.Parameter, data: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(data.contiguous(), requires_grad=old.requires_grad)


@torch.no_grad()
def _slice(model: nn.Module, graph: ChannelGraph, alive: np.ndarray) -> None:
    ca = graph.class_alive(alive)
    for op in graph.ops:
        m = model.get_submodule(op.name)
        dev = m.weight.device
        out_keep = torch.from_numpy(np.flatnonzero(ca[op.out_ids])).to(dev)
        weight = m.weight.index_select(0, out_keep)
        if op.kind != "dwconv":
            weight = weight.index_select(1, torch.from_numpy(np.flatnonzero(ca[op.in_ids])).to(dev))
        m.weight = _param(m.weight, weight)
        if m.bias is not None:
            m.bias = _param(m.bias, m.bias.index_select(0, out_keep))
        if op.kind == "linear":
            m.out_features, m.in_features = weight.shape
        else:
            m.out_channels = weight.shape[0]
            m.in_channels = weight.shape[0] if op.kind == "dwconv" else weight.shape[1]
            if op.kind == "dwconv":
                m.groups = weight.shape[0]
    for name, c in graph.norm_cls.items():
        bn = model.get_submodule(name)
        keep = torch.from_numpy(np.flatnonzero(ca[c])).to(bn.running_mean.device if bn.running_mean is not None
                                                         else bn.weight.device)
        for attr in ("weight", "bias"):
            p = getattr(bn, attr)
            if p is not None:
                setattr(bn, attr, _param(p, p.index_select(0, keep)))
        for attr in ("running_mean", "running_var"):
            if getattr(bn, attr) is not None:
                setattr(bn, attr, getattr(bn, attr).index_select(0, keep))
        bn.num_features = keep.numel()


def _gdzoo_widths(model: nn.Module, width: Callable[[str], int]) -> dict:
    """The widths spec of a gdzoo model whose BN layer ``name`` has ``width(name)`` channels."""
    if isinstance(model, CifarResNet) or (isinstance(model, ResNet) and _LAYERS[model.arch][0] == "basic"):
        n_stages = len(model.widths["stages"])
        return {"stages": [width(f"layer{i + 1}.0.bn2") for i in range(n_stages)],
                "blocks": [[width(f"layer{i + 1}.{j}.bn1") for j in range(len(getattr(model, f"layer{i + 1}")))]
                           for i in range(n_stages)]}
    if isinstance(model, ResNet):
        return {"stem": width("bn1"),
                "stages": [width(f"layer{i + 1}.0.bn3") for i in range(4)],
                "blocks": [[[width(f"layer{i + 1}.{j}.bn1"), width(f"layer{i + 1}.{j}.bn2")]
                            for j in range(len(getattr(model, f"layer{i + 1}")))] for i in range(4)]}
    if isinstance(model, CifarVGG):
        return {"convs": [width(f"features.{i}") for i, m in enumerate(model.features)
                          if isinstance(m, nn.BatchNorm2d)]}
    raise ValueError(f"no widths mapping for {type(model).__name__} ({getattr(model, 'arch', '?')})")


def widths_from_masks(model: nn.Module, graph: Optional[ChannelGraph] = None,
                      example: Union[torch.Tensor, Sequence[int], None] = None) -> dict:
    """Widths spec the gdzoo ``model`` will have once melted, read from its current masks."""
    model = unwrap(model)
    if not is_gdzoo_model(model):
        raise ValueError(f"{type(model).__name__} is not a gdzoo model; it has no widths spec")
    kept = _graph_for(model, graph, example).kept_channels()
    return _gdzoo_widths(model, kept.__getitem__)


def melt(model: nn.Module, graph: Optional[ChannelGraph] = None,
         example: Union[torch.Tensor, Sequence[int], None] = None) -> nn.Module:
    """Return the plain pruned model: gates folded, masked channels removed, no gate module left.

    gdzoo models: a fresh ``create_model(arch, widths, num_classes)`` with the sliced weights
    (``model`` untouched). Other models: surgery in place on ``model``, which is returned.
    ``graph`` must have been built from ``model`` (or pass ``example`` to trace it now).
    """
    model = unwrap(model)
    graph = _graph_for(model, graph, example)
    alive = graph.alive()
    if not is_gdzoo_model(model):
        undecorate(model)
        _slice(model, graph, alive)
        return model
    work = undecorate(copy.deepcopy(model))
    _slice(work, graph, alive)
    widths = _gdzoo_widths(model, graph.kept_channels(alive).__getitem__)
    ref = next(work.parameters())
    melted = create_model(model.arch, widths=widths, num_classes=model.num_classes).to(ref.device, ref.dtype)
    melted.load_state_dict(work.state_dict(), strict=True)
    return melted.train(model.training)

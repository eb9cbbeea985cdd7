"""Which channels are tied together, found by tracing: the *what* of pruning.

``build_graph`` traces a model with ``torch.fx`` (conv, BN and linear kept as leaves), runs shape
propagation on a sample input and pushes an array of channel ids through every node:

* a conv (groups=1) or linear creates fresh ids for its outputs and *consumes* its inputs;
* BN, activations, pooling, dropout and identity keep ids; a depthwise conv keeps them too
  (its input and output channel are one unit);
* add/sub/mul of two tensors union-find their ids index-wise; ``cat`` on dim 1 concatenates them;
* ``flatten``/``view`` to ``(N, C*H*W)`` repeats each id H*W times, so a VGG classifier's columns
  follow their channel.

Every union-find class is one prunable *unit* (one mask bit) when masking it provably zeroes it
everywhere it is consumed: each consumer (conv, linear) sees it only after a GatedBatchNorm2d
and zero-preserving ops, and it is neither a model input nor an output channel. Units whose
GatedBatchNorm2d layers share channel spaces form *groups* (e.g. a ResNet stage's residual
group), used for the minimum share and reporting. Ops the tracer cannot prove safe raise
ValueError naming the node, rather than guessing.

The same traced ops give exact MACs/params as a function of the masks, so a ranking can ask
"what would this cost" without building the pruned model.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from .gates import GatedBatchNorm2d, unwrap

_KEEP_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardswish, nn.SiLU, nn.GELU, nn.ELU, nn.Tanh,
                 nn.Dropout, nn.Dropout2d, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NONZERO_MODULES = (nn.Sigmoid, nn.Hardsigmoid)  # per-channel, but f(0) != 0
_KEEP_FUNCS = {F.relu, F.relu6, F.leaky_relu, F.hardswish, F.silu, F.gelu, F.elu, torch.relu, torch.tanh,
               F.dropout, F.dropout2d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
               F.adaptive_max_pool2d, torch.max_pool2d}
_NONZERO_FUNCS = {torch.sigmoid, F.sigmoid, F.hardsigmoid}
_KEEP_METHODS = {"relu", "relu_", "contiguous", "clone", "tanh"}
_NONZERO_METHODS = {"sigmoid", "sigmoid_"}
_BINARY = {operator.add: "add", operator.iadd: "add", torch.add: "add", operator.sub: "add",
           operator.isub: "add", torch.sub: "add", operator.mul: "mul", operator.imul: "mul",
           torch.mul: "mul", operator.truediv: "div", torch.div: "div"}
_BINARY_METHODS = {"add": "add", "add_": "add", "sub": "add", "sub_": "add", "mul": "mul", "mul_": "mul",
                   "div": "div", "div_": "div"}


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)) or super().is_leaf_module(m, qualname)


@dataclass
class _Chan:
    ids: np.ndarray   # channel ids along dim 1
    zero: np.ndarray  # True where the channel is exactly 0 once its unit is masked


@dataclass
class _Op:
    """A conv/linear as MACs, params and surgery see it (ids become class indices after tracing)."""
    name: str
    kind: str          # "conv", "dwconv" or "linear"
    in_ids: np.ndarray
    out_ids: np.ndarray
    kernel: int        # kh * kw (1 for linear)
    positions: int     # output positions per sample (Hout*Wout; 1 for a 2-D linear)
    bias: bool


@dataclass
class Group:
    """GatedBatchNorm2d layers sharing a channel space; ``units`` are its prunable units."""
    name: str
    members: list[str]
    units: np.ndarray


class ChannelGraph:
    """Units, groups and cost model of one decorated model; masks are read from / written to it."""

    def __init__(self, model: nn.Module, ops: list[_Op], norms: dict[str, np.ndarray], cls: np.ndarray,
                 norm_affine: dict[str, bool], prunable: np.ndarray, fixed_params: int) -> None:
        self.ops = ops
        self.num_classes = int(prunable.shape[0])
        self._unit_cls = np.flatnonzero(prunable)
        self.unit_of_cls = np.full(self.num_classes, -1, dtype=np.int64)
        self.unit_of_cls[self._unit_cls] = np.arange(self._unit_cls.size)
        self._fixed_params = fixed_params
        self._norm_affine = norm_affine
        for op in ops:
            op.in_ids, op.out_ids = cls[op.in_ids], cls[op.out_ids]
        #: class index of every channel of every BN (gated or plain), by module name
        self.norm_cls = {name: cls[ids] for name, ids in norms.items()}
        self.gated = {name: m for name, m in unwrap(model).named_modules() if isinstance(m, GatedBatchNorm2d)}
        #: unit index of every channel of every gated BN (-1: not prunable)
        self.bn_units = {name: self.unit_of_cls[self.norm_cls[name]] for name in self.gated}
        self.groups = self._make_groups()
        self.unit_group = np.full(self.num_units, -1, dtype=np.int64)
        for g, group in enumerate(self.groups):
            self.unit_group[group.units] = g

    @property
    def num_units(self) -> int:
        return int(self._unit_cls.size)

    def _make_groups(self) -> list[Group]:
        names = list(self.gated)
        parent = list(range(len(names)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        owner = np.full(self.num_classes, -1, dtype=np.int64)
        for b, name in enumerate(names):
            for c in np.unique(self.norm_cls[name]):
                if owner[c] < 0:
                    owner[c] = b
                else:
                    parent[find(b)] = find(int(owner[c]))
        members: dict[int, list[str]] = {}
        for b, name in enumerate(names):
            members.setdefault(find(b), []).append(name)
        groups = []
        for mem in members.values():
            units = np.unique(np.concatenate([self.bn_units[n] for n in mem]))
            groups.append(Group(mem[0], mem, units[units >= 0]))
        return groups

    # ----- masks <-> alive units -------------------------------------------------------------
    def alive(self) -> np.ndarray:
        """Per unit: True unless masked. Raises if a unit's members disagree (melt would be inexact)."""
        on = np.zeros(self.num_units, dtype=np.int64)
        off = np.zeros(self.num_units, dtype=np.int64)
        for name, m in self.gated.items():
            units = self.bn_units[name]
            keep = units >= 0
            bits = m.mask.detach().cpu().numpy()[keep] != 0
            np.add.at(on, units[keep][bits], 1)
            np.add.at(off, units[keep][~bits], 1)
        bad = np.flatnonzero((on > 0) & (off > 0))
        if bad.size:
            raise ValueError(f"masks disagree within {bad.size} unit(s) (e.g. unit {bad[0]}); "
                             "set masks through ChannelGraph.set_alive")
        return off == 0

    def set_alive(self, alive: np.ndarray) -> None:
        """Write unit states into every member GatedBatchNorm2d's ``mask`` (non-prunable: left as is)."""
        alive = self._check(alive)
        for name, m in self.gated.items():
            units = self.bn_units[name]
            keep = units >= 0
            new = m.mask.detach().cpu().clone()
            new[torch.from_numpy(keep)] = torch.from_numpy(alive[units[keep]].astype(np.float32)).to(new.dtype)
            m.mask.copy_(new.to(m.mask.device))

    def _check(self, alive: Optional[np.ndarray]) -> np.ndarray:
        if alive is None:
            return self.alive()
        alive = np.asarray(alive, dtype=bool)
        if alive.shape != (self.num_units,):
            raise ValueError(f"alive must have shape ({self.num_units},), got {alive.shape}")
        return alive

    def class_alive(self, alive: Optional[np.ndarray] = None) -> np.ndarray:
        """Per union-find class: alive (non-prunable classes always are)."""
        out = np.ones(self.num_classes, dtype=bool)
        out[self._unit_cls] = self._check(alive)
        return out

    # ----- cost model ------------------------------------------------------------------------
    def macs(self, alive: Optional[np.ndarray] = None) -> int:
        """MACs per sample of the melted model: equals ``count_flops(melt(model))[0]``."""
        ca = self.class_alive(alive)
        total = 0
        for op in self.ops:
            out_a = int(ca[op.out_ids].sum())
            if op.kind == "dwconv":
                total += op.kernel * out_a * op.positions
            else:
                total += op.kernel * int(ca[op.in_ids].sum()) * out_a * op.positions
        return total

    def params(self, alive: Optional[np.ndarray] = None) -> int:
        """Parameter count of the melted model (gates folded into BN affines)."""
        ca = self.class_alive(alive)
        total = self._fixed_params
        for op in self.ops:
            out_a = int(ca[op.out_ids].sum())
            fan_in = 1 if op.kind == "dwconv" else int(ca[op.in_ids].sum())
            total += op.kernel * fan_in * out_a + (out_a if op.bias else 0)
        for name, c in self.norm_cls.items():
            affine = name in self.gated or self._norm_affine[name]
            total += 2 * int(ca[c].sum()) if affine else 0
        return total

    def unit_costs(self, alive: Optional[np.ndarray] = None) -> np.ndarray:
        """Marginal MACs saved by masking each unit alone, given the current ``alive`` state."""
        ca = self.class_alive(alive)
        cost = np.zeros(self.num_classes, dtype=np.float64)
        k = self.num_classes
        for op in self.ops:
            out_live = op.out_ids[ca[op.out_ids]]
            per = op.kernel * op.positions
            if op.kind == "dwconv":
                cost += per * np.bincount(out_live, minlength=k)
                continue
            in_live = op.in_ids[ca[op.in_ids]]
            cost += per * in_live.size * np.bincount(out_live, minlength=k)
            cost += per * out_live.size * np.bincount(in_live, minlength=k)
        return cost[self._unit_cls]

    def unit_scores(self, bn_scores: Mapping[str, torch.Tensor]) -> np.ndarray:
        """Sum each unit's member-channel scores (``bn_scores``: per gated BN, one value a channel)."""
        total = np.zeros(self.num_units, dtype=np.float64)
        for name, units in self.bn_units.items():
            if name not in bn_scores:
                raise ValueError(f"no score for gated layer {name!r}")
            s = bn_scores[name].detach().double().cpu().numpy()
            keep = units >= 0
            np.add.at(total, units[keep], s[keep])
        return total

    def kept_channels(self, alive: Optional[np.ndarray] = None) -> dict[str, int]:
        """Width each BN layer (by module name) will have after melting."""
        ca = self.class_alive(alive)
        return {name: int(ca[c].sum()) for name, c in self.norm_cls.items()}


def _meta_shape(node: fx.Node) -> Optional[tuple[int, ...]]:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if isinstance(meta, TensorMetadata) else None


def _describe(node: fx.Node) -> str:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"node {node.name!r} ({node.op} {target})"


def build_graph(model: nn.Module, example: Union[torch.Tensor, Sequence[int]]) -> ChannelGraph:
    """Trace ``model`` (decorated, possibly DDP-wrapped) on ``example`` (a tensor or (C, H, W)).

    Raises ValueError naming the node/layer for anything whose channel semantics it cannot prove.
    """
    model = unwrap(model)
    if not isinstance(example, torch.Tensor):
        ref = next(iter(model.parameters()), torch.empty(0))
        example = torch.randn((1, *[int(s) for s in example]), device=ref.device, dtype=ref.dtype)
    try:
        fx_graph = _Tracer().trace(model)
    except Exception as err:  # noqa: BLE001 - re-raised with context
        raise ValueError(f"cannot trace {type(model).__name__} with torch.fx: {err}") from err
    gm = fx.GraphModule(model, fx_graph)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    finally:
        model.train(was_training)
    return _Propagator(model, gm).run()


class _Propagator:
    def __init__(self, model: nn.Module, gm: fx.GraphModule) -> None:
        self.model, self.gm = model, gm
        self.parent: list[int] = []
        self.origin_input: list[bool] = []
        self.info: dict[fx.Node, _Chan] = {}
        self.ops: list[_Op] = []
        self.norms: dict[str, np.ndarray] = {}
        self.norm_affine: dict[str, bool] = {}
        self.gated_ids: list[np.ndarray] = []
        self.sinks: list[_Chan] = []
        self.outputs: list[np.ndarray] = []
        self.seen_modules: set[str] = set()

    # union-find over channel ids
    def fresh(self, n: int, is_input: bool = False) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.origin_input.extend([is_input] * n)
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def run(self) -> ChannelGraph:
        for node in self.gm.graph.nodes:
            out = self.visit(node)
            if out is not None:
                shape = _meta_shape(node)
                if shape is None or len(shape) < 2 or shape[1] != out.ids.size:
                    raise ValueError(f"{_describe(node)}: channel bookkeeping mismatch (shape {shape}, "
                                     f"{out.ids.size} channel ids); unsupported broadcast or reshape")
                self.info[node] = out
        roots = np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)
        uniq, cls = np.unique(roots, return_inverse=True)
        k = uniq.size
        bad = np.zeros(k, dtype=bool)
        bad[cls[np.array(self.origin_input, dtype=bool)]] = True
        for ids in self.outputs:
            bad[cls[ids]] = True
        for s in self.sinks:
            bad[cls[s.ids[~s.zero]]] = True
        gated = np.zeros(k, dtype=bool)
        for ids in self.gated_ids:
            gated[cls[ids]] = True
        recorded = {op.name for op in self.ops} | set(self.norms)
        fixed = sum(p.numel() for name, m in self.model.named_modules() if name not in recorded
                    for p in m.parameters(recurse=False))
        return ChannelGraph(self.model, self.ops, self.norms, cls, self.norm_affine, gated & ~bad, fixed)

    def args_info(self, node: fx.Node) -> list[fx.Node]:
        found: list[fx.Node] = []
        fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if n in self.info else None)
        return found

    def visit(self, node: fx.Node) -> Optional[_Chan]:
        shape = _meta_shape(node)
        if node.op == "placeholder":
            if shape is None or len(shape) < 2:
                return None
            return _Chan(self.fresh(shape[1], is_input=True), np.zeros(shape[1], dtype=bool))
        if node.op == "output":
            for n in self.args_info(node):
                self.outputs.append(self.info[n].ids)
            return None
        if node.op == "call_module":
            return self.visit_module(node, self.model.get_submodule(node.target))
        if node.op == "call_function":
            return self.visit_function(node, node.target)
        if node.op == "call_method":
            return self.visit_method(node)
        if node.op == "get_attr":
            return None
        raise ValueError(f"unsupported {_describe(node)}")

    def arg(self, node: fx.Node, i: int = 0, key: str = "input") -> Optional[_Chan]:
        a = node.args[i] if len(node.args) > i else node.kwargs.get(key)
        return self.info.get(a) if isinstance(a, fx.Node) else None

    def refuse_if_channels(self, node: fx.Node, why: str) -> None:
        if self.args_info(node):
            raise ValueError(f"{_describe(node)} touches channels: {why}")
        return None

    def visit_module(self, node: fx.Node, m: nn.Module) -> Optional[_Chan]:
        name = node.target
        x = self.arg(node)
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)):
            if name in self.seen_modules:
                raise ValueError(f"layer {name!r} is called more than once; shared layers are not supported")
            self.seen_modules.add(name)
            if x is None:
                raise ValueError(f"layer {name!r} ({type(m).__name__}) has an input without channel ids")
        shape = _meta_shape(node)
        if isinstance(m, nn.Conv2d):
            positions = shape[2] * shape[3]
            kernel = m.kernel_size[0] * m.kernel_size[1]
            if m.groups == 1:
                self.sinks.append(x)
                out = self.fresh(m.out_channels)
                self.ops.append(_Op(name, "conv", x.ids, out, kernel, positions, m.bias is not None))
                return _Chan(out, np.zeros(out.size, dtype=bool))
            if m.groups == m.in_channels == m.out_channels:
                self.ops.append(_Op(name, "dwconv", x.ids, x.ids, kernel, positions, m.bias is not None))
                return _Chan(x.ids, x.zero & (m.bias is None))
            raise ValueError(f"layer {name!r}: grouped convolution (groups={m.groups}, in={m.in_channels}, "
                             f"out={m.out_channels}) is not supported; only groups=1 and depthwise")
        if isinstance(m, nn.BatchNorm2d):
            self.norms[name] = x.ids
            self.norm_affine[name] = m.affine
            if isinstance(m, GatedBatchNorm2d):
                self.gated_ids.append(x.ids)
                return _Chan(x.ids, np.ones(x.ids.size, dtype=bool))
            return _Chan(x.ids, np.zeros(x.ids.size, dtype=bool))
        if isinstance(m, nn.Linear):
            in_shape = _meta_shape(node.args[0])
            if len(in_shape) != 2:
                raise ValueError(f"layer {name!r}: Linear on a {len(in_shape)}-D input is not supported")
            self.sinks.append(x)
            out = self.fresh(m.out_features)
            self.ops.append(_Op(name, "linear", x.ids, out, 1, 1, m.bias is not None))
            return _Chan(out, np.zeros(out.size, dtype=bool))
        if isinstance(m, nn.Hardtanh):  # ReLU6 included
            zero_ok = m.min_val <= 0 <= m.max_val
            return None if x is None else _Chan(x.ids, x.zero & zero_ok)
        if isinstance(m, _KEEP_MODULES):
            return None if x is None else _Chan(x.ids, x.zero)
        if isinstance(m, _NONZERO_MODULES):
            return None if x is None else _Chan(x.ids, np.zeros(x.ids.size, dtype=bool))
        if isinstance(m, nn.Flatten):
            return None if x is None else self.flatten(node, x, m.start_dim, m.end_dim)
        if self.args_info(node):
            raise ValueError(f"layer {name!r} ({type(m).__name__}) touches channels and is not supported")
        return None

    def flatten(self, node: fx.Node, x: _Chan, start: int, end: int) -> _Chan:
        in_shape = _meta_shape(node.args[0])
        nd = len(in_shape)
        if start % nd != 1 or end % nd != nd - 1:
            raise ValueError(f"{_describe(node)}: only flatten(start_dim=1) of all trailing dims is supported")
        per = math.prod(in_shape[2:])
        return _Chan(np.repeat(x.ids, per), np.repeat(x.zero, per))

    def reshape(self, node: fx.Node, x: _Chan) -> _Chan:
        in_shape, out_shape = _meta_shape(node.args[0]), _meta_shape(node)
        if out_shape == in_shape:
            return x
        if len(out_shape) == 2 and out_shape[0] == in_shape[0]:
            return self.flatten(node, x, 1, -1)
        raise ValueError(f"{_describe(node)}: reshape {in_shape} -> {out_shape} mixes channels; not supported")

    def binary(self, node: fx.Node, kind: str) -> Optional[_Chan]:
        a = node.args[0] if node.args else node.kwargs.get("input")
        b = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        ia = self.info.get(a) if isinstance(a, fx.Node) else None
        ib = self.info.get(b) if isinstance(b, fx.Node) else None
        if ia is None and ib is None:
            return None
        if ia is not None and ib is not None:
            if ia.ids.size != ib.ids.size:
                raise ValueError(f"{_describe(node)}: operands have {ia.ids.size} and {ib.ids.size} channels")
            self.union(ia.ids, ib.ids)
            zero = {"add": ia.zero & ib.zero, "mul": ia.zero | ib.zero, "div": ia.zero}[kind]
            return _Chan(ia.ids, zero)
        x, other, x_first = (ia, b, True) if ia is not None else (ib, a, False)
        if isinstance(other, fx.Node):
            oshape = _meta_shape(other)
            if oshape is not None and math.prod(oshape) != 1:
                raise ValueError(f"{_describe(node)}: combines channels with tensor {other.name!r} "
                                 f"of shape {oshape} that the tracer cannot slice")
        keeps_zero = kind == "mul" or (kind == "div" and x_first)
        return _Chan(x.ids, x.zero & keeps_zero)

    def visit_function(self, node: fx.Node, fn) -> Optional[_Chan]:
        x = self.arg(node)
        if fn in _BINARY:
            return self.binary(node, _BINARY[fn])
        if fn in _KEEP_FUNCS or fn is F.hardtanh:
            if fn is F.hardtanh:
                lo, hi = node.kwargs.get("min_val", -1.0), node.kwargs.get("max_val", 1.0)
                return None if x is None else _Chan(x.ids, x.zero & (lo <= 0 <= hi))
            return None if x is None else _Chan(x.ids, x.zero)
        if fn in _NONZERO_FUNCS:
            return None if x is None else _Chan(x.ids, np.zeros(x.ids.size, dtype=bool))
        if fn is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return None if x is None else self.flatten(node, x, start, end)
        if fn is torch.reshape:
            return None if x is None else self.reshape(node, x)
        if fn in (torch.cat, torch.concat):
            return self.cat(node)
        if fn is operator.getitem and x is None:
            return None
        if fn is getattr:
            return None
        self.refuse_if_channels(node, "unknown function")
        return None

    def visit_method(self, node: fx.Node) -> Optional[_Chan]:
        method = node.target
        x = self.arg(node, key="self")
        if method in ("size", "dim") or x is None and not self.args_info(node):
            return None
        if method in _BINARY_METHODS:
            return self.binary(node, _BINARY_METHODS[method])
        if x is None:
            raise ValueError(f"{_describe(node)} touches channels through a non-self argument")
        if method in _KEEP_METHODS:
            return _Chan(x.ids, x.zero)
        if method in _NONZERO_METHODS:
            return _Chan(x.ids, np.zeros(x.ids.size, dtype=bool))
        if method == "flatten":
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, x, start, end)
        if method in ("view", "reshape"):
            return self.reshape(node, x)
        if method == "mean":
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
            nd = len(_meta_shape(node.args[0]))
            if dims and all(d % nd >= 2 for d in dims):
                return _Chan(x.ids, x.zero)
        raise ValueError(f"{_describe(node)} touches channels: unsupported method")

    def cat(self, node: fx.Node) -> Optional[_Chan]:
        tensors = node.args[0] if node.args else node.kwargs["tensors"]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        parts = [self.info.get(t) if isinstance(t, fx.Node) else None for t in tensors]
        if all(p is None for p in parts):
            return None
        if any(p is None for p in parts):
            raise ValueError(f"{_describe(node)}: concatenates tensors without channel ids")
        nd = len(_meta_shape(node))
        if dim % nd == 1:
            return _Chan(np.concatenate([p.ids for p in parts]), np.concatenate([p.zero for p in parts]))
        for p in parts[1:]:
            if p.ids.size != parts[0].ids.size:
                raise ValueError(f"{_describe(node)}: concatenated tensors differ in channels")
            self.union(parts[0].ids, p.ids)
        return _Chan(parts[0].ids, np.logical_and.reduce([p.zero for p in parts]))

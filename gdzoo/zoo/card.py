"""Render an export's README.md model card from its config.json with huggingface_hub's ModelCard.

The card is derived data: config.json is the source of truth, so a card can always be re-rendered
(``gdzoo push`` does, for the repo id it pushes to).
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Optional

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .datasets import DATASETS

TEMPLATE = "model_card.md"  # canonical copy: hub_cards/model_card.md (a test keeps both identical)
TAGS = ["gdzoo", "image-classification", "pruning", "gate-decorator", "safetensors"]


def template_text() -> str:
    """The packaged card template (jinja2, rendered by ``ModelCard.from_template``)."""
    return (resources.files("gdzoo.zoo") / "templates" / TEMPLATE).read_text()


def _fmt_count(n: Optional[int], unit: str) -> str:
    if n is None:
        return "—"
    return f"{n / 1e9:.3f} G{unit}" if n >= 1e9 else f"{n / 1e6:.3f} M{unit}"


def eval_results(cfg: dict) -> list[EvalResult]:
    """model-index results: top-1/top-5 (percent) when measured, MACs and params always."""
    ds = DATASETS.get(cfg["dataset"])
    common = dict(task_type="image-classification", task_name="Image Classification",
                  dataset_type=ds.hub_id if ds else cfg["dataset"],
                  dataset_name=ds.pretty if ds else cfg["dataset"],
                  dataset_split=cfg["metrics"].get("eval_split") or (ds.eval_split if ds else None))
    out = []
    for key, name in (("top1", "Top-1 accuracy (%)"), ("top5", "Top-5 accuracy (%)")):
        if cfg["metrics"].get(key) is not None:
            out.append(EvalResult(metric_type="accuracy" if key == "top1" else "top_5_accuracy",
                                  metric_name=name, metric_value=float(cfg["metrics"][key]), **common))
    out.append(EvalResult(metric_type="macs", metric_name="MACs", metric_value=int(cfg["metrics"]["macs"]), **common))
    out.append(EvalResult(metric_type="params", metric_name="Parameters",
                          metric_value=int(cfg["metrics"]["params"]), **common))
    return out


def render_card(cfg: dict, repo_id: Optional[str] = None) -> ModelCard:
    """Build the model card of the export described by ``cfg`` (a validated config.json).

    ``repo_id`` is where it is (to be) published; it only appears in the usage snippet.
    """
    ds = DATASETS.get(cfg["dataset"])
    metrics = cfg["metrics"]
    base_model = cfg.get("base_model")
    card_data = ModelCardData(
        library_name="gdzoo",
        license=cfg.get("license") or "apache-2.0",
        tags=list(TAGS),
        datasets=[ds.hub_id] if ds else [cfg["dataset"]],
        base_model=base_model,
        base_model_relation="finetune" if base_model else None,
        pipeline_tag="image-classification",
        model_name=cfg["name"],
        eval_results=eval_results(cfg),
    )
    top1 = metrics.get("top1")
    reduction = cfg.get("reduction")
    return ModelCard.from_template(
        card_data,
        template_str=template_text(),
        name=cfg["name"],
        summary=cfg.get("summary") or f"`{cfg['arch']}` trained on {ds.pretty if ds else cfg['dataset']}, "
                                       "packaged by gdzoo.",
        arch=cfg["arch"],
        widths_note="pruned widths in config.json" if cfg.get("pruned") else "default widths",
        dataset_pretty=ds.pretty if ds else cfg["dataset"],
        num_classes=cfg["num_classes"],
        input_size="x".join(str(s) for s in cfg["input_size"]),
        top1=f"{top1:.2f}%" if top1 is not None else "not measured",
        top5=f"{metrics['top5']:.2f}%" if metrics.get("top5") is not None else None,
        macs=_fmt_count(metrics.get("macs"), "MACs"),
        params=_fmt_count(metrics.get("params"), ""),
        baseline=(reduction or {}).get("baseline"),
        reduction=(f"MACs -{100 * reduction['macs']:.2f}%, params -{100 * reduction['params']:.2f}%"
                   if reduction else None),
        accuracy_note=metrics.get("eval_notes") or "not recorded by the exporter.",
        repo_id=repo_id or f"ORG/{cfg['name']}",
        mean=list(cfg["mean"]),
        std=list(cfg["std"]),
        reproduce=cfg.get("reproduce") or "# no reproduce command was recorded",
        provenance=json.dumps(cfg.get("provenance", {}), indent=2, sort_keys=True),
        gdzoo_version=cfg.get("gdzoo_version", "?"),
    )

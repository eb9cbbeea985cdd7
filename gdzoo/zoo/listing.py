"""``gdzoo.list_models()`` / ``gdzoo list``: the zoo as a table that is also a list of dicts."""
from __future__ import annotations

from typing import Any, Optional

from .datasets import get_dataset
from .registry import entries

COLUMNS = ("name", "dataset", "top1", "macs", "params", "reduction", "status")
HEADERS = ("name", "dataset", "top-1", "MACs", "params", "vs baseline (MACs / params)", "status")
DASH = "—"


class ZooTable(list):
    """Rows (dicts with :data:`COLUMNS` plus raw numbers) that print as an aligned text table."""

    def __str__(self) -> str:
        cells = [HEADERS] + [tuple(str(r[c]) for c in COLUMNS) for r in self]
        widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        notes = [f"{DASH}: not measured yet (pruned widths/weights come from the recipe's run)",
                 "*: reported upstream, not re-measured by gdzoo",
                 "top-1 in % on the dataset's eval split; MACs/params counted from the architecture "
                 "by gdzoo.count_flops"]
        return "\n".join(lines + [""] + notes)

    def __repr__(self) -> str:
        return str(self)


def _count(n: Optional[int]) -> str:
    if n is None:
        return DASH
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.2f}M"


def list_models(pattern: Optional[str] = None) -> ZooTable:
    """Every zoo entry (optionally those whose name contains ``pattern``) with its measured numbers."""
    rows = ZooTable()
    all_entries = entries()
    order = sorted(all_entries.values(), key=lambda e: (e.baseline or e.name, e.baseline is not None, e.name))
    for entry in order:
        if pattern and pattern not in entry.name:
            continue
        counted = entry.macs_params()
        macs, params = counted if counted else (None, None)
        reduction = DASH
        if entry.baseline:
            base = all_entries[entry.baseline].macs_params()
            if counted and base:
                reduction = f"-{100 * (1 - macs / base[0]):.1f}% / -{100 * (1 - params / base[1]):.1f}%"
            elif entry.target:
                reduction = f"target -{100 * (1 - entry.target['macs_fraction']):.2f}% MACs"
        top1 = entry.metrics.get("top1")
        row: dict[str, Any] = {
            "name": entry.name,
            "dataset": get_dataset(entry.dataset).pretty,
            "top1": DASH if top1 is None else f"{top1:.2f}{'*' if entry.metrics.get('top1_upstream') else ''}",
            "macs": _count(macs),
            "params": _count(params),
            "reduction": reduction,
            "status": entry.status,
            "top1_value": top1,
            "macs_value": macs,
            "params_value": params,
            "repo_id": entry.repo_id,
            "reproduce": entry.reproduce,
        }
        rows.append(row)
    return rows

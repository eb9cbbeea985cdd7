"""Training and evaluation loops shared by baselines, Tocks, Ticks and fine-tuning.

Loops take any iterable of ``(images, labels)`` batches. The hooks (``lr_at``, ``penalty``,
``after_backward``) are what the pruning engine plugs into: a Tick reads gate gradients in
``after_backward``, a Tock adds the L1 gate penalty and a triangular LR.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, Iterable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm


PROGRESS_EVERY = 20  # steps between progress-bar refreshes (each reads the running sums)


def triangular_lr(step: int, total_steps: int, lr_min: float, lr_max: float) -> float:
    """One triangular cycle (Smith 2017): lr_min -> lr_max at mid-cycle -> lr_min at the end."""
    if total_steps <= 1:
        return lr_max
    half = (total_steps - 1) / 2
    return lr_max - (lr_max - lr_min) * abs(step - half) / half


def cosine_lr(step: int, total_steps: int, lr_max: float, lr_min: float = 0.0) -> float:
    """Cosine decay from lr_max at step 0 to lr_min at ``total_steps``."""
    t = min(step, total_steps) / max(total_steps, 1)
    return lr_min + (lr_max - lr_min) * 0.5 * (1 + math.cos(math.pi * t))


def _autocast(device: torch.device, amp_dtype: Optional[torch.dtype]):
    if amp_dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def train_one_epoch(
    model: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device | str = "cpu",
    lr_at: Optional[Callable[[int], float]] = None,
    start_step: int = 0,
    penalty: Optional[Callable[[], torch.Tensor]] = None,
    after_backward: Optional[Callable[[], None]] = None,
    criterion: Optional[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
    max_steps: Optional[int] = None,
    desc: Optional[str] = None,
    disable_progress: bool = False,
) -> dict:
    """Train for one pass over ``batches`` (at most ``max_steps``); return mean loss and accuracy.

    ``lr_at(global_step)`` sets every param group's LR before each step, with global steps
    counted from ``start_step``. ``penalty()`` is added to the loss (e.g. L1 on gates).
    ``after_backward()`` runs between backward and the optimizer step, when gradients are ready.
    ``criterion(logits, images, labels)`` replaces cross-entropy (e.g. distillation); the reported
    loss is then the criterion's.
    """
    device = torch.device(device)
    model.train()
    # running sums stay on the device: reading them every step would sync a GPU once per batch
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # summed loss, correct predictions
    seen, steps = 0, 0
    bar = tqdm(batches, desc=desc, leave=False, disable=disable_progress or desc is None,
               total=max_steps if max_steps is not None else None, dynamic_ncols=True)
    for images, labels in bar:
        if max_steps is not None and steps >= max_steps:
            break
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if lr_at is not None:
            lr = lr_at(start_step + steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
        with _autocast(device, amp_dtype):
            logits = model(images)
            loss = (nn.functional.cross_entropy(logits, labels) if criterion is None
                    else criterion(logits, images, labels))
        objective = loss if penalty is None else loss + penalty()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()
        steps += 1
        n = labels.shape[0]
        totals += torch.stack([loss.detach().double() * n, (logits.argmax(1) == labels).sum().double()])
        seen += n
        if not bar.disable and steps % PROGRESS_EVERY == 0:
            total_loss, correct = totals.tolist()
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    total_loss, correct = totals.tolist()
    return {"loss": total_loss / max(seen, 1), "acc": correct / max(seen, 1), "steps": steps, "samples": seen}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable,
    *,
    device: torch.device | str = "cpu",
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
    desc: Optional[str] = None,
    disable_progress: bool = False,
) -> dict:
    """Mean cross-entropy loss, top-1 and top-5 accuracy (fractions) of ``model`` in eval mode."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # summed loss, top-1 and top-5 hits
    seen = 0
    for images, labels in tqdm(batches, desc=desc, leave=False, disable=disable_progress or desc is None,
                               dynamic_ncols=True):
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        topk = logits.topk(min(5, logits.shape[1]), dim=1).indices
        totals += torch.stack([nn.functional.cross_entropy(logits, labels, reduction="sum").double(),
                               (topk[:, 0] == labels).sum().double(),
                               (topk == labels[:, None]).any(dim=1).sum().double()])
        seen += labels.shape[0]
    model.train(was_training)
    total_loss, top1, top5 = totals.tolist()
    return {"loss": total_loss / max(seen, 1), "top1": top1 / max(seen, 1), "top5": top5 / max(seen, 1),
            "samples": seen}

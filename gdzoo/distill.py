"""Knowledge distillation (Hinton et al., 2015) for fine-tuning a pruned model from its baseline.

Not part of the Gate Decorator paper: an opt-in ``[finetune]`` option (``distill_weight``) for when
the fine-tuning budget is short. The unpruned baseline is the teacher; its softened class
probabilities carry more than the hard labels, which helps a much narrower student recover faster.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      weight: float, temperature: float) -> torch.Tensor:
    """``(1 - weight) * CE(student, labels) + weight * T^2 * KL(teacher_T || student_T)``.

    The T^2 factor keeps the soft term's gradient scale independent of the temperature.
    """
    hard = F.cross_entropy(student_logits, labels)
    soft = F.kl_div(F.log_softmax(student_logits.float() / temperature, dim=1),
                    F.log_softmax(teacher_logits.float() / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return (1 - weight) * hard + weight * temperature ** 2 * soft


def check_settings(weight: float, temperature: float) -> None:
    """Refuse settings that cannot distil, with the fix in the message."""
    if not 0 < weight <= 1:
        raise ValueError(f"distill_weight must be in (0, 1], got {weight}; use 0 to fine-tune without a teacher")
    if temperature <= 0:
        raise ValueError(f"distill_temperature must be positive, got {temperature}")


class Distillation:
    """A training criterion ``(logits, images, labels) -> loss`` that asks a frozen teacher."""

    def __init__(self, teacher: nn.Module, weight: float, temperature: float) -> None:
        check_settings(weight, temperature)
        self.teacher = teacher.eval().requires_grad_(False)
        self.weight = weight
        self.temperature = temperature

    def __call__(self, student_logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        return distillation_loss(student_logits, teacher_logits, labels, self.weight, self.temperature)

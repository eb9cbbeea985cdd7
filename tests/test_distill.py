import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gdzoo.distill import Distillation, check_settings, distillation_loss
from gdzoo.training import train_one_epoch


def _logits(seed: int, shape=(6, 5)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_loss_matches_the_hinton_formula_written_out():
    student, teacher, labels = _logits(0), _logits(1), torch.tensor([0, 1, 2, 3, 4, 0])
    weight, temperature = 0.7, 3.0
    p_teacher = torch.softmax(teacher / temperature, dim=1)
    kl = (p_teacher * (p_teacher.log() - torch.log_softmax(student / temperature, dim=1))).sum(1).mean()
    expected = (1 - weight) * F.cross_entropy(student, labels) + weight * temperature ** 2 * kl
    actual = distillation_loss(student, teacher, labels, weight, temperature)
    assert torch.allclose(actual.double(), expected, rtol=1e-6, atol=0)


def test_soft_term_gradient_is_temperature_times_probability_gap():
    # the T^2 factor makes d(loss)/d(logits) = T * (p_student_T - p_teacher_T) / batch at weight 1
    student, teacher = _logits(2).float().requires_grad_(), _logits(3).float()
    temperature = 4.0
    distillation_loss(student, teacher, torch.zeros(6, dtype=torch.long), 1.0, temperature).backward()
    gap = torch.softmax(student.detach() / temperature, 1) - torch.softmax(teacher / temperature, 1)
    assert torch.allclose(student.grad, temperature * gap / 6, atol=1e-7)


def test_identical_teacher_leaves_only_the_hard_label_share():
    logits, labels = _logits(4), torch.tensor([4, 3, 2, 1, 0, 1])
    assert distillation_loss(logits, logits, labels, 0.25, 2.0).item() == pytest.approx(
        0.75 * F.cross_entropy(logits, labels).item(), rel=1e-12)


@pytest.mark.parametrize("weight, temperature, message", [
    (0.0, 4.0, r"distill_weight must be in \(0, 1\], got 0.0; use 0 to fine-tune without a teacher"),
    (1.5, 4.0, r"distill_weight must be in \(0, 1\], got 1.5"),
    (0.9, 0.0, r"distill_temperature must be positive, got 0.0"),
])
def test_bad_settings_are_refused(weight, temperature, message):
    with pytest.raises(ValueError, match=message):
        check_settings(weight, temperature)


def test_teacher_is_frozen_and_kept_in_eval_mode():
    teacher = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)).train()
    running_mean = teacher[1].running_mean.clone()
    criterion = Distillation(teacher, 0.9, 4.0)
    student = nn.Linear(8, 3)
    images = torch.randn(4, 8)
    criterion(student(images), images, torch.tensor([0, 1, 2, 0])).backward()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert torch.equal(teacher[1].running_mean, running_mean)
    assert student.weight.grad is not None


def test_train_one_epoch_reports_the_criterion_loss():
    # a teacher identical to the student at weight 1: the first step's loss is exactly zero
    student = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    teacher.load_state_dict(student.state_dict())
    batches = [(torch.randn(5, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1]))]
    stats = train_one_epoch(student, batches, torch.optim.SGD(student.parameters(), lr=0.1),
                            criterion=Distillation(teacher, 1.0, 4.0))
    assert stats["loss"] == 0.0 and stats["steps"] == 1
    # a zero loss has a zero gradient (up to rounding): the step leaves the student where it was
    assert torch.allclose(student[1].weight, teacher[1].weight, rtol=0, atol=1e-7)

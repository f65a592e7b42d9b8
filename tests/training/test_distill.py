"""The distillation loss against a numpy reference, and alpha = 0 is exactly the plain cross-entropy step."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from helpers import as_tensors, random_inputs, random_model, tiny_config
from lrp_prune import BertClassifier, BertClassifierWithLoss, LRPPruneError, parameter_groups
from lrp_prune.io.checkpoint import load_param_dict, param_dict
from lrp_prune.training import TrainStep, adamw
from lrp_prune.training.distill import DistillationLoss, DistilledClassifierWithLoss


def reference(student, labels, teacher, alpha, t):
    """(1 - alpha) CE + alpha T^2 KL(p_t || p_s), p = softmax(z / T), in float64 numpy."""
    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    ce = -log_softmax(student)[np.arange(len(labels)), labels].mean()
    log_ps, log_pt = log_softmax(student / t), log_softmax(teacher / t)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(-1).mean()
    return (1 - alpha) * ce + alpha * t * t * kl


@pytest.mark.parametrize("alpha,t", [(0.0, 1.0), (0.5, 2.0), (1.0, 4.0), (0.3, 0.7)])
def test_distillation_loss_equals_the_numpy_reference(alpha, t):
    rng = np.random.default_rng(3)
    student, teacher = rng.normal(0, 2, (6, 5)), rng.normal(0, 2, (6, 5))
    labels = rng.integers(0, 5, 6)
    got = float(DistillationLoss(alpha, t)(Tensor(student, ms.float32), Tensor(labels, ms.int32),
                                          Tensor(teacher, ms.float32)))
    assert got == pytest.approx(reference(student, labels, teacher, alpha, t), rel=1e-5, abs=1e-6)


def test_the_direction_is_kl_of_teacher_to_student():
    student, teacher = np.array([[3.0, 0.0]]), np.array([[0.0, 1.0]])
    forward = reference(student, np.array([0]), teacher, 1.0, 1.0)
    backward = reference(teacher, np.array([0]), student, 1.0, 1.0)
    got = float(DistillationLoss(1.0, 1.0)(Tensor(student, ms.float32), Tensor([0], ms.int32),
                                          Tensor(teacher, ms.float32)))
    assert got == pytest.approx(forward, rel=1e-5) and abs(forward - backward) > 0.1


def test_alpha_zero_is_exactly_todays_step():
    cfg = tiny_config()
    clf_a = BertClassifier(cfg, False, num_labels=3)
    load_param_dict(clf_a.bert, param_dict(random_model(cfg, seed=2)))
    clf_b = BertClassifier(cfg, False, num_labels=3)
    load_param_dict(clf_b, param_dict(clf_a))
    ids, types, mask = as_tensors(random_inputs(cfg, batch=4))
    labels = Tensor(np.array([0, 2, 1, 0], np.int32))
    teacher = Tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    one = Tensor(1.0, ms.float32)
    plain = BertClassifierWithLoss(clf_a)
    distilled = DistilledClassifierWithLoss(clf_b, DistillationLoss(alpha=0.0))
    step_a = TrainStep(plain, adamw(parameter_groups(plain), 1e-3))
    step_b = TrainStep(distilled, adamw(parameter_groups(distilled), 1e-3))
    losses_a = [float(step_a(ids, types, mask, labels, one)[0]) for _ in range(3)]
    losses_b = [float(step_b(ids, types, mask, labels, teacher, one)[0]) for _ in range(3)]
    assert losses_a == losses_b
    assert all(np.array_equal(a, b) for a, b in zip(param_dict(clf_a).values(), param_dict(clf_b).values()))


def test_bad_settings_name_the_option():
    with pytest.raises(LRPPruneError, match=r"distill_alpha: expected a number in \[0, 1\], got 1.5"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(LRPPruneError, match="distill_temperature: expected a positive number"):
        DistillationLoss(temperature=0)

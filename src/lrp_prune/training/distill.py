"""Knowledge distillation for the gated phase (CoFiPruning, Xia et al. 2022): a frozen teacher's soft labels.

The loss of a student's logits ``z_s`` against the teacher's ``z_t`` and the labels ``y``::

    (1 - alpha) * CE(z_s, y) + alpha * T^2 * KL(p_t || p_s),    p = softmax(z / T)

averaged over the batch. ``alpha = 0`` is exactly the cross-entropy the flow trains with
otherwise; ``T^2`` keeps the soft term's gradient on the scale of the hard one (Hinton et al.).
The teacher is the *ungated* model at gating time, in eval mode, kept outside the trained
network (not a sub-cell: no gradient, not in ``trainable_params``, the ``'log_a'`` groups,
checkpoints or parameter counts); its logits are computed once per batch and fed in.

Example:
    >>> import numpy as np, mindspore as ms
    >>> loss = DistillationLoss(alpha=0.5, temperature=2.0)
    >>> z_s, z_t = ms.Tensor([[2.0, 0.0, -1.0]]), ms.Tensor([[1.0, 1.0, 0.0]])
    >>> round(float(loss(z_s, ms.Tensor([0], ms.int32), z_t)), 4)
    0.3303
"""

from __future__ import annotations

import mindspore as ms
from mindspore import Tensor, nn, ops

from lrp_prune.errors import check_fraction, check_number

__all__ = ["DistillationLoss", "DistilledClassifierWithLoss"]


class DistillationLoss(nn.Cell):
    """``(1 - alpha) * CE + alpha * T^2 * KL(p_teacher || p_student)`` on logits, mean over the batch.

    Args:
        alpha: weight of the soft term in [0, 1] (0: plain cross-entropy).
        temperature: T > 0 of both softmaxes.

    ``construct(student_logits, labels, teacher_logits)`` returns the scalar loss.
    """

    def __init__(self, alpha: float = 0.5, temperature: float = 2.0) -> None:
        super().__init__()
        self.alpha = check_fraction(alpha, "distill_alpha", closed_low=True, closed_high=True,
                                    expected="a number in [0, 1]")
        self.temperature = check_number(temperature, "distill_temperature", minimum=0, strict=True,
                                        expected="a positive number")
        self.ce = nn.CrossEntropyLoss()

    def construct(self, student_logits: Tensor, labels: Tensor, teacher_logits: Tensor) -> Tensor:
        student_logits = student_logits.astype(ms.float32)
        hard = self.ce(student_logits, labels)
        if self.alpha == 0.0:
            return hard
        t = self.temperature
        log_p_s = ops.log_softmax(student_logits / t, -1)  # (B, K)
        log_p_t = ops.log_softmax(teacher_logits.astype(ms.float32) / t, -1)  # (B, K)
        kl = (ops.exp(log_p_t) * (log_p_t - log_p_s)).sum(-1).mean()
        return (1.0 - self.alpha) * hard + self.alpha * t * t * kl


class DistilledClassifierWithLoss(nn.Cell):
    """A classifier's distillation loss, plus ``total_reg`` when its BertModel is gated.

    The counterpart of :class:`~lrp_prune.network.bert.BertClassifierWithLoss` with the
    teacher's logits as a fifth input: ``construct(input_ids, token_type_ids, input_mask,
    label_ids, teacher_logits)``. The attribute ``bert`` holds the classifier, so checkpoint
    names are the same.
    """

    def __init__(self, classifier: nn.Cell, loss: DistillationLoss) -> None:
        super().__init__()
        self.bert = classifier
        self.distill = loss

    def construct(self, input_ids, token_type_ids, input_mask, label_ids, teacher_logits):
        logits = self.bert(input_ids, token_type_ids, input_mask)
        loss = self.distill(logits, label_ids, teacher_logits)
        if self.bert.bert.is_gated:
            loss = loss + self.bert.bert.total_reg()
        return loss

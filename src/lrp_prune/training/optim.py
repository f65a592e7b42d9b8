"""Optimizer and learning-rate schedule: AdamW with Adam's bias correction, linear warm-up/decay.

Example:
    >>> [round(x, 3) for x in linear_schedule(1.0, 5, 0.2)]
    [1.0, 0.8, 0.6, 0.4, 0.2]
"""

from __future__ import annotations

from typing import Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from lrp_prune.errors import expect

__all__ = ["adamw", "reset_adamw", "BiasCorrectedRate", "linear_schedule", "BETA1", "BETA2"]

#: Adam's moment decay rates (those of BERT and PyTorch's AdamW).
BETA1, BETA2 = 0.9, 0.999


class BiasCorrectedRate(nn.learning_rate_schedule.LearningRateSchedule):
    """A learning rate per step (a number, or a list: past its end, its last value) times
    Adam's bias correction ``sqrt(1 - beta2**t) / (1 - beta1**t)``, computed in the graph.

    The rates are a (non-trainable) parameter of ``capacity`` entries, so :meth:`set_rates`
    gives the same compiled graph another schedule (see :func:`reset_adamw`).

    Example:
        >>> import mindspore as ms
        >>> rate = BiasCorrectedRate([1.0, 1.0, 0.5])
        >>> [round(float(rate(ms.Tensor([step], ms.int32)).asnumpy()[0]), 4) for step in range(4)]
        [0.3162, 0.2353, 0.101, 0.0919]
    """

    def __init__(self, rates: float | Sequence[float], beta1: float = BETA1, beta2: float = BETA2,
                 capacity: int | None = None) -> None:
        super().__init__()
        values = self._values(rates)
        self.capacity = max(len(values), int(capacity or 0))
        self.rates = Parameter(Tensor(self._padded(values)), name="rates", requires_grad=False)  # (capacity,)
        self.last = Parameter(Tensor(np.array([len(values) - 1], np.int32)), name="last", requires_grad=False)
        self.beta1 = Tensor(beta1, ms.float32)
        self.beta2 = Tensor(beta2, ms.float32)

    @staticmethod
    def _values(rates: float | Sequence[float]) -> list[float]:
        values = [rates] if isinstance(rates, (int, float)) else list(rates)
        expect(len(values) >= 1 and all(isinstance(r, (int, float)) and r >= 0 for r in values), "learning rate",
               "a number >= 0 or a non-empty list of them", rates)
        return [float(r) for r in values]

    def _padded(self, values: list[float]) -> np.ndarray:
        return np.asarray(values + [values[-1]] * (self.capacity - len(values)), np.float32)

    def set_rates(self, rates: float | Sequence[float]) -> None:
        """Another schedule, before the schedule's graph is compiled (after: :func:`reset_adamw`)."""
        values = self._values(rates)
        expect(len(values) <= self.capacity, "learning rate", f"at most {self.capacity} rates (the capacity)",
               len(values))
        self.rates.assign_value(Tensor(self._padded(values)))
        self.last.assign_value(Tensor(np.array([len(values) - 1], np.int32)))

    def construct(self, global_step: Tensor) -> Tensor:
        index = ops.minimum(global_step, self.last)  # (1,): past the list, its last rate
        t = (global_step + 1).astype(ms.float32)  # Adam's 1-based step
        factor = ops.sqrt(1.0 - ops.pow(self.beta2, t)) / (1.0 - ops.pow(self.beta1, t))
        return ops.gather(self.rates, index, 0) * factor


def adamw(groups: list[dict], rates: float | Sequence[float], eps: float = 1e-6,
          capacity: int | None = None) -> nn.Optimizer:
    """AdamW with bias correction: ``nn.AdamWeightDecay`` driven by :class:`BiasCorrectedRate`.

    Why not ``nn.Adam``: its ``weight_decay`` is an L2 term added to the gradient, which Adam
    then normalises, so every weight with a small gradient is pulled to zero at ~``lr`` per
    step. Measured on all-MiniLM-L6-v2 fine-tuned on SNLI (2,000 steps, peak 1e-4, decay 0.01):
    the weight matrices fell to 27-47% of their pretrained norm and test accuracy to 67%.
    ``nn.AdamWeightDecay`` decays the decoupled way but has no bias correction (its first
    steps move ~3x the rate); the corrected rate restores Adam's step (its ``eps`` then acts
    as ``eps * sqrt(1 - beta2**t)``, and the decay ``rate * weight_decay * w`` is scaled alike).

    Args:
        groups: parameter groups (:func:`~lrp_prune.pruning.lrp.parameter_groups`); a group's
            ``lr`` may be a number or a per-step list.
        rates: the learning rate of the other weights: a number, or one per step (after
            the list ends, its last value).
        eps: Adam's epsilon.
        capacity: room for this many rates, so :func:`reset_adamw` can give the same compiled
            train step a longer schedule later (default: the schedule's own length).

    Returns:
        The optimizer.

    Example:
        >>> import mindspore as ms
        >>> from lrp_prune import BertConfig, BertModel
        >>> from lrp_prune.pruning.lrp import parameter_groups
        >>> model = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
        ...                              num_attention_heads=4, intermediate_size=37, seq_length=8), True)
        >>> opt = adamw(parameter_groups(model), linear_schedule(1e-4, 100))
        >>> type(opt).__name__
        'AdamWeightDecay'
    """
    fixed = [dict(group, lr=BiasCorrectedRate(group["lr"], capacity=capacity)) if "lr" in group else group
             for group in groups]
    return nn.AdamWeightDecay(fixed, learning_rate=BiasCorrectedRate(rates, capacity=capacity), beta1=BETA1,
                              beta2=BETA2, eps=eps)


class _AdamwReset(nn.Cell):
    """Zero the moments and the step of an :func:`adamw` optimizer and load new rates, *in a graph*.

    MindSpore 2.10 (CPU, GRAPH_MODE): after ``set_data`` or ``assign_value`` from the host on an
    optimizer's own state (``global_step``, moments), a compiled train step keeps using and updating
    its device copy, which the host no longer sees. ``ops.assign`` in a graph writes the memory the
    train step reads.
    """

    def __init__(self, optimizer: nn.Optimizer, schedules: list) -> None:
        super().__init__()
        self.moments1 = optimizer.moments1
        self.moments2 = optimizer.moments2
        self.global_step = optimizer.global_step
        self.schedules = nn.CellList(schedules)
        self.hyper_map = ops.HyperMap()

    def construct(self, rates: Tensor, last: Tensor) -> Tensor:
        done = self.hyper_map(ops.partial(_zero), self.moments1)
        done = ops.depend(done, self.hyper_map(ops.partial(_zero), self.moments2))
        done = ops.depend(done, ops.assign(self.global_step, ops.zeros_like(self.global_step)))
        for schedule in self.schedules:
            done = ops.depend(done, ops.assign(schedule.rates, rates))
            done = ops.depend(done, ops.assign(schedule.last, last))
        return ops.depend(last, done)


_zero = ops.MultitypeFuncGraph("zero")


@_zero.register("Tensor")
def _zero_one(param: Tensor) -> Tensor:
    return ops.assign(param, ops.zeros_like(param))


def reset_adamw(optimizer: nn.Optimizer, rates: float | Sequence[float]) -> None:
    """Start :func:`adamw` over, in place: zero moments, step 0, a new schedule for every group.

    A train step built around the optimizer then trains as if it were new, without compiling
    its graph again (the flow reuses the fine-tuning's compiled step for the control arm). The
    optimizer must have been built with room for the new schedule (``capacity``); every group
    takes the new rates (use it for optimizers whose groups share one rate: no ``log_a`` group).

    Example:
        >>> from lrp_prune import BertConfig, BertModel
        >>> from lrp_prune.pruning.lrp import parameter_groups
        >>> model = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
        ...                              num_attention_heads=4, intermediate_size=37, seq_length=8), True)
        >>> opt = adamw(parameter_groups(model), linear_schedule(1e-4, 10), capacity=20)
        >>> reset_adamw(opt, linear_schedule(2e-5, 20))
        >>> opt.learning_rate.last.asnumpy().tolist(), int(opt.global_step.asnumpy()[0])
        ([19], 0)
    """
    schedules = [optimizer.learning_rate] if not optimizer.is_group_lr else list(optimizer.learning_rate)
    for schedule in schedules:
        expect(isinstance(schedule, BiasCorrectedRate), "reset_adamw", "an optimizer made by adamw()",
               type(schedule).__name__)
    values = BiasCorrectedRate._values(rates)
    capacity = min(s.capacity for s in schedules)
    expect(len(values) <= capacity, "learning rate", f"at most {capacity} rates (the optimizer's capacity)",
           len(values))
    padded = np.asarray(values + [values[-1]] * (schedules[0].capacity - len(values)), np.float32)
    reset = getattr(optimizer, "_lrp_reset", None)
    if reset is None:  # compiled once per optimizer
        reset = _AdamwReset(optimizer, schedules)
        object.__setattr__(optimizer, "_lrp_reset", reset)
    reset(Tensor(padded), Tensor(np.array([len(values) - 1], np.int32)))


def linear_schedule(peak: float, steps: int, warmup_fraction: float = 0.1) -> list[float]:
    """Per-step learning rates: linear warm-up to ``peak`` over ``warmup_fraction`` of the steps,
    then linear decay towards 0 (the usual BERT fine-tuning schedule). Give the list to
    :func:`adamw` (past its end, the last rate is kept).

    Example:
        >>> [round(x, 3) for x in linear_schedule(1.0, 5, 0.2)]
        [1.0, 0.8, 0.6, 0.4, 0.2]
        >>> [round(x, 2) for x in linear_schedule(2e-5 * 1e5, 10)]   # one warm-up step of 10
        [2.0, 1.8, 1.6, 1.4, 1.2, 1.0, 0.8, 0.6, 0.4, 0.2]
    """
    warm = max(1, int(round(steps * warmup_fraction)))
    out = []
    for step in range(steps):
        if step < warm:
            out.append(peak * (step + 1) / warm)
        else:
            out.append(peak * (steps - step) / max(1, steps - warm + 1) if steps > warm else peak)
    return out

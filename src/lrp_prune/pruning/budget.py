"""Target budget: a Lagrangian controller on the expected number of open heads (or open compute).

With ``target_heads`` the pruner adds to ``total_reg`` the term (CoFiPruning, Xia et al. 2022)::

    lambda_1 * (E - T_t) + lambda_2 * (E - T_t) ** 2

where ``E = L_C`` is the expected number of open heads, ``T_t`` the target warmed
up linearly from all heads to ``T`` over ``warmup_steps``, and the multipliers
follow gradient *ascent* after each optimizer step (:meth:`HeadBudget.update`)::

    lambda_1 += lr * (E - T_t)        lambda_2 += lr * (E - T_t) ** 2

so a model with too many open heads is pushed harder and harder to close some,
and one with too few is pushed to open them. ``convert()`` then keeps exactly
``T`` heads (see :meth:`LRPHeadPruner.convert`).

With ``target_speedup`` (:class:`LatencyBudget`) it counts the encoder's time predicted from a
latency table measured on this machine (:mod:`lrp_prune.pruning.latency`).

With ``target_flops`` the same controller counts compute instead (``counts_cost``): ``E`` is
the expected open compute in head-equivalents, every gate's P(open) weighted by its unit's
multiply-adds over a head's (an FFN unit of MiniLM at 64 tokens costs about 0.014 heads), and
``T`` the kept fraction of the encoder's multiply-adds in the same unit.

Example:
    >>> budget = HeadBudget(target=6, total_heads=12, warmup_steps=4, lr=0.5)
    >>> [round(budget.update(12.0)["target_now"], 2) for _ in range(5)]
    [10.5, 9.0, 7.5, 6.0, 6.0]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from mindspore import Parameter, Tensor, nn

from lrp_prune.errors import expect, is_int, is_number

__all__ = ["HeadBudget", "LatencyBudget", "check_target", "check_flops_target", "check_speedup_target",
           "check_targets", "resolve_target"]


def check_target(target: float | int, field: str = "target_heads") -> float | int:
    """A head budget: an int >= 1 (heads) or a fraction in (0, 1); returned as ``int`` or ``float``.

    Example:
        >>> check_target(36), check_target(0.5)
        (36, 0.5)
    """
    ok = is_number(target) and ((not is_int(target) and 0 < target < 1)
                                or (float(target).is_integer() and target >= 1))
    expect(ok, field, "an int >= 1 or a fraction in (0, 1)", target)
    return int(target) if target >= 1 else float(target)


def check_flops_target(target: float, field: str = "target_flops") -> float:
    """A compute budget: the fraction in (0, 1) of the encoder's multiply-adds to keep.

    Example:
        >>> check_flops_target(0.5)
        0.5
    """
    return _between(target, field, 0.0, 1.0, "a fraction in (0, 1) of the encoder's multiply-adds to keep")


def _between(value: Any, field: str, low: float, high: float, expected: str) -> float:
    """``value`` as a float strictly between ``low`` and ``high``, or the library's error."""
    expect(is_number(value) and not isinstance(value, bool) and low < float(value) < high, field, expected, value)
    return float(value)


def resolve_target(target: float | int, total_heads: int) -> int:
    """``target_heads`` as a head count: an int in [1, total], or a fraction in (0, 1) of all heads.

    Example:
        >>> resolve_target(0.5, 72), resolve_target(18, 72), resolve_target(0.25, 12)
        (36, 18, 3)
    """
    expect(is_number(target), "target_heads", "an int >= 1 or a fraction in (0, 1)", target)
    if not is_int(target) and 0 < target < 1:
        return max(1, int(round(target * total_heads)))
    expect(float(target).is_integer() and 1 <= target <= total_heads, "target_heads",
           f"an int in [1, {total_heads}] or a fraction in (0, 1)", target)
    return int(target)


def check_speedup_target(target: float, field: str = "target_speedup") -> float:
    """A time budget: the predicted encoder speed-up to reach, a number > 1.

    Example:
        >>> check_speedup_target(2)
        2.0
    """
    return _between(target, field, 1.0, 1000.0, "a speed-up above 1 (e.g. 2.0)")


def check_targets(target_heads: Any, target_flops: Any, target_speedup: Any,
                  flag: str = "") -> tuple[float | int | None, float | None, float | None]:
    """The three budgets checked together: each in its range, and at most one of them given.

    ``flag`` prefixes the names in messages (``"--"`` for the command line).

    Example:
        >>> check_targets(36, None, None)
        (36, None, None)
        >>> try:
        ...     check_targets(None, 0.5, 2.0)
        ... except ValueError as err:
        ...     print(err)
        target_speedup: expected no other target beside it (give one budget), got 'target_flops=0.5'
    """
    if target_heads is not None:
        target_heads = check_target(target_heads)
    if target_flops is not None:
        target_flops = check_flops_target(target_flops)
        expect(target_heads is None, "target_flops", f"no {flag}target_heads beside it (give one budget)",
               f"target_heads={target_heads}")
    if target_speedup is not None:
        target_speedup = check_speedup_target(target_speedup)
        other = [(n, v) for n, v in (("target_heads", target_heads), ("target_flops", target_flops)) if v is not None]
        expect(not other, "target_speedup", "no other target beside it (give one budget)",
               f"{other[0][0]}={other[0][1]}" if other else None)
    return target_heads, target_flops, target_speedup


class HeadBudget(nn.Cell):
    """The Lagrangian term and its multipliers (non-trainable parameters updated from Python).

    Args:
        target: heads to keep (a count), or with ``counts_cost`` the gated compute to keep in
            head-equivalents.
        total_heads: heads (or compute) of the model when gated (the warm-up's start).
        warmup_steps: steps over which the target moves from ``total_heads`` to ``target``.
        lr: step size of the multipliers' gradient ascent.
        counts_cost: measure open compute (every gate's P(open) times its unit's cost) instead of
            open heads.
    """

    counts_latency = False  # LatencyBudget counts predicted time

    def __init__(self, target: float, total_heads: float, warmup_steps: int = 100, lr: float = 0.01,
                 counts_cost: bool = False) -> None:
        super().__init__()
        # the values were checked where they entered (PrunerConfig); here they are only stored
        self.counts_cost = bool(counts_cost)
        self.target = float(target) if counts_cost else int(target)
        self.total_heads = float(total_heads) if counts_cost else int(total_heads)
        self.warmup_steps = int(warmup_steps)
        self.lr = float(lr)
        self.steps = 0
        self.multipliers = Parameter(Tensor(np.zeros(2, np.float32)), name="multipliers", requires_grad=False)
        self.target_now = Parameter(Tensor(np.float32(total_heads)), name="target_now", requires_grad=False)

    def construct(self, expected_open: Tensor) -> Tensor:
        gap = expected_open - self.target_now
        return self.multipliers[0] * gap + self.multipliers[1] * gap * gap

    def current_target(self) -> float:
        """``T_t`` for the next step."""
        if self.warmup_steps == 0:
            return float(self.target)
        frac = min(1.0, self.steps / self.warmup_steps)
        return self.total_heads + (self.target - self.total_heads) * frac

    def update(self, expected_open: float) -> dict[str, Any]:
        """One ascent step of the multipliers after an optimizer step; returns the controller state."""
        self.steps += 1
        target_now = self.current_target()
        gap = float(expected_open) - target_now
        lam = self.multipliers.asnumpy().astype(np.float64)
        lam[0] += self.lr * gap
        lam[1] = max(0.0, lam[1] + self.lr * gap * gap)
        self.multipliers.set_data(Tensor(lam.astype(np.float32)))
        self.target_now.set_data(Tensor(np.float32(target_now)))
        return {"expected_open": float(expected_open), "target_now": target_now, "lambda_1": float(lam[0]),
                "lambda_2": float(lam[1])}

    def state(self) -> dict[str, Any]:
        """Current multipliers and target (for logs and reports)."""
        lam = self.multipliers.asnumpy()
        return {"target": self.target, "target_now": self.current_target(), "lambda_1": float(lam[0]),
                "lambda_2": float(lam[1]), "steps": self.steps}


class LatencyBudget(HeadBudget):
    """The same controller on *predicted time*, from a measured :class:`~lrp_prune.pruning.latency.LatencyTable`.

    Time is counted in unpruned-layer times (one full layer = 1), so the gap has the scale of a
    heads budget's. After each optimizer step, :meth:`update_layers` reads the expected open heads
    and units of every layer, predicts the encoder's time from the table (bilinear), takes one
    ascent step of the multipliers on ``predicted - T_t``, and linearises the table there: each
    layer's slope per head and per unit (``slopes``) weights its gates' P(open) in the graph, and
    ``target_now`` is shifted by the linearisation's offset so that the in-graph gap equals the
    predicted one at the current point.

    Args:
        table: the layer latency table of this model's shapes, batch size and sequence length.
        speedup: the predicted encoder speed-up to reach (> 1).
        heads, units: heads and FFN units each layer has when gated.
        warmup_steps, lr: as :class:`HeadBudget`.
    """

    counts_cost = False
    counts_latency = True

    def __init__(self, table: Any, speedup: float, heads: Sequence[int], units: Sequence[int],
                 warmup_steps: int = 100, lr: float = 0.001) -> None:
        self.table = table
        self.unit_time = table.at(table.heads[-1], table.units[-1])  # one unpruned layer
        total = table.model_seconds(heads, units) / self.unit_time
        super().__init__(total / float(speedup), total, warmup_steps, lr, counts_cost=True)
        self.counts_cost = False
        self.speedup = float(speedup)
        self.slopes = Parameter(Tensor(np.zeros((2, len(heads)), np.float32)), name="slopes", requires_grad=False)

    def predicted(self, heads: Sequence[float], units: Sequence[float]) -> float:
        """Predicted encoder time in unpruned-layer times."""
        return self.table.model_seconds(heads, units) / self.unit_time

    def update_layers(self, heads: Sequence[float], units: Sequence[float]) -> dict[str, Any]:
        """One controller step from the expected open heads and units of every layer."""
        self.steps += 1
        target_now = self.current_target()
        predicted = self.predicted(heads, units)
        slopes = np.array([self.table.slopes(h, u) for h, u in zip(heads, units)], np.float64).T / self.unit_time
        linear = float((slopes[0] * np.asarray(heads) + slopes[1] * np.asarray(units)).sum())
        gap = predicted - target_now
        lam = self.multipliers.asnumpy().astype(np.float64)
        lam[0] += self.lr * gap
        lam[1] = max(0.0, lam[1] + self.lr * gap * gap)
        self.multipliers.set_data(Tensor(lam.astype(np.float32)))
        self.slopes.set_data(Tensor(slopes.astype(np.float32)))
        self.target_now.set_data(Tensor(np.float32(target_now - (predicted - linear))))
        return {"expected_open": predicted, "target_now": target_now, "lambda_1": float(lam[0]),
                "lambda_2": float(lam[1])}

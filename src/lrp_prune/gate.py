"""The Hard Concrete gate (Louizos et al. 2018), one learned ``log_a`` per head.

Training (``set_train(True)``)::

    u ~ U(eps, 1 - eps)
    s = sigmoid((ln u - ln(1 - u) + log_a) / beta)
    g = clip(s * (zeta - gamma) + gamma, 0, 1)

Evaluation (``set_train(False)``), deterministic::

    g = clip(sigmoid(log_a) * (zeta - gamma) + gamma, 0, 1)

L0 penalty (expected number of open gates)::

    L_C = sum_h clip(sigmoid(log_a_h - beta * ln(-gamma / zeta)), eps, 1 - eps)

A head whose deterministic gate is exactly 0 (``log_a <= -ln 11`` with the
default stretch) is removed by ``convert()``.

Example:
    >>> import numpy as np
    >>> from lrp_prune.gate import eval_gate_values
    >>> eval_gate_values(np.array([3.0, 0.0, -3.0])).round(3).tolist()
    [1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from lrp_prune.errors import expect

__all__ = ["GateSettings", "HardConcreteGate", "eval_gate_values", "prob_open", "prob_closed"]


@dataclass(frozen=True)
class GateSettings:
    """Hyper-parameters of every gate of a model.

    Attributes:
        temperature: beta, the concrete temperature.
        stretch_limits: (gamma, zeta); gamma < 0 and zeta > 1 so exact 0 and 1 have mass.
        eps: clamp of the uniform noise and of the penalty terms.
        l0_penalty: lambda; ``total_reg = l0_penalty * L_C``.
    """

    temperature: float = 0.33
    stretch_limits: tuple[float, float] = (-0.1, 1.1)
    eps: float = 1e-6
    l0_penalty: float = 0.0

    def __post_init__(self) -> None:
        expect(isinstance(self.temperature, (int, float)) and not isinstance(self.temperature, bool)
               and self.temperature > 0, "temperature", "a positive number", self.temperature)
        ok = (isinstance(self.stretch_limits, (tuple, list)) and len(self.stretch_limits) == 2
              and all(isinstance(v, (int, float)) for v in self.stretch_limits))
        expect(ok, "stretch_limits", "a pair (gamma, zeta) of numbers", self.stretch_limits)
        gamma, zeta = (float(v) for v in self.stretch_limits)
        expect(gamma < 0 and zeta > 1, "stretch_limits",
               "(gamma, zeta) straddling [0, 1]: gamma < 0 < 1 < zeta", self.stretch_limits)
        object.__setattr__(self, "stretch_limits", (gamma, zeta))
        expect(isinstance(self.eps, (int, float)) and 0 < self.eps < 0.5, "eps",
               "a number in (0, 0.5)", self.eps)
        expect(isinstance(self.l0_penalty, (int, float)) and not isinstance(self.l0_penalty, bool)
               and math.isfinite(self.l0_penalty) and self.l0_penalty >= 0,
               "l0_penalty", "a finite number >= 0", self.l0_penalty)

    @property
    def log_a_closed(self) -> float:
        """log_a at or below which the deterministic gate is exactly 0 (-ln 11 by default)."""
        gamma, zeta = self.stretch_limits
        p = -gamma / (zeta - gamma)
        return math.log(p / (1 - p))


def eval_gate_values(log_a: np.ndarray, stretch_limits: tuple[float, float] = (-0.1, 1.1)) -> np.ndarray:
    """Deterministic gates ``clip(sigmoid(log_a) * (zeta - gamma) + gamma, 0, 1)`` in numpy."""
    gamma, zeta = stretch_limits
    log_a = np.asarray(log_a, dtype=np.float64)
    return np.clip(1.0 / (1.0 + np.exp(-log_a)) * (zeta - gamma) + gamma, 0.0, 1.0)


def prob_open(log_a: np.ndarray, settings: GateSettings = GateSettings()) -> np.ndarray:
    """P(gate != 0) per head, the term the L0 penalty sums (numpy, unclipped)."""
    gamma, zeta = settings.stretch_limits
    shift = settings.temperature * math.log(-gamma / zeta)
    return 1.0 / (1.0 + np.exp(-(np.asarray(log_a, dtype=np.float64) - shift)))


def prob_closed(log_a: np.ndarray, settings: GateSettings = GateSettings()) -> np.ndarray:
    """P(gate == 0) per head in training: what the original's docs animate."""
    return 1.0 - prob_open(log_a, settings)


class HardConcreteGate(nn.Cell):
    """One Hard Concrete gate per head of one attention layer.

    ``construct()`` returns the gate vector ``(num_heads,)``: sampled in training,
    deterministic in eval. ``penalty()`` returns ``l0_penalty * L_C`` of this layer.

    Args:
        num_heads: heads of the layer (> 0).
        settings: the shared :class:`GateSettings`.
        log_a_init: initial ``log_a`` of every head (a float), or ``"xavier_uniform"``
            (the original's init: xavier on a [1, H, 1, 1] tensor).

    Example:
        >>> import mindspore as ms
        >>> gate = HardConcreteGate(3, GateSettings(l0_penalty=0.01), log_a_init=3.0)
        >>> _ = gate.set_train(False)
        >>> gate().asnumpy().tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, num_heads: int, settings: GateSettings, log_a_init: float | str = 3.0) -> None:
        super().__init__()
        expect(isinstance(num_heads, int) and num_heads > 0, "num_heads", "a positive integer", num_heads)
        self.num_heads = num_heads
        self.settings = settings
        self.beta = float(settings.temperature)
        self.gamma, self.zeta = settings.stretch_limits
        self.eps = float(settings.eps)
        self.l0_penalty = float(settings.l0_penalty)
        self.penalty_shift = self.beta * math.log(-self.gamma / self.zeta)
        self.log_a = Parameter(Tensor(initial_log_a(num_heads, log_a_init), ms.float32), name="log_a")

    def construct(self) -> Tensor:
        if self.training:
            u = ops.rand((self.num_heads,), dtype=ms.float32) * (1.0 - 2.0 * self.eps) + self.eps
            s = ops.sigmoid((ops.log(u) - ops.log(1.0 - u) + self.log_a) / self.beta)
        else:
            s = ops.sigmoid(self.log_a)
        return ops.clamp(s * (self.zeta - self.gamma) + self.gamma, 0.0, 1.0)

    def expected_open(self) -> Tensor:
        """L_C of this layer: the expected number of open gates."""
        p = ops.sigmoid(self.log_a - self.penalty_shift)
        return ops.clamp(p, self.eps, 1.0 - self.eps).sum()

    def penalty(self) -> Tensor:
        """``l0_penalty * L_C`` of this layer."""
        return self.expected_open() * self.l0_penalty


def initial_log_a(num_heads: int, init: float | str) -> np.ndarray:
    """Initial ``log_a`` values (float32, shape ``(num_heads,)``)."""
    if isinstance(init, str):
        expect(init == "xavier_uniform", "log_a_init", "a number or 'xavier_uniform'", init)
        # xavier_uniform on a [1, H, 1, 1] tensor, as the original: fan_in = H, fan_out = 1
        bound = math.sqrt(6.0 / (num_heads + 1))
        return np.random.uniform(-bound, bound, size=num_heads).astype(np.float32)
    expect(isinstance(init, (int, float)) and not isinstance(init, bool) and math.isfinite(init),
           "log_a_init", "a finite number or 'xavier_uniform'", init)
    return np.full(num_heads, float(init), dtype=np.float32)

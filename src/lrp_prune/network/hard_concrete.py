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

from lrp_prune.errors import LRPPruneError, check_int, check_number, expect, is_number

__all__ = ["GateSettings", "HardConcreteGate", "eval_gate_values", "prob_open", "prob_closed", "initial_log_a"]


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
        object.__setattr__(self, "temperature", check_number(self.temperature, "temperature", minimum=0, strict=True,
                                                             expected="a finite positive number"))
        ok = (isinstance(self.stretch_limits, (tuple, list)) and len(self.stretch_limits) == 2
              and all(is_number(v) and math.isfinite(v) for v in self.stretch_limits))
        expect(ok, "stretch_limits", "a pair (gamma, zeta) of finite numbers", self.stretch_limits)
        gamma, zeta = (float(v) for v in self.stretch_limits)
        expect(gamma < 0 and zeta > 1, "stretch_limits",
               "(gamma, zeta) straddling [0, 1]: gamma < 0 < 1 < zeta", self.stretch_limits)
        object.__setattr__(self, "stretch_limits", (gamma, zeta))
        object.__setattr__(self, "eps", check_number(self.eps, "eps", minimum=0, maximum=0.5, strict=True,
                                                     strict_max=True, expected="a number in (0, 0.5)"))
        object.__setattr__(self, "l0_penalty", check_number(self.l0_penalty, "l0_penalty", minimum=0))

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
    """One Hard Concrete gate per unit (a head, say) of one layer: a learned ``log_a`` each.

    In the graph, ``construct()`` returns the gate vector ``(num_units,)``: sampled in
    training, deterministic in eval; ``penalty()`` returns ``l0_penalty * L_C`` of this
    layer. On the host, :meth:`values`, :meth:`prob_open` and :meth:`close` read and
    change the gate as numpy; :class:`~lrp_prune.network.gates.ModelGates` assembles them
    into ``[layers, units]`` grids.

    Args:
        num_units: units of the layer (> 0).
        settings: the shared :class:`GateSettings`.
        log_a_init: initial ``log_a`` of every unit (a float), ``"xavier_uniform"`` (the
            original's init: xavier on a [1, H, 1, 1] tensor), or an array of one value per unit.
        rng: a ``numpy.random.Generator`` or an int seed for ``"xavier_uniform"``
            (default: a generator seeded from the OS; no global RNG is touched).
        cost: the compute of one unit in head-equivalents (multiply-adds of the unit over those
            of one attention head): the L0 term of each unit is weighted by it, so with heads
            only (cost 1) the penalty is exactly ``l0_penalty * L_C``.

    Example:
        >>> gate = HardConcreteGate(3, GateSettings(l0_penalty=0.01), log_a_init=3.0)
        >>> _ = gate.set_train(False)
        >>> gate().asnumpy().tolist(), gate.values().tolist()
        ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
        >>> gate.close([1])
        >>> gate.values().tolist()
        [1.0, 0.0, 1.0]
    """

    kind = "hard_concrete"

    def __init__(self, num_units: int, settings: GateSettings, log_a_init: float | str | np.ndarray = 3.0,
                 rng: np.random.Generator | int | None = None, cost: float = 1.0) -> None:
        super().__init__()
        self.num_units = check_int(num_units, "num_units", minimum=1)
        self.cost = check_number(cost, "cost", minimum=0, strict=True, expected="a positive number")
        self.settings = settings
        self.beta = float(settings.temperature)
        self.gamma, self.zeta = settings.stretch_limits
        self.eps = float(settings.eps)
        self.l0_penalty = float(settings.l0_penalty)
        self.penalty_shift = self.beta * math.log(-self.gamma / self.zeta)
        self.log_a = Parameter(Tensor(initial_log_a(num_units, log_a_init, rng), ms.float32), name="log_a")

    @property
    def num_heads(self) -> int:
        """Alias of ``num_units`` for head gates."""
        return self.num_units

    def construct(self) -> Tensor:
        if self.training:
            u = ops.rand((self.num_units,), dtype=ms.float32) * (1.0 - 2.0 * self.eps) + self.eps
            s = ops.sigmoid((ops.log(u) - ops.log(1.0 - u) + self.log_a) / self.beta)
        else:
            s = ops.sigmoid(self.log_a)
        return ops.clamp(s * (self.zeta - self.gamma) + self.gamma, 0.0, 1.0)

    def expected_open(self) -> Tensor:
        """L_C of this layer: the expected number of open gates."""
        p = ops.sigmoid(self.log_a - self.penalty_shift)
        return ops.clamp(p, self.eps, 1.0 - self.eps).sum()

    def expected_cost(self) -> Tensor:
        """``cost * L_C`` of this layer: its expected open compute in head-equivalents."""
        return self.expected_open() * self.cost

    def penalty(self) -> Tensor:
        """``l0_penalty * cost * L_C`` of this layer."""
        return self.expected_open() * (self.l0_penalty * self.cost)

    # ------------------------------------------------------------------ host side (numpy)
    def values(self) -> np.ndarray:
        """Deterministic (eval) gates, float64 ``(num_units,)``."""
        return eval_gate_values(self.log_a.asnumpy(), self.settings.stretch_limits)

    def prob_open(self, clip: bool = False) -> np.ndarray:
        """P(gate != 0) in training per unit; ``clip`` to ``[eps, 1 - eps]`` as the penalty does."""
        p = prob_open(self.log_a.asnumpy(), self.settings)
        return np.clip(p, self.eps, 1 - self.eps) if clip else p

    def close(self, positions) -> None:
        """Close the units at ``positions`` (within this layer): ``log_a`` well below the closed
        threshold (about -10 by default), so the eval gate is exactly 0 and its gradient ~0."""
        log_a = self.log_a.asnumpy().copy()
        log_a[list(positions)] = self.settings.log_a_closed - 8.0
        self.log_a.set_data(Tensor(log_a, ms.float32))

    def set_log_a(self, values) -> None:
        """Replace every ``log_a`` (one finite value per unit)."""
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        expect(values.shape == (self.num_units,) and np.isfinite(values).all(), "log_a",
               f"{self.num_units} finite values", values)
        self.log_a.set_data(Tensor(values, ms.float32))


def initial_log_a(num_units: int, init: float | str | np.ndarray,
                  rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Initial ``log_a`` values (float32, shape ``(num_units,)``).

    Example:
        >>> initial_log_a(2, 3.0).tolist()
        [3.0, 3.0]
        >>> bool(np.all(initial_log_a(4, "xavier_uniform", rng=0) == initial_log_a(4, "xavier_uniform", rng=0)))
        True
    """
    if isinstance(init, str):
        expect(init == "xavier_uniform", "log_a_init", "a number or 'xavier_uniform'", init)
        # xavier_uniform on a [1, H, 1, 1] tensor, as the original: fan_in = H, fan_out = 1
        bound = math.sqrt(6.0 / (num_units + 1))
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return generator.uniform(-bound, bound, size=num_units).astype(np.float32)
    if isinstance(init, np.ndarray) or (isinstance(init, (list, tuple))):
        values = np.asarray(init, dtype=np.float64).reshape(-1)
        expect(values.shape == (num_units,) and np.isfinite(values).all(), "log_a_init",
               f"{num_units} finite values (one per unit)", init)
        return values.astype(np.float32)
    if not is_number(init) or not math.isfinite(init):
        raise LRPPruneError(f"log_a_init: expected a finite number or 'xavier_uniform', got {init!r}")
    return np.full(num_units, float(init), dtype=np.float32)

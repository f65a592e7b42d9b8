"""MaskGate: a fixed 0/1 mask per unit with a separate scale, the gate kind of retraining-free pruning.

Where :class:`~lrp_prune.network.hard_concrete.HardConcreteGate` learns a ``log_a`` per unit,
a ``MaskGate`` holds two fixed vectors: ``mask`` (1 keeps a unit, 0 removes it) and ``scale``
(what a kept unit's output is multiplied by; 1 until mask tuning changes it). The gate's value
is ``mask * scale``. Which units are kept comes from ``mask`` alone, never from a scale's
value: a kept unit whose tuned scale happens to be 0 (or negative) is still kept, and
``heads_to_prune``, ``convert()`` and the reports read the mask (:meth:`kept`).

Neither vector is trained (``requires_grad=False``) and neither is a model weight: like
``log_a`` they stay out of parameter counts and out of the pruned model, where
``convert()`` folds each kept unit's scale into the weights that consume it.

Example:
    >>> gate = MaskGate(4)
    >>> gate.close([1])
    >>> gate.set_scale([1.0, 1.0, 0.5, -0.25])
    >>> gate.values().tolist(), gate.kept().tolist()
    ([1.0, 0.0, 0.5, -0.25], [True, False, True, True])
    >>> gate().asnumpy().tolist()                    # what the graph multiplies by
    [1.0, 0.0, 0.5, -0.25]
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn

from lrp_prune.errors import check_int, expect

__all__ = ["MaskGate"]


class MaskGate(nn.Cell):
    """A fixed mask and a per-unit scale for the units of one layer.

    Args:
        num_units: units of the layer (> 0).
        mask: initial 0/1 values (default: all kept).
        scale: initial scales (default: all 1).
    """

    kind = "mask"

    def __init__(self, num_units: int, mask=None, scale=None) -> None:
        super().__init__()
        self.num_units = check_int(num_units, "num_units", minimum=1)
        self.mask = Parameter(Tensor(np.ones(self.num_units, np.float32)), name="mask", requires_grad=False)
        self.scale = Parameter(Tensor(np.ones(self.num_units, np.float32)), name="scale", requires_grad=False)
        if mask is not None:
            self.set_mask(mask)
        if scale is not None:
            self.set_scale(scale)

    def construct(self) -> Tensor:
        return self.mask * self.scale  # (num_units,)

    def expected_open(self) -> Tensor:
        """The number of kept units (a fixed mask is its own expectation)."""
        return self.mask.sum()

    def penalty(self) -> Tensor:
        """0: a fixed mask is not trained, so it adds nothing to the loss."""
        return self.mask.sum() * 0.0

    # ------------------------------------------------------------------ host side (numpy)
    def kept(self) -> np.ndarray:
        """Which units are kept (bool ``(num_units,)``): the mask, whatever the scales are."""
        return self.mask.asnumpy() > 0.5

    def values(self) -> np.ndarray:
        """The gate values ``mask * scale`` (float64 ``(num_units,)``)."""
        return self.kept() * self.scale.asnumpy().astype(np.float64)

    def prob_open(self, clip: bool = False) -> np.ndarray:  # noqa: ARG002 - a fixed mask is open or not
        """1 for a kept unit, 0 for a removed one (a fixed mask has no randomness)."""
        return self.kept().astype(np.float64)

    def close(self, positions) -> None:
        """Remove the units at ``positions`` (within this layer)."""
        mask = self.mask.asnumpy().copy()
        mask[list(positions)] = 0.0
        self.mask.set_data(Tensor(mask, ms.float32))

    def set_mask(self, values) -> None:
        """Replace the mask (``num_units`` values, each 0 or 1)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        expect(values.shape == (self.num_units,) and np.isin(values, (0.0, 1.0)).all(), "mask",
               f"{self.num_units} values, each 0 or 1", values)
        self.mask.set_data(Tensor(values.astype(np.float32)))

    def set_scale(self, values) -> None:
        """Replace the scales (``num_units`` finite values)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        expect(values.shape == (self.num_units,) and np.isfinite(values).all(), "scale",
               f"{self.num_units} finite values", values)
        self.scale.set_data(Tensor(values.astype(np.float32)))

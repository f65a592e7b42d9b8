"""A train step with loss scaling that works on CPU, and the Python-side loss-scale policy.

MindSpore's ``nn.TrainOneStepWithLossScaleCell`` needs ``NPUGetFloatStatusV2``,
which has no CPU kernel. :class:`TrainStep` instead checks the unscaled
gradients with ``amp.all_finite`` (it runs everywhere), skips the update on
overflow, and leaves the scale policy to :class:`DynamicLossScale` on the
Python side, so it can be tested and logged.

Example:
    >>> scale = DynamicLossScale(init_scale=1024.0, factor=2.0, window=2)
    >>> [scale.update(ok) or scale.scale for ok in (True, True, False, True)]
    [1024.0, 2048.0, 1024.0, 1024.0]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mindspore as ms
from mindspore import Tensor, amp, nn, ops

from lrp_prune.errors import expect

__all__ = ["TrainStep", "DynamicLossScale"]

logger = logging.getLogger(__name__)


_unscale = ops.MultitypeFuncGraph("unscale")


@_unscale.register("Tensor", "Tensor")
def _unscale_one(inv_scale: Tensor, grad: Tensor) -> Tensor:
    return grad * inv_scale.astype(grad.dtype)


class TrainStep(nn.Cell):
    """One optimizer step of a with-loss cell: scaled backward, overflow check, clipping, update.

    Args:
        network: a cell ``(*inputs) -> loss``, e.g. ``(input_ids, token_type_ids, input_mask,
            label_ids)`` (a distillation loss adds the teacher's logits).
        optimizer: its optimizer.
        clip_norm: global gradient norm clip (ModelZoo's BERT fine-tuning uses 1.0) of the
            model's weights; ``None`` turns it off. Gate ``log_a`` gradients are left out of
            the norm: the L0/budget terms can make them large, and a joint clip would then
            scale the weights' gradients down to nothing.
        reducer: a gradient reducer for data parallelism (``nn.DistributedGradReducer``).

    ``construct(*inputs, scale)`` returns ``(loss, finite)``: the update is applied only when
    every gradient is finite.
    """

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, clip_norm: float | None = 1.0,
                 reducer: nn.Cell | None = None) -> None:
        super().__init__(auto_prefix=False)
        self.network = network
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.clip = clip_norm is not None
        self.clip_norm = float(clip_norm or 1.0)
        names = [p.name for p in self.weights]
        self.clip_index = tuple(i for i, n in enumerate(names) if not n.endswith("log_a"))
        self.n_weights = len(names)
        self.reducer = reducer
        self.hyper_map = ops.HyperMap()

    def construct(self, *inputs):
        data, scale = inputs[:-1], inputs[-1]
        loss = self.network(*data)
        sens = ops.fill(loss.dtype, loss.shape, 1.0) * scale.astype(loss.dtype)
        grads = self.grad(self.network, self.weights)(*data, sens)
        if self.reducer is not None:
            grads = self.reducer(grads)
        grads = self.hyper_map(ops.partial(_unscale, 1.0 / scale), grads)
        finite = amp.all_finite(grads)
        if finite:
            if self.clip:
                grads = self._clip(grads)
            loss = ops.depend(loss, self.optimizer(grads))
        return loss, finite

    def _clip(self, grads):
        """Clip the model weights' gradients by their global norm; gate gradients pass unchanged."""
        clipped = ops.clip_by_global_norm(tuple(grads[i] for i in self.clip_index), self.clip_norm)
        out = list(grads)
        for k, i in enumerate(self.clip_index):
            out[i] = clipped[k]
        return tuple(out)


@dataclass
class DynamicLossScale:
    """Dynamic loss scale: halve on overflow, double after ``window`` finite steps.

    Attributes:
        scale: the current scale (1.0 and ``enabled=False`` for no scaling).
        skipped: steps skipped because of overflow so far.
    """

    init_scale: float = 2.0 ** 16
    factor: float = 2.0
    window: int = 1000
    min_scale: float = 1.0
    enabled: bool = True

    def __post_init__(self) -> None:
        expect(self.init_scale >= 1, "loss_scale", "a number >= 1", self.init_scale)
        expect(self.factor > 1, "loss_scale factor", "a number > 1", self.factor)
        expect(self.window >= 1, "loss_scale window", "an integer >= 1", self.window)
        self.scale = float(self.init_scale) if self.enabled else 1.0
        self.good_steps = 0
        self.skipped = 0

    def tensor(self) -> Tensor:
        """The scale as a float32 scalar tensor (an input of :class:`TrainStep`)."""
        return Tensor(self.scale, ms.float32)

    def update(self, finite: bool) -> None:
        """Record one step's outcome and adjust the scale."""
        if not finite:
            self.skipped += 1
            self.good_steps = 0
            if self.enabled:
                self.scale = max(self.min_scale, self.scale / self.factor)
            logger.warning("non-finite gradients: step skipped, loss scale now %g", self.scale)
            return
        self.good_steps += 1
        if self.enabled and self.good_steps >= self.window:
            self.scale *= self.factor
            self.good_steps = 0

"""Training primitives: a train step with loss scaling that works on CPU, evaluation, timing.

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
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import mindspore as ms
import numpy as np
from mindspore import Tensor, amp, nn, ops

from lrp_prune.errors import expect

__all__ = [
    "TrainStep",
    "DynamicLossScale",
    "evaluate_accuracy",
    "predict_logits",
    "measure_latency",
    "compare_latency",
    "adamw",
    "BiasCorrectedRate",
    "FEATURE_KEYS",
]

logger = logging.getLogger(__name__)

FEATURE_KEYS = ("input_ids", "token_type_ids", "input_mask")

#: Adam's moment decay rates (those of BERT and PyTorch's AdamW).
BETA1, BETA2 = 0.9, 0.999


class BiasCorrectedRate(nn.learning_rate_schedule.LearningRateSchedule):
    """A learning rate per step (a number, or a list: past its end, its last value) times
    Adam's bias correction ``sqrt(1 - beta2**t) / (1 - beta1**t)``, computed in the graph.

    Example:
        >>> import mindspore as ms
        >>> rate = BiasCorrectedRate([1.0, 1.0, 0.5])
        >>> [round(float(rate(ms.Tensor([step], ms.int32)).asnumpy()[0]), 4) for step in range(4)]
        [0.3162, 0.2353, 0.101, 0.0919]
    """

    def __init__(self, rates: float | Sequence[float], beta1: float = BETA1, beta2: float = BETA2) -> None:
        super().__init__()
        values = [rates] if isinstance(rates, (int, float)) else list(rates)
        expect(len(values) >= 1 and all(isinstance(r, (int, float)) and r >= 0 for r in values), "learning rate",
               "a number >= 0 or a non-empty list of them", rates)
        self.rates = Tensor(np.asarray(values, np.float32))  # (steps,)
        self.last = len(values) - 1
        self.beta1 = Tensor(beta1, ms.float32)
        self.beta2 = Tensor(beta2, ms.float32)

    def construct(self, global_step: Tensor) -> Tensor:
        index = ops.minimum(global_step, self.last)  # (1,): past the list, its last rate
        t = (global_step + 1).astype(ms.float32)  # Adam's 1-based step
        factor = ops.sqrt(1.0 - ops.pow(self.beta2, t)) / (1.0 - ops.pow(self.beta1, t))
        return ops.gather(self.rates, index, 0) * factor


def adamw(groups: list[dict], rates: float | Sequence[float], eps: float = 1e-6) -> nn.Optimizer:
    """AdamW with bias correction: ``nn.AdamWeightDecay`` driven by :class:`BiasCorrectedRate`.

    Why not ``nn.Adam``: its ``weight_decay`` is an L2 term added to the gradient, which Adam
    then normalises, so every weight with a small gradient is pulled to zero at ~``lr`` per
    step. Measured on all-MiniLM-L6-v2 fine-tuned on SNLI (2,000 steps, peak 1e-4, decay 0.01):
    the weight matrices fell to 27-47% of their pretrained norm and test accuracy to 67%.
    ``nn.AdamWeightDecay`` decays the decoupled way but has no bias correction (its first
    steps move ~3x the rate); the corrected rate restores Adam's step (its ``eps`` then acts
    as ``eps * sqrt(1 - beta2**t)``, and the decay ``rate * weight_decay * w`` is scaled alike).

    Args:
        groups: parameter groups (:func:`~lrp_prune.pruner.parameter_groups`); a group's
            ``lr`` may be a number or a per-step list.
        rates: the learning rate of the other weights: a number, or one per step (after
            the list ends, its last value).
        eps: Adam's epsilon.

    Returns:
        The optimizer.

    Example:
        >>> import mindspore as ms
        >>> from lrp_prune import BertConfig, BertModel
        >>> from lrp_prune.flow import linear_schedule
        >>> from lrp_prune.pruner import parameter_groups
        >>> model = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
        ...                              num_attention_heads=4, intermediate_size=37, seq_length=8), True)
        >>> opt = adamw(parameter_groups(model), linear_schedule(1e-4, 100))
        >>> type(opt).__name__
        'AdamWeightDecay'
    """
    fixed = [dict(group, lr=BiasCorrectedRate(group["lr"])) if "lr" in group else group for group in groups]
    return nn.AdamWeightDecay(fixed, learning_rate=BiasCorrectedRate(rates), beta1=BETA1, beta2=BETA2, eps=eps)


_unscale = ops.MultitypeFuncGraph("unscale")


@_unscale.register("Tensor", "Tensor")
def _unscale_one(inv_scale: Tensor, grad: Tensor) -> Tensor:
    return grad * inv_scale.astype(grad.dtype)


class TrainStep(nn.Cell):
    """One optimizer step of a with-loss cell: scaled backward, overflow check, clipping, update.

    Args:
        network: a cell ``(input_ids, token_type_ids, input_mask, label_ids) -> loss``.
        optimizer: its optimizer.
        clip_norm: global gradient norm clip (ModelZoo's BERT fine-tuning uses 1.0) of the
            model's weights; ``None`` turns it off. Gate ``log_a`` gradients are left out of
            the norm: the L0/budget terms can make them large, and a joint clip would then
            scale the weights' gradients down to nothing.
        reducer: a gradient reducer for data parallelism (``nn.DistributedGradReducer``).

    ``construct(input_ids, token_type_ids, input_mask, label_ids, scale)`` returns
    ``(loss, finite)``: the update is applied only when every gradient is finite.
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

    def construct(self, input_ids, token_type_ids, input_mask, label_ids, scale):
        loss = self.network(input_ids, token_type_ids, input_mask, label_ids)
        sens = ops.fill(loss.dtype, loss.shape, 1.0) * scale.astype(loss.dtype)
        grads = self.grad(self.network, self.weights)(input_ids, token_type_ids, input_mask, label_ids, sens)
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


def _features(batch: Mapping[str, np.ndarray]) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(Tensor(np.asarray(batch[k], np.int32)) for k in FEATURE_KEYS)


def predict_logits(model: nn.Cell, batches: Iterable[Mapping[str, np.ndarray]],
                   progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run a classifier in eval mode over batches; returns ``(logits, labels)`` of real rows.

    Batches may carry ``"valid"`` (bool rows) for padding rows added to keep a fixed
    batch shape; those rows are dropped from the result.
    """
    model.set_train(False)
    all_logits, all_labels = [], []
    for batch in batches:
        logits = model(*_features(batch)).asnumpy()
        valid = np.asarray(batch.get("valid", np.ones(len(logits), bool)), bool)
        all_logits.append(logits[valid])
        if "label_ids" in batch:
            all_labels.append(np.asarray(batch["label_ids"])[valid])
        if progress is not None:
            progress(1)
    logits = np.concatenate(all_logits) if all_logits else np.zeros((0, 0), np.float32)
    labels = np.concatenate(all_labels) if all_labels else np.zeros((0,), np.int32)
    return logits, labels


def evaluate_accuracy(model: nn.Cell, batches: Iterable[Mapping[str, np.ndarray]],
                      progress: Callable[[int], None] | None = None) -> tuple[float, np.ndarray]:
    """Accuracy (in [0, 1]) and predictions of a classifier over labelled batches."""
    logits, labels = predict_logits(model, batches, progress)
    preds = logits.argmax(-1) if len(logits) else np.zeros((0,), np.int64)
    accuracy = float((preds == labels).mean()) if len(labels) else float("nan")
    return accuracy, preds


def measure_latency(model: nn.Cell, batch_size: int, seq_length: int, *, repeats: int = 5,
                    warmup: int = 1) -> list[float]:
    """Seconds per forward of ``model`` on a fixed ``(batch_size, seq_length)`` input (eval, graph)."""
    model.set_train(False)
    ids = Tensor(np.ones((batch_size, seq_length), np.int32))
    types = Tensor(np.zeros((batch_size, seq_length), np.int32))
    mask = Tensor(np.ones((batch_size, seq_length), np.int32))

    def run() -> None:
        out = model(ids, types, mask)
        (out[0] if isinstance(out, tuple) else out).asnumpy()

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def compare_latency(original: nn.Cell, pruned: nn.Cell, batch_size: int, seq_length: int,
                    repeats: int) -> dict[str, list[float]]:
    """Forward times of two models on one input shape, both compiled first, then measured in
    alternation (A, B, A, B, ...) so a noisy machine slows both alike.

    Returns ``{"unpruned_s": [...], "pruned_s": [...]}`` with ``repeats`` times each.
    """
    measure_latency(original, batch_size, seq_length, repeats=1)  # compile both first
    measure_latency(pruned, batch_size, seq_length, repeats=1)
    unpruned, pruned_times = [], []
    for _ in range(repeats):
        unpruned += measure_latency(original, batch_size, seq_length, repeats=1, warmup=0)
        pruned_times += measure_latency(pruned, batch_size, seq_length, repeats=1, warmup=0)
    return {"unpruned_s": unpruned, "pruned_s": pruned_times}

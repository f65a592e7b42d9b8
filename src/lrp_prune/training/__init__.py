"""Training primitives: optimizer and schedule, a CPU-safe train step, evaluation, latency.

- :mod:`~lrp_prune.training.optim`: ``adamw`` (AdamW + bias correction), ``linear_schedule``.
- :mod:`~lrp_prune.training.step`: ``TrainStep`` (loss scaling, clipping), ``DynamicLossScale``.
- :mod:`~lrp_prune.training.evaluate`: ``predict_logits``, ``evaluate_accuracy``.
- :mod:`~lrp_prune.training.timing`: ``measure_latency``, ``compare_latency``.
"""

from lrp_prune.training.evaluate import FEATURE_KEYS, evaluate_accuracy, predict_logits
from lrp_prune.training.optim import BETA1, BETA2, BiasCorrectedRate, adamw, linear_schedule
from lrp_prune.training.step import DynamicLossScale, TrainStep
from lrp_prune.training.timing import compare_latency, measure_latency

__all__ = [
    "TrainStep",
    "DynamicLossScale",
    "evaluate_accuracy",
    "predict_logits",
    "measure_latency",
    "compare_latency",
    "adamw",
    "BiasCorrectedRate",
    "linear_schedule",
    "FEATURE_KEYS",
    "BETA1",
    "BETA2",
]

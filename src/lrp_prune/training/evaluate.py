"""Evaluation: logits, accuracy and predictions of a classifier over batches (eval mode).

Batches are dicts of numpy arrays (:func:`~lrp_prune.data.batching.batches`); rows marked
invalid (``"valid"``, from ``pad_last=True``) are dropped from every result.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np
from mindspore import Tensor, nn

__all__ = ["FEATURE_KEYS", "predict_logits", "evaluate_accuracy"]

FEATURE_KEYS = ("input_ids", "token_type_ids", "input_mask")


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

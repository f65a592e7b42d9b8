"""Evaluation: logits, accuracy and predictions of a classifier over batches (eval mode).

Batches are dicts of numpy arrays (:func:`~lrp_prune.data.batching.batches`); rows marked
invalid (``"valid"``, from ``pad_last=True``) are dropped from every result.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import mindspore
import numpy as np
from mindspore import Tensor, nn

__all__ = ["FEATURE_KEYS", "predict_logits", "evaluate_accuracy", "classification_metrics"]

FEATURE_KEYS = ("input_ids", "token_type_ids", "input_mask")


def _features(batch: Mapping[str, np.ndarray]) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(Tensor(np.asarray(batch[k], np.int32)) for k in FEATURE_KEYS)


def predict_logits(model: nn.Cell, batches: Iterable[Mapping[str, np.ndarray]],
                   progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run a classifier in eval mode over batches; returns ``(logits, labels)`` of real rows.

    Batches may carry ``"valid"`` (bool rows) for padding rows added to keep a fixed
    batch shape; those rows are dropped from the result. Length buckets reorder examples:
    when batches carry ``"index"`` (each row's position in the dataset), the result is put
    back in dataset order, so row ``i`` is example ``i`` whatever the batching.

    Example:
        >>> class First(nn.Cell):
        ...     def construct(self, ids, types, mask):
        ...         return ids[:, :2].astype(mindspore.float32)
        >>> rows = [{"input_ids": np.array([[5, 0], [7, 1]]), "token_type_ids": np.zeros((2, 2)),
        ...          "input_mask": np.ones((2, 2)), "index": np.array([1, 0])}]
        >>> predict_logits(First(), rows)[0].tolist()
        [[7.0, 1.0], [5.0, 0.0]]
    """
    model.set_train(False)
    all_logits, all_labels, all_index = [], [], []
    for batch in batches:
        logits = model(*_features(batch)).asnumpy()
        valid = np.asarray(batch.get("valid", np.ones(len(logits), bool)), bool)
        all_logits.append(logits[valid])
        if "label_ids" in batch:
            all_labels.append(np.asarray(batch["label_ids"])[valid])
        if "index" in batch:
            all_index.append(np.asarray(batch["index"])[valid])
        if progress is not None:
            progress(1)
    logits = np.concatenate(all_logits) if all_logits else np.zeros((0, 0), np.float32)
    labels = np.concatenate(all_labels) if all_labels else np.zeros((0,), np.int32)
    if all_index:
        order = np.argsort(np.concatenate(all_index), kind="stable")  # batch order -> dataset order
        logits, labels = logits[order], (labels[order] if len(labels) else labels)
    return logits, labels


def evaluate_accuracy(model: nn.Cell, batches: Iterable[Mapping[str, np.ndarray]],
                      progress: Callable[[int], None] | None = None) -> tuple[float, np.ndarray]:
    """Accuracy (in [0, 1]) and predictions of a classifier over labelled batches."""
    logits, labels = predict_logits(model, batches, progress)
    preds = logits.argmax(-1) if len(logits) else np.zeros((0,), np.int64)
    accuracy = float((preds == labels).mean()) if len(labels) else float("nan")
    return accuracy, preds


def classification_metrics(predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                           metric: str = "accuracy") -> dict:
    """Accuracy, accuracy per class, the confusion matrix and the task's metric.

    Args:
        predictions / labels: ``(N,)`` class ids.
        label_names: class names by id.
        metric: ``"accuracy"``, ``"f1"`` (F1 of class 1, as GLUE's MRPC and QQP report it) or
            ``"mcc"`` (Matthews correlation, CoLA's).

    Returns:
        ``{"accuracy", "per_class_accuracy": {name: acc}, "confusion": [[...]] (rows: true class,
        columns: predicted), "support": {name: n}}``, plus ``"f1"`` or ``"mcc"``.

    Example:
        >>> m = classification_metrics(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), ("no", "yes"), "f1")
        >>> m["accuracy"], m["per_class_accuracy"], m["confusion"], round(m["f1"], 3)
        (0.75, {'no': 0.667, 'yes': 1.0}, [[2, 1], [0, 1]], 0.667)
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    k = len(label_names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    support = confusion.sum(1)
    per_class = {name: (round(float(confusion[i, i] / support[i]), 3) if support[i] else None)
                 for i, name in enumerate(label_names)}
    out = {"accuracy": float((predictions == labels).mean()) if len(labels) else float("nan"),
           "per_class_accuracy": per_class, "confusion": confusion.tolist(),
           "support": {name: int(support[i]) for i, name in enumerate(label_names)}}
    if metric == "f1":
        tp, fp, fn = confusion[1, 1], confusion[0, 1], confusion[1, 0]
        out["f1"] = float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0
    elif metric == "mcc":
        tp, tn, fp, fn = (float(x) for x in (confusion[1, 1], confusion[0, 0], confusion[0, 1], confusion[1, 0]))
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        out["mcc"] = float((tp * tn - fp * fn) / denominator) if denominator else 0.0
    return out

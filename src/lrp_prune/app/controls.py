"""The equal-budget control: what the pruned model is compared with, and its cache.

A gated phase is also ``control_steps`` more steps of training. The control arm trains an
ungated copy of the same start for exactly as many steps, with the same optimizer, schedule,
clipping, loss scaling, dropout, seed, batches and order (and the same distillation term from
the same teacher when distillation is on), and is evaluated on the same pairs. The headline
drop is ``pruned - max(start, control)``, with a paired 95% bootstrap interval over the pairs.

The control depends only on (start weights, recipe, seed, data, pairs), never on the pruning
budget, so its result is cached under a key of exactly those: a lambda sweep or an accuracy
curve pays for it once. The cache is a directory of small JSON files (``LRP_PRUNE_CACHE``'s
``controls/`` by default), written atomically.

Example:
    >>> import numpy as np
    >>> pruned = np.array([1, 1, 0, 1, 1, 0, 1, 1] * 50, bool)
    >>> reference = np.array([1, 1, 1, 1, 1, 0, 1, 0] * 50, bool)
    >>> drop, (low, high) = paired_drop(pruned, reference, seed=0)
    >>> round(drop, 4), low < drop < high
    (0.0, True)
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["control_key", "load_control", "store_control", "paired_drop", "default_cache_dir"]

logger = logging.getLogger(__name__)

#: PruneOptions fields that shape the control arm (its key); nothing about the pruning budget.
CONTROL_FIELDS = ("task", "model", "pooling", "max_seq_length", "buckets", "batch_size", "eval_batch_size",
                  "finetune_steps", "finetune_lr", "learning_rate", "weight_decay", "warmup_fraction", "lr_schedule",
                  "dropout", "freeze_word_embeddings",
                  "seed", "do_shuffle", "enable_lossscale", "loss_scale", "loss_scale_window", "distill",
                  "distill_alpha", "distill_temperature", "train_limit", "eval_limit", "eval_split",
                  "validation_fraction", "validation_seed")
_VERSION = 2  # 2: predictions in dataset order (version 1 kept bucket order, which made paired drops wrong)


def default_cache_dir() -> Path:
    """``<cache>/controls``, beside the pinned assets (``LRP_PRUNE_CACHE`` moves both)."""
    from lrp_prune.io.assets import cache_dir

    return cache_dir() / "controls"


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(value.dtype).encode() + str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def control_key(options: Any, steps: int, start_params: Mapping[str, np.ndarray],
                train: Mapping[str, np.ndarray], evaluation: Mapping[str, np.ndarray]) -> str:
    """The cache key of a control arm: the start weights, the recipe fields that shape it, its
    steps, the training data (and where its stream starts) and the evaluated pairs."""
    recipe = {name: getattr(options, name, None) for name in CONTROL_FIELDS}
    recipe = json.loads(json.dumps(recipe, default=list))
    parts = {"version": _VERSION, "recipe": recipe, "steps": steps, "start": _digest(start_params),
             "train": _digest(train), "pairs": _digest(evaluation)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def load_control(cache: Path | None, key: str) -> dict[str, Any] | None:
    """The cached control of ``key`` (``{"accuracy", "predictions", "steps", "seconds"}``), or ``None``."""
    if cache is None:
        return None
    path = Path(cache) / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or "predictions" not in data:
        return None
    data["predictions"] = np.asarray(data["predictions"], np.int64)
    return data


def store_control(cache: Path | None, key: str, result: Mapping[str, Any]) -> None:
    """Write a control result under ``key`` (atomically; a cache that cannot be written is only logged)."""
    if cache is None:
        return
    from lrp_prune.io.checkpoint import atomic_write_text

    data = dict(result, key=key, predictions=np.asarray(result["predictions"]).astype(int).tolist())
    try:
        Path(cache).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(cache) / f"{key}.json", json.dumps(data))
    except OSError as err:
        logger.warning("control cache %s: not written (%s)", cache, err)


def paired_drop(pruned_correct: np.ndarray, reference_correct: np.ndarray, *, resamples: int = 2000,
                seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Accuracy difference ``pruned - reference`` on the same pairs, with a paired 95% bootstrap interval.

    Args:
        pruned_correct / reference_correct: ``(N,)`` bools, one per evaluated pair.
        resamples: bootstrap resamples of the pairs.
        seed: the bootstrap's seed.

    Returns:
        ``(difference, (low, high))`` as fractions (multiply by 100 for points).
    """
    a = np.asarray(pruned_correct, np.float64)
    b = np.asarray(reference_correct, np.float64)
    diff = a - b  # (N,): -1, 0 or 1 per pair
    n = len(diff)
    if n == 0:
        return float("nan"), (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 200):  # (200, N) index blocks keep memory small
        idx = rng.integers(0, n, size=(min(200, resamples - start), n))
        means[start:start + len(idx)] = diff[idx].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), (float(low), float(high))

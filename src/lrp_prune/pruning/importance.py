"""Head importance from gradients of a per-example mask (Michel et al. 2019; Kwon et al. 2022).

Put a mask variable ``m = 1`` on every head *of every example* (shape ``[batch, layers, heads]``)
and differentiate each example's loss ``L_i`` with respect to its own row ``m_i``: since
example ``i``'s loss depends only on ``m_i``, one backward pass of ``sum_i L_i`` gives every
``g_i = dL_i/dm_i`` at once. Then, over ``N`` examples:

- the empirical Fisher of a head: ``sum_i g_i[l, h] ** 2`` (Kwon et al.: the loss increase of
  removing a set of heads is about ``1/2 dm^T F dm``);
- Michel et al.'s score: ``mean_i |g_i[l, h]|``;
- the Fisher block of each layer, ``sum_i g_i[l] g_i[l]^T`` (``[layers, heads, heads]``), which
  the mask search uses to rearrange heads within a layer.

``L_i`` is the cross-entropy with the example's label or, with ``labels="predictions"``,
with the model's own prediction (for data without labels). The model runs in eval mode (no
dropout) and its weights are not changed; whatever gates it carries are set aside while the
masks are in place and put back afterwards. Use training examples, never the pairs you
evaluate on. The gradients come from one compiled graph per batch shape (GRAPH_MODE is the
caller's choice): pass batches of one row count (``batches(..., drop_remainder=False,
pad_last=True)``; rows whose ``"valid"`` is False count for nothing).

Example:
    >>> import numpy as np
    >>> from lrp_prune import BertClassifier, BertConfig
    >>> from lrp_prune.data.batching import batches
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> clf = BertClassifier(cfg, is_training=False, num_labels=3)
    >>> rng = np.random.default_rng(0)
    >>> data = {"input_ids": rng.integers(1, 50, (6, 8)).astype(np.int32),
    ...         "token_type_ids": np.zeros((6, 8), np.int32), "input_mask": np.ones((6, 8), np.int32),
    ...         "label_ids": rng.integers(0, 3, 6).astype(np.int32)}
    >>> imp = head_importance(clf, batches(data, 4, drop_remainder=False, pad_last=True))
    >>> imp.fisher.shape, imp.fisher_blocks.shape, imp.examples
    ((2, 4), (2, 4, 4), 6)
    >>> bool(np.allclose(np.diagonal(imp.fisher_blocks, axis1=1, axis2=2), imp.fisher))
    True
    >>> imp.scores("fisher", normalise="total").sum().round(6)
    1.0
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from lrp_prune.errors import LRPPruneError, check_choice, expect
from lrp_prune.network.bert import refresh_cell
from lrp_prune.network.gates import HEADS, ModelGates

__all__ = ["HeadImportance", "head_importance", "importance_log_a", "IMPORTANCE_KINDS", "NORMALISATIONS"]

logger = logging.getLogger(__name__)

IMPORTANCE_KINDS = ("fisher", "michel")
NORMALISATIONS = (None, "layer", "total")


@dataclass(frozen=True)
class HeadImportance:
    """Per-head importance of a model, ``[layers, heads]`` by original head index (NaN: a head the
    model no longer has).

    Attributes:
        fisher: empirical Fisher ``sum_i (dL_i/dm)^2``.
        michel: Michel et al.'s ``mean_i |dL_i/dm|``.
        fisher_blocks: ``[layers, heads, heads]``: ``sum_i g_i g_i^T`` within each layer.
        examples: examples the sums run over.
        labels: ``"labels"`` or ``"predictions"`` (what the loss compared with).
        seconds: wall time of the computation (compile included).
    """

    fisher: np.ndarray
    michel: np.ndarray
    fisher_blocks: np.ndarray
    examples: int
    labels: str
    seconds: float

    def scores(self, kind: str = "fisher", normalise: str | None = None) -> np.ndarray:
        """One importance grid, optionally normalised.

        Args:
            kind: ``"fisher"`` or ``"michel"``.
            normalise: ``None`` (raw), ``"layer"`` (each layer divided by its L2 norm, as Michel et
                al. do before ranking heads across layers) or ``"total"`` (the grid sums to 1).
        """
        check_choice(kind, "kind", IMPORTANCE_KINDS)
        check_choice(normalise, "normalise", NORMALISATIONS)
        grid = (self.fisher if kind == "fisher" else self.michel).copy()
        if normalise == "layer":
            norms = np.sqrt(np.nansum(grid ** 2, axis=1, keepdims=True))
            grid = grid / np.where(norms > 0, norms, 1.0)
        elif normalise == "total":
            total = np.nansum(grid)
            grid = grid / (total if total > 0 else 1.0)
        return grid

    def to_dict(self) -> dict:
        """JSON-ready: the two grids (NaN as ``None``), examples, labels, seconds."""
        def rows(grid: np.ndarray) -> list:
            return [[None if np.isnan(v) else float(v) for v in row] for row in grid]
        return {"fisher": rows(self.fisher), "michel": rows(self.michel), "examples": self.examples,
                "labels": self.labels, "seconds": round(self.seconds, 2)}


class _ExampleMask(nn.Cell):
    """The gate of importance scoring: ``m`` of shape ``(batch, n)``, all ones."""

    kind = "example_mask"

    def __init__(self, batch: int, num_units: int) -> None:
        super().__init__()
        self.m = Parameter(Tensor(np.ones((batch, num_units), np.float32)), name="m")

    def construct(self) -> Tensor:
        return self.m  # (B, n)


class _SummedLoss(nn.Cell):
    """``sum_i w_i * CE(logits_i, y_i)``; ``y`` is the label or the model's own prediction."""

    def __init__(self, model: nn.Cell, use_labels: bool) -> None:
        super().__init__()
        self.model = model
        self.use_labels = use_labels

    def construct(self, input_ids, token_type_ids, input_mask, label_ids, weights):
        logits = self.model(input_ids, token_type_ids, input_mask)  # (B, C)
        if not self.use_labels:
            label_ids = ops.stop_gradient(logits).argmax(-1).astype(ms.int32)
        log_p = ops.log_softmax(logits.astype(ms.float32), -1)  # (B, C)
        nll = -ops.gather_elements(log_p, 1, label_ids.reshape(-1, 1)).reshape(-1)  # (B,)
        return (nll * weights).sum()


class _MaskGrads(nn.Cell):
    def __init__(self, loss: nn.Cell, masks: list[Parameter]) -> None:
        super().__init__()
        self.loss = loss
        self.masks = ParameterTuple(masks)
        self.grad = ops.GradOperation(get_by_list=True)

    def construct(self, *inputs):
        return self.grad(self.loss, self.masks)(*inputs)


def head_importance(model: nn.Cell, batches: Iterable[Mapping[str, np.ndarray]], *, labels: str = "labels",
                    progress: Callable[[int], None] | None = None) -> HeadImportance:
    """Fisher and Michel importance of every head of the classifier ``model`` over ``batches``.

    Args:
        model: a classifier: ``model(input_ids, token_type_ids, input_mask)`` returns logits
            ``(B, classes)`` (a :class:`~lrp_prune.network.bert.BertClassifier` or a model of your
            own with a BertModel inside). Gated or not; it is left as it was.
        batches: dicts with ``input_ids``, ``token_type_ids``, ``input_mask`` (and ``label_ids``
            unless ``labels="predictions"``), every batch with the same number of rows; an
            optional bool ``"valid"`` marks padding rows, which count for nothing.
        labels: ``"labels"`` (the loss against ``label_ids``) or ``"predictions"`` (against the
            model's own argmax: for data without labels).
        progress: called with 1 after each batch.

    Returns:
        A :class:`HeadImportance`.

    Raises:
        LRPPruneError: no batches, batches of different row counts, a missing key, or a model
            with no heads left.
    """
    check_choice(labels, "labels", ("labels", "predictions"))
    gates = ModelGates(model, "head_importance")
    config = gates.config
    layers, width = config.num_hidden_layers, config.num_attention_heads
    hosts = [(i, host) for i, host in gates.hosts(HEADS) if host.units]
    expect(bool(hosts), "model", "a model with at least one head", "a model with no heads left")
    started = time.perf_counter()
    iterator = iter(batches)
    first = next(iterator, None)
    expect(first is not None, "batches", "at least one batch", "none")
    needed = ("input_ids", "token_type_ids", "input_mask") + (("label_ids",) if labels == "labels" else ())
    rows = len(first["input_ids"])

    saved = [(host, host.gate) for _, host in hosts]
    was_training, was_gated = model.training, gates.bert.is_gated
    masks = [_ExampleMask(rows, len(host.units)) for _, host in hosts]
    fisher = np.zeros((layers, width))
    michel = np.zeros((layers, width))
    blocks = np.zeros((layers, width, width))
    examples = 0
    try:
        for (_, host), mask in zip(hosts, masks):
            host.gate = mask
        gates.bert.is_gated = True
        refresh_cell(model)
        grads = _MaskGrads(_SummedLoss(model, labels == "labels"), [m.m for m in masks])
        grads.set_train(False)
        model.set_train(False)
        batch = first
        while batch is not None:
            missing = [k for k in needed if k not in batch]
            if missing:
                raise LRPPruneError(f"batches: expected keys {list(needed)}, got a batch without {missing}")
            expect(len(batch["input_ids"]) == rows, "batches", f"batches of {rows} rows each (pad_last=True)",
                   f"a batch of {len(batch['input_ids'])} rows")
            valid = np.asarray(batch.get("valid", np.ones(rows, bool)), bool)
            label_ids = np.asarray(batch["label_ids"] if labels == "labels" else np.zeros(rows), np.int32)
            inputs = [Tensor(np.asarray(batch[k], np.int32)) for k in needed[:3]]
            out = grads(*inputs, Tensor(label_ids), Tensor(valid.astype(np.float32)))
            for (layer, host), g in zip(hosts, out):
                g = g.asnumpy().astype(np.float64)[valid]  # (b, n): dL_i/dm_i of the real rows
                units = list(host.units)
                fisher[layer, units] += (g ** 2).sum(0)
                michel[layer, units] += np.abs(g).sum(0)
                blocks[np.ix_([layer], units, units)] += (g.T @ g)[None]  # (1, n, n)
            examples += int(valid.sum())
            if progress is not None:
                progress(1)
            batch = next(iterator, None)
    finally:
        for host, gate in saved:
            host.gate = gate
        gates.bert.is_gated = was_gated
        refresh_cell(model)
        model.set_train(was_training)
    expect(examples > 0, "batches", "at least one valid row", "no valid rows")
    missing_heads = _missing(gates, layers, width)
    fisher[missing_heads] = np.nan
    michel = michel / examples
    michel[missing_heads] = np.nan
    seconds = time.perf_counter() - started
    logger.info("head_importance: %d examples, %d layers in %.1f s", examples, len(hosts), seconds)
    return HeadImportance(fisher=fisher, michel=michel, fisher_blocks=blocks, examples=examples,
                          labels=labels, seconds=seconds)


def _missing(gates: ModelGates, layers: int, width: int) -> np.ndarray:
    """Heads the model no longer has (pruned before), bool ``[layers, width]``."""
    present = np.zeros((layers, width), bool)
    for i, host in gates.hosts(HEADS):
        present[i, list(host.units)] = True
    return ~present


def importance_log_a(importance: HeadImportance | np.ndarray, center: float = 3.0, spread: float = 1.0,
                     z_clip: float = 2.0) -> np.ndarray:
    """Initial ``log_a`` of LRP's gates from importance: ``center + spread * clip(z, -z_clip, z_clip)``.

    ``z`` is the standardised log of the Fisher importance over the heads the model has (mean 0,
    standard deviation 1), so the heads' ranking survives and the scale does not depend on the
    loss's units. With the defaults ``log_a`` spans [1, 5] around the open init (3): in eval every
    head with ``log_a`` above 2.4 has a gate of exactly 1, so the gated model starts almost where
    the model was; in training the least important heads start with P(closed) about 0.14 and the
    most important about 0.003, so the L0 penalty closes the unimportant ones first. Missing heads
    (NaN) get ``center``.

    Example:
        >>> importance_log_a(np.array([[1.0, 10.0, 100.0], [1000.0, 10000.0, np.nan]])).round(2).tolist()
        [[1.59, 2.29, 3.0], [3.71, 4.41, 3.0]]
    """
    fisher = importance.fisher if isinstance(importance, HeadImportance) else np.asarray(importance, float)
    logs = np.log(np.where(np.isnan(fisher), np.nan, np.maximum(fisher, 1e-30)))
    present = ~np.isnan(logs)
    z = np.zeros_like(logs)
    if present.sum() > 1 and np.std(logs[present]) > 0:
        z[present] = (logs[present] - logs[present].mean()) / logs[present].std()
    return center + spread * np.clip(z, -z_clip, z_clip)

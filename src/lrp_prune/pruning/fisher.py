"""Retraining-free head pruning (Kwon et al. 2022): importance, mask search, mask tuning; no training.

``PruningType.FISHER`` from the same factory as LRP builds a :class:`FisherHeadPruner`:

1. ``apply(model)`` puts a :class:`~lrp_prune.network.mask_gate.MaskGate` on every attention
   layer (all heads kept, scale 1: the model computes what it computed);
2. ``prune(model, batches, target_heads=36)`` scores every head on training batches
   (:func:`~lrp_prune.pruning.importance.head_importance`), keeps the ``target_heads`` with the
   highest Fisher importance (:func:`search_mask`: every head costs the same, so "greedy by
   importance per cost" is the top ``T``), rearranges the kept heads within each layer with the
   layer's Fisher block, then tunes each kept head's scale by least squares, layer by layer
   (:func:`tune_scales`);
3. ``convert(model)`` builds the physically smaller model as for LRP: removed heads sliced
   out, each kept head's scale folded into its ``W_O`` columns, so the pruned model equals the
   masked model in eval.

Which heads are kept is the mask's decision, never a scale's value (:class:`MaskGate`).

Mask tuning. For layer ``l`` the target is the *unpruned* model's attention sub-layer output
before its LayerNorm, ``x + sum_h head_h(x) W_O,h + b_O`` on the unpruned model's own
activations ``x``; the prediction is ``x' + b_O + sum_{h kept} s_h head_h(x') W_O,h`` on the
*pruned* model's activations ``x'`` (scales of the layers below already tuned, so errors do
not compound). Over every real token, ``s`` solves the damped normal equations
``(G + lam I) s = C^T r + lam 1`` with ``G = C^T C`` and ``lam = damping * mean(diag G)``:
the damping pulls scales towards 1 (the untuned mask), not towards 0. Scales are then
clipped to ``scale_clip``; the default ``(0, 2)`` allows no negative scale (a negative scale
flips a head's contribution, which a least-squares fit on a few thousand tokens may ask for
and the test pairs then punish).

Example:
    >>> import numpy as np
    >>> from lrp_prune import BertClassifier, BertConfig, HeadPruningFactory, ModelGates
    >>> from lrp_prune.data.batching import batches
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> pruner = HeadPruningFactory.get_pruner({"prune_type": "FISHER", "arch_type": "BERT",
    ...                                         "config": {"target_heads": 5}})
    >>> clf = pruner.apply(BertClassifier(cfg, is_training=False, num_labels=3))
    >>> rng = np.random.default_rng(0)
    >>> data = {"input_ids": rng.integers(1, 50, (16, 8)).astype(np.int32),
    ...         "token_type_ids": np.zeros((16, 8), np.int32), "input_mask": np.ones((16, 8), np.int32),
    ...         "label_ids": rng.integers(0, 3, 16).astype(np.int32)}
    >>> result = pruner.prune(clf, lambda: batches(data, 8, drop_remainder=False, pad_last=True))
    >>> int(result.mask.sum()), int(ModelGates(clf).kept().sum())
    (5, 5)
    >>> pruned = pruner.convert(clf)
    >>> pruned.prune_summary.heads_kept
    5
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from mindspore import Tensor, nn

from lrp_prune.errors import LRPPruneError, check_bool, check_choice, check_number, expect
from lrp_prune.network.bert import refresh_cell
from lrp_prune.network.gates import HEADS, ModelGates
from lrp_prune.network.mask_gate import MaskGate
from lrp_prune.pruning.budget import check_target, resolve_target
from lrp_prune.pruning.convert import convert_gated
from lrp_prune.pruning.importance import IMPORTANCE_KINDS, HeadImportance, head_importance

__all__ = ["FisherConfig", "FisherHeadPruner", "FisherResult", "search_mask", "rearrange_layer", "tune_scales"]

logger = logging.getLogger(__name__)

Batches = Callable[[], Iterable[Mapping[str, np.ndarray]]]

#: Subsets of one layer searched exhaustively up to this many (12 heads: at most C(12, 6) = 924).
_EXHAUSTIVE_LIMIT = 20000


@dataclass(frozen=True)
class FisherConfig:
    """The validated config of :class:`FisherHeadPruner` (the factory's inner ``"config"`` dict).

    Attributes:
        target_heads: heads to keep (an int, or a fraction in (0, 1) of the model's heads);
            ``prune(..., target_heads=...)`` may override it.
        importance: ranking score, ``"fisher"`` (Kwon et al.) or ``"michel"`` (Michel et al.).
        labels: ``"labels"`` or ``"predictions"`` (data without labels).
        rearrange: re-pick the kept heads within each layer with its Fisher block.
        tune: tune the kept heads' scales by least squares.
        damping: the least squares' damping, relative to the Gram matrix's mean diagonal.
        scale_clip: ``(low, high)`` bounds of a tuned scale.
        reference: what the least squares fit, ``"unpruned"`` or ``"own"`` (see :func:`tune_scales`).
        model_config: an optional BertConfig ``apply()`` checks the model against.
    """

    target_heads: float | int | None = None
    importance: str = "fisher"
    labels: str = "labels"
    rearrange: bool = True
    tune: bool = True
    damping: float = 0.01  # chosen on SNLI validation pairs (docs/retraining-free.md)
    scale_clip: tuple[float, float] = (0.0, 2.0)  # no negative scales; see the module doc
    reference: str = "unpruned"  # what tuning fits: see tune_scales
    model_config: Any = None

    def __post_init__(self) -> None:
        if self.target_heads is not None:
            object.__setattr__(self, "target_heads", check_target(self.target_heads))
        check_choice(self.importance, "importance", IMPORTANCE_KINDS)
        check_choice(self.labels, "labels", ("labels", "predictions"))
        check_choice(self.reference, "reference", ("unpruned", "own"))
        object.__setattr__(self, "rearrange", check_bool(self.rearrange, "rearrange"))
        object.__setattr__(self, "tune", check_bool(self.tune, "tune"))
        object.__setattr__(self, "damping", check_number(self.damping, "damping", minimum=0))
        clip = self.scale_clip
        ok = (isinstance(clip, (tuple, list)) and len(clip) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in clip)
              and clip[0] < clip[1])
        expect(ok, "scale_clip", "two finite numbers (low, high) with low < high", clip)
        object.__setattr__(self, "scale_clip", (float(clip[0]), float(clip[1])))

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "FisherConfig":
        """Map the factory's inner ``"config"`` dict onto the fields (validated by the class)."""
        from lrp_prune.pruning.lrp import _as_bert_config

        expect(isinstance(config, Mapping), "config", "a dict", config)
        unknown = sorted(set(config) - set(FISHER_KEYS))
        if unknown:
            raise LRPPruneError(f"config: unknown keys {unknown} for prune_type FISHER; known keys are "
                                f"{list(FISHER_KEYS)}")
        values = {k: config[k] for k in config if k not in ("model_params", "model_config")}
        for key in ("model_params", "model_config"):
            if key in config:
                params = config[key]
                expect(isinstance(params, Mapping) and "config" in params, key,
                       "a dict with key 'config' holding the BertConfig", params)
                values["model_config"] = _as_bert_config(params["config"], f"{key}['config']")
        if isinstance(values.get("scale_clip"), list):
            values["scale_clip"] = tuple(values["scale_clip"])
        return cls(**values)


FISHER_KEYS = ("target_heads", "importance", "labels", "rearrange", "tune", "damping", "scale_clip", "reference",
               "model_params", "model_config")


@dataclass
class FisherResult:
    """What :meth:`FisherHeadPruner.prune` found.

    Attributes:
        importance: the :class:`~lrp_prune.pruning.importance.HeadImportance` it ranked by.
        mask: bool ``[layers, heads]``, the heads kept.
        scales: ``[layers, heads]`` tuned scales of the kept heads (1 without tuning; NaN where
            a head is removed).
        timings: seconds of each step (``importance_s``, ``search_s``, ``tune_s``).
    """

    importance: HeadImportance
    mask: np.ndarray
    scales: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"importance": self.importance.to_dict(), "mask": self.mask.astype(int).tolist(),
                "scales": [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in self.scales],
                "timings": {k: round(v, 2) for k, v in self.timings.items()}}


# ---------------------------------------------------------------------- the mask search
def rearrange_layer(block: np.ndarray, keep: int, available: np.ndarray | None = None) -> np.ndarray:
    """The ``keep`` heads of one layer whose removal costs least under the layer's Fisher block.

    Removing the heads ``R`` raises the loss by about ``1/2 sum_{i,j in R} F_ij``; this picks the
    kept set minimising it (every subset when there are at most 20,000, else greedy removal).

    Example:
        >>> F = np.array([[1.0, 0.9, 0.0], [0.9, 1.1, 0.0], [0.0, 0.0, 1.2]])
        >>> rearrange_layer(F, 1).tolist()   # the diagonal alone keeps head 2: removing 0 and 1 costs 3.9
        [False, True, False]
    """
    n = block.shape[0]
    available = np.ones(n, bool) if available is None else np.asarray(available, bool)
    candidates = np.flatnonzero(available)
    expect(0 <= keep <= len(candidates), "keep", f"an int in [0, {len(candidates)}]", keep)
    kept = np.zeros(n, bool)
    if keep == len(candidates):
        kept[candidates] = True
        return kept
    if math.comb(len(candidates), keep) <= _EXHAUSTIVE_LIMIT:
        best, best_cost = None, np.inf
        for subset in itertools.combinations(candidates, keep):  # deterministic order: ties keep the first
            removed = np.setdiff1d(candidates, subset)
            cost = block[np.ix_(removed, removed)].sum()
            if cost < best_cost - 1e-12 * abs(best_cost if np.isfinite(best_cost) else 0):
                best, best_cost = subset, cost
        kept[list(best)] = True
        return kept
    removed: list[int] = []
    left = list(candidates)
    while len(left) > keep:
        costs = [block[np.ix_(removed + [h], removed + [h])].sum() for h in left]
        removed.append(left.pop(int(np.argmin(costs))))
    kept[left] = True
    return kept


def search_mask(importance: HeadImportance, target_heads: int, *, kind: str = "fisher",
                rearrange: bool = True) -> np.ndarray:
    """The heads to keep: the ``target_heads`` most important, then rearranged within each layer.

    Args:
        importance: scores from :func:`~lrp_prune.pruning.importance.head_importance`.
        target_heads: heads to keep (a count, at most the heads the model has).
        kind: rank by ``"fisher"`` or ``"michel"``.
        rearrange: keep each layer's count but re-pick its heads with :func:`rearrange_layer`.

    Returns:
        bool ``[layers, heads]``.

    Example:
        >>> from lrp_prune.pruning.importance import HeadImportance
        >>> f = np.array([[4.0, 1.0, 3.0], [2.0, 5.0, 0.5]])
        >>> imp = HeadImportance(f, f, np.stack([np.diag(r) for r in f]), 10, "labels", 0.0)
        >>> search_mask(imp, 3).astype(int).tolist()
        [[1, 0, 1], [0, 1, 0]]
    """
    scores = importance.scores(kind)
    available = ~np.isnan(scores)
    total = int(available.sum())
    expect(1 <= target_heads <= total, "target_heads", f"an int in [1, {total}]", target_heads)
    flat = np.where(available, scores, -np.inf).reshape(-1)
    order = np.lexsort((np.arange(flat.size), -flat))  # highest first; ties by position
    mask = np.zeros(flat.size, bool)
    mask[order[:target_heads]] = True
    mask = mask.reshape(scores.shape)
    if rearrange:
        for layer in range(mask.shape[0]):
            mask[layer] = rearrange_layer(importance.fisher_blocks[layer], int(mask[layer].sum()),
                                          available[layer])
    return mask


# ---------------------------------------------------------------------- mask tuning
def _mask_gates(model: nn.Cell, caller: str) -> tuple[ModelGates, list[tuple[int, nn.Cell]]]:
    gates = ModelGates(model, caller)
    hosts = gates.hosts(HEADS)
    bad = [i for i, host in hosts if host.units and not isinstance(host.gate, MaskGate)]
    if bad:
        raise LRPPruneError(f"{caller}: expected a model with mask gates (FisherHeadPruner.apply()), got layer "
                            f"{bad[0]} with {type(hosts[bad[0]][1].gate).__name__ if hosts[bad[0]][1].gate else 'no gate'}")
    return gates, hosts


def tune_scales(model: nn.Cell, batches: Iterable[Mapping[str, np.ndarray]], *, damping: float = 0.01,
                scale_clip: tuple[float, float] = (0.0, 2.0), reference: str = "unpruned",
                progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Least-squares scales of the kept heads, layer by layer (see the module doc); set on the model.

    Args:
        model: a model whose attention layers carry :class:`MaskGate` s (its masks say which
            heads are kept; their scales are overwritten).
        batches: training batches (``input_ids``, ``token_type_ids``, ``input_mask``; optional
            ``"valid"``); held in memory layer by layer, so a few hundred to a few thousand examples.
        damping: ``lam = damping * mean(diag(C^T C))``, pulling scales towards 1.
        scale_clip: bounds of a scale.
        reference: ``"unpruned"`` (Kwon et al.: the target is the unpruned model's output on its own
            activations, so the fit also corrects the drift of the layers below) or ``"own"`` (the
            target is the layer with every head on the *pruned* model's activations: the fit only
            makes up for this layer's removed heads).
        progress: called with 1 after each layer.

    Returns:
        ``[layers, heads]`` scales (NaN where a head is removed).
    """
    check_choice(reference, "reference", ("unpruned", "own"))
    gates, hosts = _mask_gates(model, "tune_scales")
    bert = gates.bert
    config = gates.config
    d = config.head_size
    kept_grid = gates.kept(HEADS)
    scales = np.full(kept_grid.shape, np.nan)
    was_training = model.training
    model.set_train(False)
    before = [(host.gate, host.gate.mask.asnumpy().copy(), host.gate.scale.asnumpy().copy())
              for _, host in hosts if host.units]
    states = []  # per batch: [x_teacher, x_pruned, mask_adder, real tokens (B*S,)]
    for batch in batches:
        ids, types, mask = (Tensor(np.asarray(batch[k], np.int32)) for k in ("input_ids", "token_type_ids",
                                                                              "input_mask"))
        x, adder = bert.embed(ids, types, mask)
        valid = np.asarray(batch.get("valid", np.ones(len(batch["input_ids"]), bool)), bool)
        tokens = (np.asarray(batch["input_mask"]) > 0) & valid[:, None]  # (B, S)
        states.append([x, x, adder, tokens.reshape(-1)])
    expect(bool(states), "batches", "at least one batch", "none")
    try:
        for layer, host in hosts:
            cell = bert.bert_encoder.layers[layer]
            if not host.units:
                for state in states:
                    state[0] = state[1] = cell(state[0], state[2])
                if progress is not None:
                    progress(1)
                continue
            gate: MaskGate = host.gate
            kept = gate.kept()
            n = len(host.units)
            gate.set_mask(np.ones(n))
            gate.set_scale(np.ones(n))
            dense = cell.attention.output.dense
            w_o = dense.weight.asnumpy().astype(np.float64).reshape(-1, n, d)  # (H, n, d)
            b_o = dense.bias.asnumpy().astype(np.float64) if dense.has_bias else 0.0
            positions = np.flatnonzero(kept)
            k = len(positions)
            gram, rhs = np.zeros((k, k)), np.zeros(k)
            hidden = w_o.shape[0]
            for x_t, x_p, adder, flat in (states if k else []):
                ctx_p = host(x_p, adder).asnumpy().astype(np.float64).reshape(-1, n, d)[flat]  # (T, n, d)
                xp = x_p.asnumpy().astype(np.float64).reshape(-1, hidden)[flat]  # (T, H)
                if reference == "own":  # every head, on the pruned model's own activations
                    target = xp + ctx_p.reshape(-1, n * d) @ w_o.reshape(hidden, -1).T + b_o  # (T, H)
                else:  # the unpruned model on its own activations
                    ctx_t = host(x_t, adder).asnumpy().astype(np.float64).reshape(-1, n * d)[flat]  # (T, n*d)
                    xt = x_t.asnumpy().astype(np.float64).reshape(-1, hidden)[flat]  # (T, H)
                    target = xt + ctx_t @ w_o.reshape(hidden, -1).T + b_o  # (T, H)
                contrib = np.stack([ctx_p[:, h] @ w_o[:, h].T for h in positions]).reshape(k, -1)  # (k, T*H)
                residual = (target - xp - b_o).reshape(-1)  # (T*H,)
                gram += contrib @ contrib.T
                rhs += contrib @ residual
            if reference == "unpruned":
                for state in states:
                    state[0] = cell(state[0], state[2])  # the unpruned model's next input
            new_scale = np.ones(n)
            if k:
                lam = damping * float(np.mean(np.diag(gram)))
                solved = np.linalg.lstsq(gram + lam * np.eye(k), rhs + lam, rcond=None)[0]  # (k,)
                new_scale[positions] = np.clip(solved, *scale_clip)
            gate.set_mask(kept.astype(np.float64))
            gate.set_scale(new_scale)
            scales[layer, [host.units[p] for p in positions]] = new_scale[positions]
            for state in states:
                state[1] = cell(state[1], state[2])  # the pruned model's next input, tuned scales on
            if progress is not None:
                progress(1)
    except BaseException:  # leave the model as it was: masks and scales of every layer
        for gate, mask, scale in before:
            gate.set_mask(mask)
            gate.set_scale(scale)
        raise
    finally:
        model.set_train(was_training)
    return scales


# ---------------------------------------------------------------------- the pruner
class FisherHeadPruner:
    """Retraining-free head pruning: ``apply`` -> ``prune`` -> ``convert`` (see the module doc).

    Build it with ``HeadPruningFactory.get_pruner({"prune_type": PruningType.FISHER, ...})`` or
    ``FisherHeadPruner(FisherConfig(...))``.

    Attributes:
        config: the :class:`FisherConfig`.
        last_result: the :class:`FisherResult` of the last :meth:`prune`.
        last_summary: the :class:`~lrp_prune.pruning.summary.PruningSummary` of the last :meth:`convert`.
    """

    def __init__(self, config: FisherConfig) -> None:
        expect(isinstance(config, FisherConfig), "config", "a FisherConfig", type(config).__name__)
        self.config = config
        self.last_result: FisherResult | None = None
        self.last_summary = None

    def apply(self, model: nn.Cell) -> nn.Cell:
        """Put a mask gate (all heads kept, scale 1) on every attention layer of the BertModel in
        ``model`` (in place) and return ``model``; it computes exactly what it computed.

        Raises:
            LRPPruneError: no BertModel or several, an already gated model, or a model that does
                not match ``model_params``.
        """
        from lrp_prune.pruning.lrp import applicable_gates

        gates = applicable_gates(model, self.config.model_config)
        gates.install(lambda _, n: MaskGate(n), HEADS)
        refresh_cell(model)
        return model

    def prune(self, model: nn.Cell, batches: Batches, target_heads: float | int | None = None, *,
              tune_batches: Batches | None = None,
              progress: Callable[[str, int], None] | None = None) -> FisherResult:
        """Score, search and tune: set the masks and scales of ``model`` (from :meth:`apply`).

        Args:
            model: the masked classifier (logits out), fine-tuned.
            batches: a function returning an iterable of training batches of one row count
                (called once per pass: importance, then tuning); never the evaluation pairs.
            target_heads: heads to keep (default: the config's); an int or a fraction.
            tune_batches: batches for the least squares (default: ``batches``).
            progress: ``progress(step_name, n)`` after each batch / layer.

        Returns:
            The :class:`FisherResult` (also ``self.last_result``).
        """
        gates, hosts = _mask_gates(model, "prune")
        target = self.config.target_heads if target_heads is None else check_target(target_heads)
        expect(target is not None, "target_heads", "a head budget (in the config or the call)", None)
        total = int(sum(len(h.units) for _, h in hosts))
        target = resolve_target(target, total)
        expect(callable(batches), "batches", "a function returning an iterable of batches", batches)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        importance = head_importance(model, batches(), labels=self.config.labels,
                                     progress=None if progress is None else (lambda n: progress("importance", n)))
        timings["importance_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        mask = search_mask(importance, target, kind=self.config.importance, rearrange=self.config.rearrange)
        for layer, host in hosts:
            if host.units:
                host.gate.set_mask(mask[layer, list(host.units)].astype(np.float64))
                host.gate.set_scale(np.ones(len(host.units)))
        timings["search_s"] = time.perf_counter() - t0
        scales = np.where(mask, 1.0, np.nan)
        if self.config.tune:
            t0 = time.perf_counter()
            scales = tune_scales(model, (tune_batches or batches)(), damping=self.config.damping,
                                 scale_clip=self.config.scale_clip, reference=self.config.reference,
                                 progress=None if progress is None else (lambda n: progress("tune", n)))
            timings["tune_s"] = time.perf_counter() - t0
        self.last_result = FisherResult(importance=importance, mask=mask, scales=scales, timings=timings)
        logger.info("prune: kept %d of %d heads (%s)", int(mask.sum()), total,
                    ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        return self.last_result

    @staticmethod
    def heads_to_prune(model: nn.Cell) -> dict[int, list[int]]:
        """``{layer: [original head indices]}`` that ``convert()`` leaves out (read from the masks)."""
        return ModelGates(model, "heads_to_prune").to_prune(HEADS)

    @staticmethod
    def get_gate_values(model: nn.Cell) -> np.ndarray:
        """``mask * scale`` per head, ``[layers, heads]`` (0 for a removed head)."""
        return ModelGates(model, "get_gate_values").values(HEADS)

    def convert(self, model: nn.Cell, save_dir_path: str | Path | None = None, *, inplace: bool = False) -> nn.Cell:
        """The pruned model: removed heads sliced out, kept heads' scales folded into ``W_O``.

        As :meth:`LRPHeadPruner.convert <lrp_prune.pruning.lrp.LRPHeadPruner.convert>`: ``model``
        is left as it was, the result equals it in eval, ``save_dir_path`` writes the same
        self-describing directory (config, checkpoint, heads pickle + JSON, summary).
        """
        _mask_gates(model, "convert")
        pruned = convert_gated(model, save_dir_path, inplace=inplace)
        self.last_summary = pruned.prune_summary
        return pruned

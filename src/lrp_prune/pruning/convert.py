"""``convert``: read a gated model's gates and build the physically smaller model that equals it.

The same for every pruning method and structure: whatever gate kind sits on the model
(:class:`~lrp_prune.network.gates.ModelGates` reads it), a head or feed-forward unit whose
eval gate is exactly 0 is removed and every kept unit's gate value is folded into the
weights that consume it (a head's W_O columns, a unit's ``output.dense`` column), so the
pruned model computes what the gated model computes in eval.

The gated model is left as it was (gated, same values, same compiled graphs): it can be
evaluated, trained further and converted again. The pruned model is new:

- a ``BertModel``, ``BertClassifier`` or ``BertClassifierWithLoss`` is built fresh at its
  pruned size from sliced weights (:func:`~lrp_prune.network.slicing.prune_layer_params`);
- any other Cell holding a BertModel (your own model with a head) is copied with
  ``copy.deepcopy`` (:func:`~lrp_prune.network.compat.copy_cell`) and the copy is pruned
  in place. A Cell Python cannot copy (one holding an open file, a generator, a lock) is
  an error that names ``convert(..., inplace=True)``, the explicit in-place option.

Example:
    >>> from lrp_prune import BertConfig, BertModel, HeadPruningFactory
    >>> from lrp_prune.network.gates import ModelGates
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> gated = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
    ...     "config": {"l0_penalty": 0.01}}).apply(BertModel(cfg, is_training=False))
    >>> ModelGates(gated).close([(0, 0), (0, 1)])
    >>> pruned = convert_gated(gated)
    >>> pruned.prune_summary.heads_kept_per_layer, ModelGates(gated).is_gated
    ([2, 4], True)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from mindspore import nn

from lrp_prune.errors import LRPPruneError
from lrp_prune.io.checkpoint import load_param_dict
from lrp_prune.network.bert import (BertClassifier, BertClassifierWithLoss, BertModel, find_bert, prune_ffn,
                                    prune_heads, random_init_off)
from lrp_prune.network.compat import copy_cell
from lrp_prune.network.config import BertConfig
from lrp_prune.network.gates import FFN, HEADS, ModelGates
from lrp_prune.network.slicing import (normalise_heads_to_prune, plan_layer, plan_units, prune_ffn_params,
                                       prune_layer_params)
from lrp_prune.pruning.summary import PruningSummary

__all__ = ["convert_gated", "count_params", "ungated_params", "rebuild_pruned"]

logger = logging.getLogger(__name__)

_GATE_STATE = ("log_a", "gate.mask", "gate.scale", "budget.multipliers", "budget.target_now",
               "budget.slopes")  # what apply() adds


def count_params(model: nn.Cell) -> int:
    """Parameters of ``model``, gates (``log_a``) and budget multipliers excluded."""
    return int(sum(p.size for name, p in model.parameters_and_names() if not name.endswith(_GATE_STATE)))


def ungated_params(model: nn.Cell) -> dict:
    """``{name: array}`` of ``model`` without what ``apply()`` added (copies)."""
    return {name: p.asnumpy().copy() for name, p in model.parameters_and_names() if not name.endswith(_GATE_STATE)}


def _backbone_prefix(model: nn.Cell) -> str:
    path = find_bert(model)[0][0]
    return f"{path}." if path else ""


def rebuild_pruned(model: nn.Cell, config: BertConfig, heads_to_prune: dict, gate_values=None,
                   units_to_prune: dict | None = None, unit_values=None) -> nn.Cell:
    """A new model of ``model``'s kind (a BertModel or one of the library's classifiers) with the
    heads of ``heads_to_prune`` (and the feed-forward units of ``units_to_prune``) removed from its
    weights, ``gate_values`` folded into W_O and ``unit_values`` into ``output.dense``.

    ``config`` is the backbone's current config; the result's config records what is left.
    """
    bert = find_bert(model)[0][1]
    prefix = _backbone_prefix(model)
    plan = normalise_heads_to_prune(heads_to_prune, config.num_hidden_layers, config.num_attention_heads)
    unit_plan = normalise_heads_to_prune(units_to_prune or {}, config.num_hidden_layers, config.intermediate_size,
                                         "units_to_prune", "unit")
    params = ungated_params(model)
    kept, kept_units = [], []
    for i in range(config.num_hidden_layers):
        layer = f"{prefix}bert_encoder.layers.{i}."
        layer_plan = plan_layer(config.heads_of(i), plan[i], config.head_size)
        scale = None if gate_values is None else gate_values[i, list(layer_plan.kept_heads)]
        if layer_plan.kept_heads != config.heads_of(i) or scale is not None:
            params = prune_layer_params(params, layer, layer_plan, scale, config.head_size)
        kept.append(layer_plan.kept_heads)
        ffn_plan = plan_units(config.units_of(i), unit_plan[i])
        scale = None if unit_values is None else unit_values[i, list(ffn_plan.kept_units)]
        if ffn_plan.kept_units != config.units_of(i) or scale is not None:
            params = prune_ffn_params(params, layer, ffn_plan, scale)
        kept_units.append(ffn_plan.kept_units)
    new_config = config.with_layer_heads(kept).with_layer_units(kept_units)
    one_hot = bert.bert_embedding_lookup.use_one_hot
    with random_init_off():  # every value is loaded below
        if isinstance(model, BertModel):
            built: nn.Cell = BertModel(new_config, bert.is_training, one_hot)
        else:
            clf = model.bert if isinstance(model, BertClassifierWithLoss) else model
            built = BertClassifier(new_config, bert.is_training, num_labels=clf.num_labels,
                                   dropout_prob=clf.dropout_prob, pooling=clf.pooling, use_one_hot_embeddings=one_hot)
            if getattr(clf, "label_names", None):
                built.label_names = clf.label_names
            if isinstance(model, BertClassifierWithLoss):
                built = BertClassifierWithLoss(built)
    load_param_dict(built, params, strict=True, source="convert")
    built.validate_inputs = getattr(model, "validate_inputs", True)
    built.set_train(model.training)
    return built


def _copy_pruned(model: nn.Cell, heads_to_prune: dict, gate_values, units_to_prune: dict, unit_values) -> nn.Cell:
    """A deep copy of a user's Cell, its gates taken off and its BertModel pruned in place."""
    try:
        clone = copy_cell(model)
    except Exception as err:  # deepcopy raises TypeError, but a user's __deepcopy__ may raise anything
        raise LRPPruneError(
            f"convert: expected a model that copy.deepcopy can copy (the gated model is left unchanged), got "
            f"{type(model).__name__}, which fails to copy ({type(err).__name__}: {err}); pass "
            "convert(..., inplace=True) to turn the gated model itself into the pruned one") from None
    gates = ModelGates(clone, "convert")
    gates.remove()
    gates.bert.return_reg = False
    gates.bert.budget = None
    return _prune_in_place(clone, heads_to_prune, gate_values, units_to_prune, unit_values)


def _prune_in_place(model: nn.Cell, heads_to_prune: dict, gate_values, units_to_prune: dict, unit_values) -> nn.Cell:
    model = prune_heads(model, heads_to_prune, gate_values=gate_values)
    if any(units_to_prune.values()) or unit_values is not None:
        model = prune_ffn(model, units_to_prune, gate_values=unit_values)
    return model


def convert_gated(gated: nn.Cell, save_dir_path: str | Path | None = None, *, inplace: bool = False,
                  closed=()) -> nn.Cell:
    """The pruned model of ``gated``, with ``prune_summary`` set; optionally saved.

    Args:
        gated: a model with gates installed (any gate kind).
        save_dir_path: optional directory for :func:`~lrp_prune.io.saved.save_pruned`
            (the gated parameters are saved beside the pruned model).
        inplace: turn ``gated`` itself into the pruned model (the original's behaviour; the
            gated model is gone afterwards). Needed only for a Cell that cannot be copied.
        closed: units to remove as if their gates were closed (a target budget's projection),
            without touching the gated model: ``{"heads": [(layer, head)], "ffn": [(layer, unit)]}``
            (or a list of ``(layer, head)`` pairs).

    Returns:
        The pruned model; ``pruned.prune_summary`` is its
        :class:`~lrp_prune.pruning.summary.PruningSummary`.

    Raises:
        LRPPruneError: no gates, a Cell that cannot be copied (without ``inplace``), or a save
            that cannot be written; the gated model is then unchanged (without ``inplace``).
    """
    from lrp_prune.io.saved import save_pruned

    started = time.perf_counter()
    gates = ModelGates(gated, "convert")
    bert = gates.bert
    if not isinstance(closed, dict):  # (layer, head) pairs, as a heads budget's projection gives them
        closed = {"heads": list(closed)}
    values, kept = gates.values(HEADS), gates.kept(HEADS)
    unit_values, units_kept = gates.values(FFN), gates.kept(FFN)
    for layer, head in closed.get("heads", ()):
        kept[layer, head] = False
    for layer, unit in closed.get("ffn", ()):
        units_kept[layer, unit] = False
    values[~kept] = 0.0
    unit_values[~units_kept] = 0.0
    heads = {i: [int(h) for h in np.flatnonzero(~row)] for i, row in enumerate(kept)}
    units = {i: [int(u) for u in np.flatnonzero(~row)] for i, row in enumerate(units_kept)}
    if not gates.gated(FFN):
        unit_values = None  # nothing to fold: the feed-forward blocks pass through unchanged
    before_config = bert.config
    params_before = count_params(gated)
    gated_params = None if save_dir_path is None else {n: p.asnumpy().copy() for n, p in gated.parameters_and_names()}
    if inplace:
        gates.remove()
        bert.return_reg = False
        bert.budget = None
        pruned = _prune_in_place(gated, heads, values, units, unit_values)
    elif isinstance(gated, (BertModel, BertClassifier, BertClassifierWithLoss)):
        pruned = rebuild_pruned(gated, before_config, heads, values, units, unit_values)
    else:
        pruned = _copy_pruned(gated, heads, values, units, unit_values)
    after = find_bert(pruned)[0][1].config
    summary = PruningSummary.build(before_config, after, params_before, count_params(pruned), values)
    pruned.prune_summary = summary
    if summary.heads_kept == 0:
        logger.warning("convert: every head was closed: the pruned model has no attention left (each layer "
                       "computes LayerNorm(x + b_O) then its FFN); lower l0_penalty or set target_heads")
    logger.info("convert: kept %d of %d heads and %d of %d feed-forward units in %.2f s", after.total_heads,
                before_config.num_hidden_layers * before_config.num_attention_heads, after.total_units,
                before_config.num_hidden_layers * before_config.intermediate_size, time.perf_counter() - started)
    if save_dir_path is not None:
        save_pruned(pruned, save_dir_path, heads_to_prune=heads, summary=summary, gated_params=gated_params,
                    gated_layer_heads=before_config.layer_heads,
                    units_to_prune=units if gates.gated(FFN) or after.layer_units is not None else None,
                    gated_layer_units=before_config.layer_units)
    return pruned

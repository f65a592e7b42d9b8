"""``convert``: read a gated model's gates, slice its weights, fold the kept gates, save.

The same for every pruning method: whatever gate kind sits on the model
(:class:`~lrp_prune.network.gates.ModelGates` reads it), a unit whose eval gate is
exactly 0 is removed and every kept unit's gate value is folded into the weights that
consume it, so the pruned model computes what the gated model computes in eval.

Example:
    >>> from lrp_prune import BertConfig, BertModel, HeadPruningFactory
    >>> from lrp_prune.network.gates import ModelGates
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> gated = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
    ...     "config": {"l0_penalty": 0.01}}).apply(BertModel(cfg, is_training=False))
    >>> ModelGates(gated).close([(0, 0), (0, 1)])
    >>> pruned = convert_gated(gated)
    >>> pruned.prune_summary.heads_kept_per_layer
    [2, 4]
"""

from __future__ import annotations

import logging
from pathlib import Path

from mindspore import nn

from lrp_prune.network.bert import prune_heads
from lrp_prune.network.gates import HEADS, ModelGates
from lrp_prune.pruning.summary import PruningSummary

__all__ = ["convert_gated", "count_params"]

logger = logging.getLogger(__name__)


def count_params(model: nn.Cell) -> int:
    """Parameters of ``model``, gates (``log_a``) and budget multipliers excluded."""
    return int(sum(p.size for name, p in model.parameters_and_names()
                   if not name.endswith(("log_a", "budget.multipliers", "budget.target_now"))))


def convert_gated(gated: nn.Cell, save_dir_path: str | Path | None = None) -> nn.Cell:
    """Turn ``gated`` (in place) into the pruned model and return it, with ``prune_summary`` set.

    Args:
        gated: a model with gates installed (any gate kind).
        save_dir_path: optional directory for :func:`~lrp_prune.io.saved.save_pruned`
            (the gated parameters are saved beside the pruned model).

    Returns:
        The pruned model (the same object), ``pruned.prune_summary`` its
        :class:`~lrp_prune.pruning.summary.PruningSummary`.
    """
    from lrp_prune.io.saved import save_pruned

    gates = ModelGates(gated, "convert")
    bert = gates.bert
    gated_params = None
    if save_dir_path is not None:  # written by save_pruned together with the rest
        from lrp_prune.io.checkpoint import check_writable_dir

        check_writable_dir(save_dir_path)  # before the model changes in place
        gated_params = {name: p.asnumpy().copy() for name, p in gated.parameters_and_names()}
    values = gates.values(HEADS)
    heads = gates.to_prune(HEADS)
    before_config = bert.config
    params_before = count_params(gated)
    gates.remove()
    bert.return_reg = False
    bert.budget = None
    prune_heads(gated, heads, gate_values=values)
    summary = PruningSummary.build(before_config, bert.config, params_before, count_params(gated), values)
    gated.prune_summary = summary
    logger.info("convert: kept %d of %d heads", bert.config.total_heads,
                before_config.num_hidden_layers * before_config.num_attention_heads)
    if save_dir_path is not None:
        save_pruned(gated, save_dir_path, heads_to_prune=heads, summary=summary, gated_params=gated_params,
                    gated_layer_heads=before_config.layer_heads)
    return gated

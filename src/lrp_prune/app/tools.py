"""Tools over saved models: ``inspect`` (gates or kept heads per layer) and ``bench`` (latency).

These read what :mod:`lrp_prune.io.saved` writes and serve the ``lrp-prune inspect`` and
``lrp-prune bench`` commands; they live here, above I/O, because they build models and
time them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mindspore import nn

from lrp_prune.errors import LRPPruneError, check_int
from lrp_prune.io.checkpoint import load_checkpoint, read_checkpoint
from lrp_prune.io.saved import FILES, load_pruned, read_json, read_pruned_info, saved_files
from lrp_prune.network.bert import BertClassifier, BertClassifierWithLoss, BertModel, the_bert
from lrp_prune.network.config import BertConfig
from lrp_prune.network.gates import FFN, HEADS, grid_from_checkpoint
from lrp_prune.network.hard_concrete import eval_gate_values
from lrp_prune.training.timing import compare_latency

__all__ = ["inspect_saved", "bench_saved"]


def inspect_saved(path: str | Path) -> tuple[np.ndarray, str]:
    """Gates ``[layers, heads]`` of a gated checkpoint, or the kept-head map of a pruned directory.

    Returns:
        ``(values, description)``: for a pruned directory 1 for kept heads and 0 for
        removed ones (or the gates read at convert time, from ``summary.json``, with
        removed heads at 0); for a ``.ckpt`` with head gates, the deterministic gates
        (NaN where a layer has no such head).

    Raises:
        LRPPruneError: a path that is neither, or a checkpoint with no head gates.
    """
    path = Path(path)
    if path.is_dir():
        info = read_pruned_info(path)
        cfg = BertConfig.from_dict(info["bert_config"])
        values = np.zeros((cfg.num_hidden_layers, cfg.num_attention_heads))
        for i in range(cfg.num_hidden_layers):
            values[i, list(cfg.heads_of(i))] = 1.0
        summary_path = saved_files(path)["summary"]
        if summary_path.is_file():
            gates = read_json(summary_path).get("gate_values")
            if gates is not None:
                values = np.asarray(gates, dtype=float) * (values > 0)
        units = ""
        if cfg.layer_units is not None:
            units = (f", feed-forward units kept per layer {list(cfg.units_per_layer)} of {cfg.intermediate_size} "
                     f"({cfg.total_units} in all)")
        return values, f"pruned model {path}: {cfg.total_heads} heads kept{units} ({info.get('kind')})"
    params = read_checkpoint(path)
    cfg, layer_units = None, None
    config_path = path.parent / FILES["config"]
    if config_path.is_file():  # a gated_model.ckpt inside a pruned directory: its config gives the layout
        info = read_pruned_info(path.parent)
        cfg = BertConfig.from_dict(info["bert_config"])
        gated_heads = info.get("gated_layer_heads")
        layer_units = [list(h) for h in gated_heads] if gated_heads is not None else None
    log_a, layers = grid_from_checkpoint(params, cfg, HEADS, layer_units)
    if not layers:  # a retraining-free model's mask gates: mask x scale (kept-ness is the mask)
        mask, layers = grid_from_checkpoint(params, cfg, HEADS, layer_units, param="mask")
        if layers:
            scale, _ = grid_from_checkpoint(params, cfg, HEADS, layer_units, param="scale")
            kept = int(np.nansum(mask > 0.5))
            return (np.where(mask > 0.5, scale, np.where(np.isnan(mask), np.nan, 0.0)),
                    f"masked checkpoint {path}: {layers} layers, {kept} heads kept (values: tuned scales)")
    if not layers:
        raise LRPPruneError(f"inspect: expected a pruned directory or a checkpoint with gate log_a (or mask) "
                            f"parameters, got {str(path)!r} with none")
    values = np.where(np.isfinite(log_a), eval_gate_values(np.nan_to_num(log_a)), np.nan)
    ffn_units = None
    if cfg is not None and info.get("gated_layer_units") is not None:
        ffn_units = [list(u) for u in info["gated_layer_units"]]
    ffn_log_a, ffn_layers = grid_from_checkpoint(params, cfg, FFN, ffn_units)
    ffn = ""
    if ffn_layers:
        open_units = (eval_gate_values(np.nan_to_num(ffn_log_a, nan=-50.0)) > 0).sum(axis=1)
        ffn = f"; feed-forward units open per layer {open_units.astype(int).tolist()}"
    return values, f"gated checkpoint {path}: {layers} gated layers{ffn}"


def bench_saved(save_dir_path: str | Path, *, batch_size: int = 32, seq_length: int = 64,
                repeats: int = 10) -> dict[str, Any]:
    """Latency of a saved pruned model against its unpruned original, interleaved in one run.

    The original's weights come from ``gated_model.ckpt`` when present (the values do
    not change the timing, so random weights stand in otherwise).
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    repeats = check_int(repeats, "repeats", minimum=1)
    save_dir = Path(save_dir_path)
    pruned = load_pruned(save_dir)
    bert = the_bert(pruned, "bench")
    seq_length = check_int(seq_length, "seq_length", minimum=1, maximum=bert.config.max_position_embeddings)
    info = read_pruned_info(save_dir)
    full = bert.config.with_layer_heads(None).with_layer_units(None)
    if isinstance(pruned, BertModel):
        original: nn.Cell = BertModel(full, False)
    else:
        head = info.get("classifier") or {"num_labels": 2, "pooling": "pooler"}
        original = BertClassifier(full, False, num_labels=int(head["num_labels"]), pooling=head.get("pooling", "pooler"))
        if isinstance(pruned, BertClassifierWithLoss):
            pruned = pruned.bert
    gated_ckpt = saved_files(save_dir)["gated"]
    if gated_ckpt.is_file():
        load_checkpoint(gated_ckpt, original, strict=False)
    times = compare_latency(original, pruned, batch_size, seq_length, repeats)
    unpruned_t, pruned_t = times["unpruned_s"], times["pruned_s"]
    return {"batch_size": batch_size, "seq_length": seq_length, "unpruned_s": unpruned_t, "pruned_s": pruned_t,
            "unpruned_median_s": float(np.median(unpruned_t)), "pruned_median_s": float(np.median(pruned_t)),
            "ratio": float(np.median(pruned_t) / np.median(unpruned_t)),
            "heads_kept": bert.config.total_heads,
            "heads_total": full.num_hidden_layers * full.num_attention_heads,
            "units_kept": bert.config.total_units, "units_total": full.total_units}

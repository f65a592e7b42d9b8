"""The measured sections of the harness: exactness, speed-up (+ PyTorch peer), train overhead, convert time.

Each section takes its plan (sizes for the chosen mode, see ``run.py``) and a context, and returns a
JSON-able dict. Headline figures are ratios of two things measured in alternation in the same
process (``common.interleaved``), so a noisy machine slows both sides alike.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from typing import Any

import numpy as np

from common import (free, interleaved, paired_ratios, pattern_summary, ratio_of_medians, rss_gb, stats,
                    tests_on_path, uneven_pattern)
from flops import forward_flops

tests_on_path()

CLOSED, OPEN = -5.0, 4.0
PENALTY = 0.01


def shapes_of(cfg: Any, **extra: Any) -> dict[str, Any]:
    """The model shape fields recorded with every figure."""
    out = {"num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
           "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size, "vocab_size": cfg.vocab_size,
           "hidden_act": cfg.hidden_act}
    out.update(extra)
    return out


def _pruner(**config: Any):
    from lrp_prune import HeadPruningFactory

    config.setdefault("l0_penalty", PENALTY)
    return HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT", "config": config})


def gate_pattern(num_layers: int, num_heads: int, seed: int = 0) -> np.ndarray:
    """``log_a [layers, heads]``: some closed (-5), some open (4), some fractional (gate in (0.1, 0.9)).

    One layer (the middle one, when there are two or more) is closed entirely, so the all-pruned
    path is exercised; layer 0 always keeps at least one fractional gate.
    """
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=(num_layers, num_heads), p=[0.35, 0.25, 0.40])
    log_a = np.where(kinds == 0, CLOSED, np.where(kinds == 1, OPEN, rng.uniform(-1.5, 1.5, (num_layers, num_heads))))
    log_a[0, rng.integers(num_heads)] = rng.uniform(-1.5, 1.5)
    if num_layers >= 2:
        log_a[num_layers // 2] = CLOSED
    return log_a.astype(np.float32)


def set_gates(bert: Any, log_a: np.ndarray) -> None:
    """Set every head gate's ``log_a`` from a ``[layers, heads]`` grid."""
    from lrp_prune import ModelGates

    ModelGates(bert).set_log_a(log_a)


def random_inputs(cfg: Any, batch_size: int, seq_length: int, seed: int = 0, pad: bool = True):
    """int32 ``(ids, types, mask)``; with ``pad`` the last row is padded over its last quarter."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, cfg.vocab_size, (batch_size, seq_length)).astype(np.int32)
    types = rng.integers(0, min(2, cfg.type_vocab_size), (batch_size, seq_length)).astype(np.int32)
    mask = np.ones((batch_size, seq_length), np.int32)
    if pad and seq_length >= 4:
        mask[-1, seq_length - seq_length // 4:] = 0
    return ids, types, mask


def _max_diff(a: Any, b: Any) -> float:
    a = a.asnumpy() if hasattr(a, "asnumpy") else np.asarray(a)
    b = b.asnumpy() if hasattr(b, "asnumpy") else np.asarray(b)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _ms_runner(model: Any, ids: np.ndarray, types: np.ndarray, mask: np.ndarray):
    """A no-argument callable running one eval forward (inputs built once) and waiting for it."""
    from mindspore import Tensor

    tensors = (Tensor(ids), Tensor(types), Tensor(mask))

    def run():
        out = model(*tensors)
        out[1].asnumpy()  # the pooled output: small, and waits for the whole graph
        return out

    return run


def _random_bert(cfg: Any, params: dict[str, np.ndarray]):
    from lrp_prune import BertModel
    from lrp_prune.io.checkpoint import load_param_dict

    model = BertModel(cfg, is_training=False)
    load_param_dict(model, params)
    model.set_train(False)
    return model


# ============================================================================= 1. exactness
def exactness(plan: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Max |pruned - gated| after convert, and max |BertModel - numpy reference| (float64)."""
    from mindspore import Tensor

    from reference import bert_forward, random_params

    cfg = plan["config"]
    b, s = plan["batch_size"], plan["seq_length"]
    params = random_params(cfg.to_dict(), seed=plan.get("seed", 0))
    model = _random_bert(cfg, params)
    raw = random_inputs(cfg, b, s, seed=1)
    inputs = tuple(Tensor(a) for a in raw)
    out: dict[str, Any] = {"shapes": shapes_of(cfg, batch_size=b, seq_length=s, padded_rows=1),
                           "tolerance_hint": 1e-5}

    seq, pooled, _ = model(*inputs)
    t0 = time.perf_counter()
    ref_seq, ref_pooled = bert_forward(params, cfg.to_dict(), *raw)
    out["reference_seconds"] = round(time.perf_counter() - t0, 2)
    out["model_vs_reference"] = {"sequence_output": _max_diff(seq, ref_seq), "pooled_output": _max_diff(pooled, ref_pooled)}

    pruner = _pruner()
    gated = pruner.apply(model)
    log_a = gate_pattern(cfg.num_hidden_layers, cfg.num_attention_heads, seed=plan.get("seed", 0))
    set_gates(gated, log_a)
    gated.set_train(False)
    g_seq, g_pooled, _, _ = gated(*inputs)
    gates = gated.get_gate_values()
    t0 = time.perf_counter()
    pruned = pruner.convert(gated)
    convert_s = time.perf_counter() - t0
    pruned.set_train(False)
    p_seq, p_pooled, _ = pruned(*inputs)
    out["gates"] = {"closed": int((gates == 0).sum()), "open": int((gates == 1).sum()),
                    "fractional": int(((gates > 0) & (gates < 1)).sum()),
                    "layers_with_zero_heads": int(sum(1 for n in pruned.config.heads_per_layer if n == 0)),
                    "heads_kept_per_layer": list(pruned.config.heads_per_layer), "convert_s": round(convert_s, 3)}
    out["pruned_vs_gated"] = {"sequence_output": _max_diff(p_seq, g_seq), "pooled_output": _max_diff(p_pooled, g_pooled)}
    gref_seq, gref_pooled = bert_forward(params, cfg.to_dict(), *raw, gates=gates)
    out["pruned_vs_reference_gated"] = {"sequence_output": _max_diff(p_seq, gref_seq),
                                        "pooled_output": _max_diff(p_pooled, gref_pooled)}
    out["max_abs_diff"] = {k: max(v.values()) for k, v in out.items()
                           if k in ("model_vs_reference", "pruned_vs_gated", "pruned_vs_reference_gated")}
    del model, gated, pruned, params
    free()
    return out


# ============================================================================= 2 + 3. speed-up and peer
def latency(plan: dict[str, Any], ctx: Any, *, peer: bool) -> dict[str, Any]:
    """MindSpore unpruned vs pruned latency (and, with ``peer``, the same two in PyTorch), interleaved.

    Memory: the unpruned models live throughout (their compiled graph is dropped after each batch
    size); each pruned model is built for one (batch size, level), measured, and freed.
    With ``plan["structures"] == ("heads", "ffn")`` each level removes that fraction of the heads
    *and* of the feed-forward units (both uneven across layers, the same seeded allocation), so
    about that fraction of the encoder's multiply-adds.
    Returns ``{"speedup": {...}, "peer": {...} or None}``.
    """
    import hf_peer
    from lrp_prune import prune_ffn, prune_heads
    from lrp_prune.network.bert import refresh_cell
    from reference import random_params

    cfg = plan["config"]
    L, H = cfg.num_hidden_layers, cfg.num_attention_heads
    s = plan["seq_length"]
    levels = plan["levels"]
    seed = plan.get("seed", 0)
    with_ffn = "ffn" in plan.get("structures", ("heads",))
    params = random_params(cfg.to_dict(), seed=seed)
    patterns = {f: uneven_pattern(L, H, f, seed=seed) for f in levels}
    unit_patterns = {f: uneven_pattern(L, cfg.intermediate_size, f, seed=seed + 1) if with_ffn else {}
                     for f in levels}

    def ms_pruned_model(f, weights):
        model = prune_heads(_random_bert(cfg, weights), patterns[f])
        return prune_ffn(model, unit_patterns[f]) if with_ffn else model

    def pt_pruned_model(f, original):
        model, method = hf_peer.pruned_copy(original, patterns[f])
        if with_ffn:
            hf_peer.prune_ffn(model, unit_patterns[f])
        return model, method
    unpruned = _random_bert(cfg, params)
    pt_unpruned = None
    peer_info: dict[str, Any] | None = None
    methods: set[str] = set()
    if peer:
        pt_unpruned = hf_peer.build_hf_bert(cfg, params)
        peer_info = {"attn_implementation": hf_peer.attn_implementation(pt_unpruned), "torch_threads": ctx.torch_threads}

    full_flops = forward_flops(cfg, s).total
    pattern_info = []
    for f in levels:
        info = pattern_summary(patterns[f], H)
        pcfg = cfg.with_layer_heads([[h for h in range(H) if h not in patterns[f][i]] for i in range(L)])
        assert list(pcfg.heads_per_layer) == info["heads_kept_per_layer"]
        if with_ffn:
            removed = unit_patterns[f]
            pcfg = pcfg.with_layer_units([[u for u in range(cfg.intermediate_size) if u not in set(removed[i])]
                                          for i in range(L)])
            info.update(units_kept_per_layer=list(pcfg.units_per_layer), units_kept=pcfg.total_units,
                        encoder_flops_removed=round(1 - pcfg.encoder_flops(s) / cfg.encoder_flops(s), 4))
        info.update(fraction_removed=f, flops=forward_flops(pcfg, s).total,
                    ideal_speedup=round(full_flops / forward_flops(pcfg, s).total, 4))
        pattern_info.append(info)
    ideal = {p["fraction_removed"]: p["ideal_speedup"] for p in pattern_info}
    kept_of = {p["fraction_removed"]: p["heads_kept"] for p in pattern_info}

    speed_rows, peer_rows, memory, build_s, first_calls = [], [], {}, [], {}
    for b in plan["batch_sizes"]:
        repeats = plan["repeats"][b]
        ids, types, mask = random_inputs(cfg, b, s, seed=b, pad=False)
        ms_u = _ms_runner(unpruned, ids, types, mask)
        t0 = time.perf_counter()
        ref_out = ms_u()  # compiles
        first_call = {"ms_unpruned": round(time.perf_counter() - t0, 2)}
        ms_u()
        pt_u = None
        if peer:
            pt_u = hf_peer.forward_runner(pt_unpruned, ids, types, mask)
            pt_seq, _ = hf_peer.hf_outputs(pt_unpruned, ids, types, mask)
            diff_unpruned = _max_diff(ref_out[0], pt_seq)
            pt_u()
        del ref_out
        for f in levels:
            t0 = time.perf_counter()
            ms_pruned = ms_pruned_model(f, params)
            ms_pruned.set_train(False)
            pt_pruned = None
            if peer:
                pt_pruned, method = pt_pruned_model(f, pt_unpruned)
                methods.add(method)
            build_s.append(time.perf_counter() - t0)
            ms_p = _ms_runner(ms_pruned, ids, types, mask)
            t0 = time.perf_counter()
            p_out = ms_p()
            first_call[f"ms_pruned_{f}"] = round(time.perf_counter() - t0, 2)
            ms_p()
            runners = {"ms_unpruned": ms_u, "ms_pruned": ms_p}
            if peer:
                pt_p = hf_peer.forward_runner(pt_pruned, ids, types, mask)
                pt_seq, _ = hf_peer.hf_outputs(pt_pruned, ids, types, mask)
                diff_pruned = _max_diff(p_out[0], pt_seq)
                pt_p()
                runners.update(pt_unpruned=pt_u, pt_pruned=pt_p)
            del p_out
            times = interleaved(runners, repeats)
            measured = ratio_of_medians(times["ms_unpruned"], times["ms_pruned"])
            speed_rows.append({
                "batch_size": b, "seq_length": s, "fraction_removed": f, "heads_kept": kept_of[f], "repeats": repeats,
                "ideal_speedup": ideal[f], "measured_speedup": round(measured, 4),
                "paired_speedup": stats(paired_ratios(times["ms_unpruned"], times["ms_pruned"]), 4),
                "realisation": round(measured / ideal[f], 4),
                "unpruned_s": stats(times["ms_unpruned"]), "pruned_s": stats(times["ms_pruned"])})
            if peer:
                pt_measured = ratio_of_medians(times["pt_unpruned"], times["pt_pruned"])
                peer_rows.append({
                    "batch_size": b, "seq_length": s, "fraction_removed": f, "heads_kept": kept_of[f],
                    "repeats": repeats,
                    "ms_over_torch_unpruned": round(ratio_of_medians(times["ms_unpruned"], times["pt_unpruned"]), 4),
                    "ms_over_torch_pruned": round(ratio_of_medians(times["ms_pruned"], times["pt_pruned"]), 4),
                    "paired_ms_over_torch_unpruned": stats(paired_ratios(times["ms_unpruned"], times["pt_unpruned"]), 4),
                    "paired_ms_over_torch_pruned": stats(paired_ratios(times["ms_pruned"], times["pt_pruned"]), 4),
                    "torch_measured_speedup": round(pt_measured, 4), "ms_measured_speedup": round(measured, 4),
                    "torch_realisation": round(pt_measured / ideal[f], 4),
                    "torch_unpruned_s": stats(times["pt_unpruned"]), "torch_pruned_s": stats(times["pt_pruned"]),
                    "ms_unpruned_s": stats(times["ms_unpruned"]), "ms_pruned_s": stats(times["ms_pruned"]),
                    "max_abs_diff_vs_mindspore": {"unpruned": diff_unpruned, "pruned": diff_pruned}})
            del ms_p, runners, ms_pruned, pt_pruned
            free()  # each compiled graph keeps its buffers until its model goes
            ctx.progress(f"latency b{b} removed {f:.0%}: measured {measured:.2f}x, ideal {ideal[f]:.2f}x"
                         + (f", torch {pt_measured:.2f}x" if peer else "") + f" (rss {rss_gb()} GB)")
        del ms_u, pt_u
        refresh_cell(unpruned)  # drop this batch size's graph before the next one
        free()
        memory[str(b)] = rss_gb()
        first_calls[str(b)] = first_call
        ctx.progress(f"latency b{b}: first calls (compile + run) {first_call}")

    del unpruned, pt_unpruned, params
    free()
    common_fields = {"shapes": shapes_of(cfg, seq_length=s, batch_sizes=list(plan["batch_sizes"])),
                     "mode": "GRAPH_MODE, eval (set_train(False)), is_training=False", "levels": list(levels),
                     "patterns": pattern_info, "flops_unpruned": full_flops,
                     "build_pruned_s": stats(build_s, 3), "first_call_s": first_calls, "rss_gb_after_batch": memory,
                     "timing": "seconds per forward incl. fetching the pooled output; inputs full length, no padding"}
    speed = dict(common_fields, rows=speed_rows)
    peer_out = dict(common_fields, rows=peer_rows, prune_method=sorted(methods), **peer_info) if peer else None
    return {"speedup": speed, "peer": peer_out}


# ============================================================================= 4. train overhead
def train_overhead(plan: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Gated / ungated train-step time, both ``TrainStep(BertClassifierWithLoss)`` in GRAPH_MODE."""
    import mindspore as ms
    from mindspore import Tensor

    from lrp_prune import BertClassifier, BertClassifierWithLoss, parameter_groups
    from lrp_prune.training import TrainStep, adamw

    cfg = plan["config"]
    b, s = plan["batch_size"], plan["seq_length"]
    dropout = plan.get("dropout", False)
    ms.set_seed(0)

    def make_step(gated: bool):
        clf = BertClassifier(cfg, is_training=dropout, num_labels=3, pooling="mean")
        if gated:
            _pruner().apply(clf)
        net = BertClassifierWithLoss(clf)
        opt = adamw(parameter_groups(net, log_a_lr=0.1), 2e-5)  # as the flow trains
        step = TrainStep(net, opt, clip_norm=1.0)
        step.set_train(True)
        return step

    ids, types, mask = random_inputs(cfg, b, s, seed=3)
    labels = np.random.default_rng(4).integers(0, 3, b).astype(np.int32)
    inputs = (Tensor(ids), Tensor(types), Tensor(mask), Tensor(labels), Tensor(1.0, ms.float32))
    steps = {"ungated": make_step(False), "gated": make_step(True)}

    def runner(step):
        def run():
            loss, finite = step(*inputs)
            loss.asnumpy()
        return run

    runners = {name: runner(step) for name, step in steps.items()}
    peer = None
    if ctx.torch_threads:  # the PyTorch peer of the ungated step, same weights (issue: "a train step 2.7x slower")
        import hf_peer
        from lrp_prune.io.checkpoint import param_dict

        clf = steps["ungated"].network.bert  # BertClassifierWithLoss.bert is the classifier
        head = {"weight": clf.dense_1.weight.asnumpy(), "bias": clf.dense_1.bias.asnumpy()}
        runners["torch"] = hf_peer.train_step_runner(cfg, param_dict(clf.bert), head, ids, types, mask, labels)
        peer = {"torch_threads": ctx.torch_threads,
                "optimizer": "torch.optim.AdamW, lr 2e-5, clip_grad_norm_ 1.0; HF BertModel, mean pooling"}
    compile_s = {}
    for name, run in runners.items():  # first call compiles; a second settles the allocator
        t0 = time.perf_counter()
        run()
        compile_s[name] = round(time.perf_counter() - t0, 2)
        for _ in range(plan.get("warmup", 1)):
            run()
    times = interleaved(runners, plan["repeats"])
    ratio = ratio_of_medians(times["gated"], times["ungated"])
    check = input_check_cost(steps["ungated"].network.bert, ids, types, mask, plan["repeats"])
    del steps, runners
    free()
    return {"shapes": shapes_of(cfg, batch_size=b, seq_length=s, dropout=dropout, pooling="mean"),
            "ratio_gated_over_ungated": round(ratio, 4), "goal": 1.05, "meets_goal": bool(ratio <= 1.05),
            "paired_ratio": stats(paired_ratios(times["gated"], times["ungated"]), 4),
            "gated_step_s": stats(times["gated"]), "ungated_step_s": stats(times["ungated"]),
            "first_call_s": compile_s, "repeats": plan["repeats"],
            "optimizer": "adamw (AdamWeightDecay + bias correction), lr 2e-5, log_a lr 0.1, clip 1.0, loss scale 1",
            "torch_step_s": stats(times["torch"]) if peer else None,
            "ms_over_torch_train_step": round(ratio_of_medians(times["ungated"], times["torch"]), 4) if peer else None,
            "paired_ms_over_torch": stats(paired_ratios(times["ungated"], times["torch"]), 4) if peer else None,
            "torch_peer": peer, "input_check": check}


def input_check_cost(classifier: Any, ids, types, mask, repeats: int) -> dict[str, Any]:
    """The host-side input check of a top-level call, alone, against the classifier's eval forward
    (GRAPH_MODE, the same batch), both medians of ``repeats`` (the check: 20x as many, it is short)."""
    from mindspore import Tensor

    from lrp_prune import check_inputs

    classifier.set_train(False)
    tensors = (Tensor(ids), Tensor(types), Tensor(mask))
    classifier(*tensors).asnumpy()  # compile
    forward = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        classifier(*tensors).asnumpy()
        forward.append(time.perf_counter() - t0)
    checks = []
    for _ in range(20 * repeats):
        t0 = time.perf_counter()
        check_inputs(classifier, *tensors)
        checks.append(time.perf_counter() - t0)
    fraction = float(np.median(checks) / np.median(forward))
    return {"check_s": stats(checks, 7), "forward_s": stats(forward), "fraction_of_forward": round(fraction, 6),
            "goal": 0.01, "meets_goal": bool(fraction < 0.01)}


# ============================================================================= 4b. convert time
def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM), in MiB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - not Linux


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:  # pragma: no cover
        return False


class _UserModel:  # built lazily: a user's own Cell holding a BertModel and a head
    @staticmethod
    def build(cfg: Any):
        from mindspore import nn

        from lrp_prune import BertModel

        class UserModel(nn.Cell):
            def __init__(self):
                super().__init__()
                self.encoder = BertModel(cfg, is_training=False)
                self.head = nn.Dense(cfg.hidden_size, 2)

            def construct(self, input_ids, token_type_ids, input_mask):
                return self.head(self.encoder(input_ids, token_type_ids, input_mask)[1])

        return UserModel()


def convert_time(plan: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Seconds and peak memory of ``pruner.convert(gated)``: a BertModel (rebuilt from sliced weights) and a
    user's own Cell (deep-copied, then pruned), no save; and once with a save directory when asked."""
    from lrp_prune import BertModel

    cfg = plan["config"]
    log_a = gate_pattern(cfg.num_hidden_layers, cfg.num_attention_heads, seed=plan.get("seed", 0))
    apply_s, convert_s, copy_s, kept = [], [], [], None
    extra_mb: dict[str, list[float]] = {"rebuild": [], "copy": []}
    save_s = None
    for r in range(plan["repeats"] + (1 if plan.get("with_save") else 0)):
        for kind in ("rebuild", "copy"):
            if kind == "copy" and r >= plan["repeats"]:
                continue
            pruner = _pruner()
            model = BertModel(cfg, is_training=False) if kind == "rebuild" else _UserModel.build(cfg)
            t0 = time.perf_counter()
            gated = pruner.apply(model)
            if kind == "rebuild":
                apply_s.append(time.perf_counter() - t0)
            set_gates(gated, log_a)
            free()
            if r < plan["repeats"]:
                measured = _reset_peak_rss()
                before = _peak_rss_mb()
                t0 = time.perf_counter()
                pruned = pruner.convert(gated)
                (convert_s if kind == "rebuild" else copy_s).append(time.perf_counter() - t0)
                if measured:
                    extra_mb[kind].append(_peak_rss_mb() - before)
            else:
                with tempfile.TemporaryDirectory(prefix="lrp_bench_") as tmp:
                    t0 = time.perf_counter()
                    pruned = pruner.convert(gated, tmp)
                    save_s = round(time.perf_counter() - t0, 3)
            kept = pruned.prune_summary.heads_kept
            del model, gated, pruned
            free()
    median = float(np.median(convert_s))
    params_mb = cfg.num_parameters() * 4 / 2 ** 20
    return {"shapes": shapes_of(cfg), "heads_kept": kept, "heads_total": cfg.num_hidden_layers * cfg.num_attention_heads,
            "convert_s": stats(convert_s, 4), "convert_copy_s": stats(copy_s, 4), "apply_s": stats(apply_s, 4),
            "peak_extra_mb": {k: stats(v, 1) for k, v in extra_mb.items() if v}, "params_mb": round(params_mb, 1),
            "goal_s": 2.0, "meets_goal": bool(median <= 2.0 and float(np.median(copy_s)) <= 2.0),
            "convert_with_save_s": save_s,
            "note": "convert() of a freshly applied, never compiled gated model; the gated model is left unchanged: "
                    "a BertModel is rebuilt at its pruned size from sliced weights, a user's own Cell is deep-copied "
                    "and the copy pruned; peak_extra_mb is the rise of the process's peak RSS during convert()"}


def bert_config(**fields: Any):
    """A ``lrp_prune.BertConfig`` with the fields given (dropout off, HF-style type vocab 2)."""
    from lrp_prune import BertConfig

    base = dict(type_vocab_size=2, max_position_embeddings=512, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    base.update(fields)
    return BertConfig(**base)


def replace_config(cfg: Any, **fields: Any):
    return dataclasses.replace(cfg, **fields)

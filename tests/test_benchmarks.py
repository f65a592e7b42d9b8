"""The benchmark harness (benchmarks/): its FLOPs model, head patterns, and its JSON/markdown output.

No timing is asserted anywhere: only counts, shapes of the output and exactness figures.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lrp_prune import BertConfig

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    """Import benchmarks/<name>.py under a private module name (no sys.path change)."""
    spec = importlib.util.spec_from_file_location(f"lrp_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


flops = _load("flops")
common = _load("common")


def small(**overrides) -> BertConfig:
    base = dict(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                seq_length=3, max_position_embeddings=16)
    base.update(overrides)
    return BertConfig(**base)


# ----------------------------------------------------------------------------- the FLOPs model
def test_flops_by_hand_for_a_tiny_pruned_config():
    # hidden 8, 2 heads of 4, FFN 16, seq 3; layer 0 keeps both heads (width 8), layer 1 one (width 4)
    cfg = small().with_layer_heads([[0, 1], [1]])
    f = flops.forward_flops(cfg, 3)
    # layer 0: QKVO 4*3*8*8 = 768, attention 2*3*3*8 = 144, FFN 2*3*8*16 = 768
    # layer 1: QKVO 4*3*8*4 = 384, attention 2*3*3*4 = 72,  FFN 768;  pooler 8*8 = 64
    assert (f.qkvo, f.attention_matmuls, f.ffn, f.pooler) == (1152, 216, 1536, 64)
    assert f.per_layer == (1680, 1224)
    assert f.total == 2968 and f.attention == 1368
    doubled = flops.forward_flops(cfg, 3, batch_size=2)
    assert doubled.total == 2 * 2968 and doubled.per_layer == (3360, 2448)
    d = f.to_dict()
    assert d["total"] == 2968 and d["unit"] == "multiply-accumulates" and d["per_layer"] == [1680, 1224]


def test_flops_count_the_kept_ffn_units():
    # hidden 8, FFN 16, seq 3: layer 0 keeps 5 units, layer 1 none; heads all kept
    cfg = small().with_layer_units([[0, 3, 7, 8, 15], []])
    f = flops.forward_flops(cfg, 3)
    assert f.ffn == 2 * 3 * 8 * 5 and f.attention == small().attention_flops(3)
    assert f.ffn + f.attention == cfg.encoder_flops(3)


def test_flops_of_a_layer_without_heads_is_its_ffn_only():
    cfg = small().with_layer_heads([[], [0, 1]])
    f = flops.forward_flops(cfg, 3)
    assert f.per_layer[0] == 2 * 3 * 8 * 16


def test_flops_fall_strictly_with_every_head_removed():
    cfg = small(hidden_size=24, num_hidden_layers=3, num_attention_heads=4, intermediate_size=40)
    rng = np.random.default_rng(0)
    kept = {i: set(range(4)) for i in range(3)}
    order = [(i, h) for i in range(3) for h in range(4)]
    rng.shuffle(order)
    previous = flops.forward_flops(cfg, 5).total
    for layer, head in order:
        kept[layer].discard(head)
        total = flops.forward_flops(cfg.with_layer_heads([sorted(kept[i]) for i in range(3)]), 5).total
        assert total < previous
        previous = total
    assert previous == flops.forward_flops(cfg.with_layer_heads([[], [], []]), 5).ffn + 24 * 24


@pytest.mark.parametrize("layer_heads", [None, [[0, 1], [1]], [[], [0]], [[1], []]])
@pytest.mark.parametrize("seq", [1, 3, 16])
def test_flops_attention_part_matches_bert_config(layer_heads, seq):
    cfg = small().with_layer_heads(layer_heads)
    assert flops.forward_flops(cfg, seq).attention == cfg.attention_flops(seq)


def test_ideal_speedup():
    cfg = small()
    assert flops.ideal_speedup(cfg, cfg, 3) == 1.0
    pruned = cfg.with_layer_heads([[0], []])
    assert flops.ideal_speedup(cfg, pruned, 3) == pytest.approx(
        flops.forward_flops(cfg, 3).total / flops.forward_flops(pruned, 3).total)
    assert flops.ideal_speedup(cfg, pruned, 3) > 1


def test_flops_rejects_bad_sizes():
    with pytest.raises(ValueError):
        flops.forward_flops(small(), 0)
    with pytest.raises(ValueError):
        flops.forward_flops(small(), 3, batch_size=0)
    assert flops.forward_flops(small(), None).seq_length == 3  # the config's default


def test_benchmark_module_doctests():
    for module in (flops, common):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0


# ----------------------------------------------------------------------------- head patterns
@pytest.mark.parametrize("layers,heads", [(12, 12), (6, 12), (4, 4)])
@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75, 0.9])
def test_uneven_pattern_removes_the_right_count_unevenly(layers, heads, fraction):
    pattern = common.uneven_pattern(layers, heads, fraction, seed=0)
    assert sorted(pattern) == list(range(layers))
    kept = [heads - len(pattern[i]) for i in range(layers)]
    assert sum(kept) == layers * heads - round(fraction * layers * heads)
    assert all(0 <= k <= heads for k in kept)
    assert all(v == sorted(set(v)) and all(0 <= h < heads for h in v) for v in pattern.values())
    assert kept[0] == max(kept) and kept[0] >= heads // 4  # lower layers keep the most
    assert len(set(kept)) > 1  # uneven
    if fraction >= 0.9:
        assert min(kept) == 0  # some layers lose every head
    assert common.uneven_pattern(layers, heads, fraction, seed=0) == pattern  # fixed


# ----------------------------------------------------------------------------- the harness output
STATS_KEYS = {"min", "median", "max", "n", "values"}


def _is_stats(value) -> bool:
    return (isinstance(value, dict) and STATS_KEYS <= set(value) and value["n"] == len(value["values"]) >= 1
            and value["min"] <= value["median"] <= value["max"])


@pytest.mark.slow
def test_smoke_run_writes_the_json_schema_and_markdown(tmp_path):
    out, md = tmp_path / "res" / "r.json", tmp_path / "r.md"
    env = dict(os.environ, GLOG_v="3", LRP_BENCH_NO_TORCH="1")
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--smoke", "--sections",
                           "exactness,peer,convert_time", "--out", str(out), "--md", str(md), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert not list(out.parent.glob(".*.tmp"))  # written through a temporary name, then renamed
    assert doc["schema"] == "lrp_prune-bench/1" and doc["mode"] == "smoke" and doc["complete"] is True
    assert isinstance(doc["started_at"], str) and isinstance(doc["finished_at"], str)
    assert isinstance(doc["wall_time_s"], (int, float))
    machine = doc["machine"]
    assert isinstance(machine["cpu_model"], str) and isinstance(machine["logical_cores"], int)
    versions = doc["versions"]
    for key in ("python", "mindspore", "numpy", "lrp_prune"):
        assert isinstance(versions[key], str)
    assert "torch" in versions and "transformers" in versions
    assert doc["settings"]["sections"] == ["exactness", "peer", "convert_time"]
    assert set(doc["sections"]) == {"exactness", "peer", "convert_time"}

    exact = doc["sections"]["exactness"]
    assert exact["status"] == "ok" and isinstance(exact["seconds"], float)
    assert {"num_hidden_layers", "num_attention_heads", "hidden_size", "batch_size", "seq_length"} <= set(exact["shapes"])
    for key in ("pruned_vs_gated", "model_vs_reference", "pruned_vs_reference_gated"):
        assert set(exact[key]) == {"sequence_output", "pooled_output"}
        assert all(isinstance(v, float) for v in exact[key].values())
    assert exact["max_abs_diff"]["pruned_vs_gated"] < 1e-5
    assert exact["max_abs_diff"]["model_vs_reference"] < 1e-4
    assert exact["gates"]["closed"] > 0 and exact["gates"]["fractional"] > 0
    assert exact["gates"]["layers_with_zero_heads"] >= 1

    peer = doc["sections"]["peer"]
    assert peer["status"] == "skipped" and "LRP_BENCH_NO_TORCH" in peer["reason"]

    conv = doc["sections"]["convert_time"]
    assert conv["status"] == "ok" and _is_stats(conv["convert_s"]) and _is_stats(conv["apply_s"])
    assert 0 < conv["heads_kept"] < conv["heads_total"]

    names = [h["name"] for h in doc["headline"]]
    assert any("pruned - gated" in n for n in names) and any("convert" in n for n in names)
    assert all(isinstance(h["value"], (int, float)) for h in doc["headline"])

    text = md.read_text()
    assert text.startswith("# lrp_prune benchmarks (smoke mode)")
    for needle in ("## exactness", "## peer", "skipped: LRP_BENCH_NO_TORCH", "## convert_time", "mindspore 2.",
                   "logical cores", "pruned vs gated"):
        assert needle in text


@pytest.mark.slow
def test_unknown_section_is_refused():
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--smoke", "--sections", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--sections" in proc.stderr


def test_torch_train_step_peer_computes_the_same_loss():
    """The PyTorch train-step peer is the same function as BertClassifierWithLoss (mean pooling)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from lrp_prune import BertClassifier, BertClassifierWithLoss
    from lrp_prune.io.checkpoint import param_dict
    from mindspore import Tensor

    from helpers import tiny_config

    hf_peer = _load("hf_peer")

    cfg = tiny_config(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=37, seq_length=12)
    clf = BertClassifier(cfg, is_training=False, num_labels=3, pooling="mean")
    rng = np.random.default_rng(1)
    ids = rng.integers(1, cfg.vocab_size, (3, 12)).astype(np.int32)
    types = rng.integers(0, 2, (3, 12)).astype(np.int32)
    mask = np.ones((3, 12), np.int32)
    mask[-1, 8:] = 0  # a padded row: the masked mean must agree too
    labels = np.array([0, 2, 1], np.int32)
    expected = float(BertClassifierWithLoss(clf)(Tensor(ids), Tensor(types), Tensor(mask), Tensor(labels)).asnumpy())
    head = {"weight": clf.dense_1.weight.asnumpy(), "bias": clf.dense_1.bias.asnumpy()}
    step = hf_peer.train_step_runner(cfg, param_dict(clf.bert), head, ids, types, mask, labels, learning_rate=1e-3)
    first = step()  # the loss before its update
    assert first == pytest.approx(expected, abs=1e-5)
    assert step() < first  # and the step does train


@pytest.mark.slow
def test_layout_probe_variants_equal_the_library(tmp_path):
    """benchmarks/layouts.py: every attention variant computes the library's outputs (smoke shapes)."""
    out, md = tmp_path / "l.json", tmp_path / "l.md"
    proc = subprocess.run([sys.executable, str(BENCH / "layouts.py"), "--smoke", "--out", str(out), "--md", str(md)],
                          capture_output=True, text=True, env=dict(os.environ, GLOG_v="3"), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    variants = {r["variant"] for r in doc["rows"]}
    assert {"library", "fused_qkv", "k_transposed", "batchmatmul_tb", "heads_folded"} <= variants
    assert all(r["max_abs_diff_vs_library"] < 1e-5 for r in doc["rows"])
    assert all(_is_stats(r["seconds"]) and r["ratio_over_library"] > 0 for r in doc["rows"])
    assert md.read_text().startswith("# Attention layouts")


@pytest.mark.slow
def test_ffn_benchmark_smoke_removes_the_stated_share_of_encoder_work(tmp_path):
    """benchmarks/ffn.py: heads and FFN units pruned together; rows, patterns and the table."""
    out, md = tmp_path / "f.json", tmp_path / "f.md"
    proc = subprocess.run([sys.executable, str(BENCH / "ffn.py"), "--smoke", "--no-peer", "--out", str(out),
                           "--md", str(md)], capture_output=True, text=True, env=dict(os.environ, GLOG_v="3"),
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    for p in doc["speedup"]["patterns"]:
        assert abs(p["encoder_flops_removed"] - p["fraction_removed"]) < 0.02
        assert sum(p["units_kept_per_layer"]) == p["units_kept"] < 4 * 128
    rows = doc["speedup"]["rows"]
    assert {(r["batch_size"], r["fraction_removed"]) for r in rows} == {(b, f) for b in (1, 2) for f in (0.25, 0.5, 0.75)}
    assert all(r["ideal_speedup"] > 1 and r["measured_speedup"] > 0 for r in rows)
    assert md.read_text().startswith("# Heads + FFN pruned together")


@pytest.mark.slow
def test_smoke_accuracy_curve_shares_one_fine_tuning(tmp_path):
    """The curve in --smoke mode (tiny model, tiny data): rows, picture, and one fine-tuning for all points."""
    out, md, png = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "curve.png"
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--smoke", "--sections", "accuracy_curve",
                           "--out", str(out), "--md", str(md), "--png", str(png), "--quiet"],
                          capture_output=True, text=True, env=dict(os.environ, GLOG_v="3"), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    curve = json.loads(out.read_text())["sections"]["accuracy_curve"]
    assert curve["status"] == "ok" and [r["label"] for r in curve["rows"]] == ["lambda=0.05", "target=6"]
    first, second = curve["rows"]
    assert not first["finetuned_from_checkpoint"] and second["finetuned_from_checkpoint"]
    assert first["accuracy_before"] == second["accuracy_before"]  # the same fine-tuned start
    assert second["heads_kept"] == 6 and all(r["pruned_equals_gated"] for r in curve["rows"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## accuracy_curve" in md.read_text()

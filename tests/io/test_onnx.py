"""ONNX export: onnxruntime runs the exported graph and matches MindSpore (and the numpy reference)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from helpers import make_pruner, max_diff, random_inputs, set_log_a, tiny_config  # noqa: E402
from lrp_prune import BertClassifier, BertClassifierWithLoss, BertModel, LRPPruneError  # noqa: E402
from lrp_prune.io.onnx_export import build_onnx, check_onnx, export_onnx, onnx_layer_widths  # noqa: E402
from lrp_prune.io.checkpoint import load_param_dict  # noqa: E402
from reference import bert_forward, random_params  # noqa: E402

UNEVEN = ((0, 2, 3), (), (1,))  # three, none and one of 4 heads
SHAPES = ((2, 5), (3, 16))  # (batch, sequence): two of each, the longest at max_position_embeddings


def sharp_params(cfg, seed=0, scale=15.0):
    """Random parameters with 2-D weights scaled up: attention far from uniform, GELU far from linear
    (at N(0, 0.02) a tanh GELU could pass for the erf one)."""
    params = random_params(cfg.to_dict(), seed)
    return {k: (v * scale if v.ndim == 2 and "embedding" not in k else v) for k, v in params.items()}


def classifier(cfg, pooling="pooler", num_labels=3, seed=0):
    clf = BertClassifier(cfg, False, num_labels=num_labels, pooling=pooling)
    load_param_dict(clf.bert, sharp_params(cfg, seed))
    rng = np.random.default_rng(seed)
    clf.dense_1.weight.set_data(clf.dense_1.weight.__class__(rng.normal(0, 0.5, (num_labels, cfg.hidden_size))
                                                             .astype(np.float32)))
    return clf


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
@pytest.mark.parametrize("act", ["gelu", "relu", "gelu_new"])
def test_an_uneven_classifier_matches_mindspore_in_onnxruntime(tmp_path, pooling, act):
    cfg = tiny_config(layer_heads=UNEVEN, hidden_act=act)
    clf = classifier(cfg, pooling)
    path = export_onnx(clf, tmp_path / "clf")
    assert path.name == "clf.onnx" and onnx_layer_widths(path) == [(3, 37), (0, 37), (1, 37)]
    assert check_onnx(clf, path, SHAPES) <= 1e-4


def test_a_bare_bert_model_exports_both_encoder_outputs(tmp_path):
    import onnx

    cfg = tiny_config(layer_heads=UNEVEN)
    model = BertModel(cfg, False)
    load_param_dict(model, sharp_params(cfg))
    path = export_onnx(model, tmp_path / "enc.onnx")
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["sequence_output", "pooled_output"]
    assert [i.name for i in graph.input] == ["input_ids", "token_type_ids", "input_mask"]
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert dims == [["batch", "sequence"]] * 3  # both dimensions dynamic
    assert check_onnx(model, path, SHAPES) <= 1e-4


def test_the_loss_wrapper_exports_its_classifier_with_label_names(tmp_path):
    import onnx

    cfg = tiny_config()
    clf = classifier(cfg, num_labels=2)
    clf.label_names = ("negative", "positive")
    path = export_onnx(BertClassifierWithLoss(clf), tmp_path / "m.onnx", opset=13)  # LayerNorm from ReduceMean
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["lrp_prune.label_names"] == '["negative", "positive"]' and meta["lrp_prune.heads_per_layer"] == "[4, 4, 4]"
    assert check_onnx(clf, path, SHAPES) <= 1e-4


def test_ffn_widths_including_none_match_the_numpy_reference():
    """FFN units sliced per layer (37, 5 and 0 kept): the graph from parameters alone, against numpy."""
    import onnxruntime

    cfg = tiny_config(layer_heads=UNEVEN)
    params = sharp_params(cfg)
    ref_params = dict(params)
    keep = {0: list(range(37)), 1: [0, 4, 9, 20, 36]}
    for i, units in keep.items():
        p = f"bert_encoder.layers.{i}"
        for name, value in ((f"{p}.intermediate.weight", params[f"{p}.intermediate.weight"][units]),
                            (f"{p}.intermediate.bias", params[f"{p}.intermediate.bias"][units]),
                            (f"{p}.output.dense.weight", params[f"{p}.output.dense.weight"][:, units])):
            params[name] = ref_params[name] = value
    p = "bert_encoder.layers.2"
    for name in (f"{p}.intermediate.weight", f"{p}.intermediate.bias", f"{p}.output.dense.weight"):
        del params[name]  # no units left: the block is LayerNorm(x + b_out)
    ref_params[f"{p}.intermediate.weight"] = np.zeros((1, cfg.hidden_size), np.float32)  # one unit of 0:
    ref_params[f"{p}.intermediate.bias"] = np.zeros((1,), np.float32)                   # act(0) = 0 adds nothing
    ref_params[f"{p}.output.dense.weight"] = np.zeros((cfg.hidden_size, 1), np.float32)
    model = build_onnx(cfg.to_dict(), params)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids, types, mask = random_inputs(cfg, batch=3)
    ours = session.run(None, {"input_ids": ids, "token_type_ids": types, "input_mask": mask})
    seq, pooled = bert_forward(ref_params, cfg.to_dict(), ids, types, mask)
    assert max_diff(ours[0], seq) <= 1e-4 and max_diff(ours[1], pooled) <= 1e-4


def test_bad_models_and_options_get_one_clear_error(tmp_path, monkeypatch):
    cfg = tiny_config(num_hidden_layers=1)
    gated = make_pruner().apply(BertClassifier(cfg, False))
    with pytest.raises(LRPPruneError, match=r"export_onnx: expected an ungated model \(convert\(\) the gated one"):
        export_onnx(gated, tmp_path / "g.onnx")
    from mindspore import nn

    with pytest.raises(LRPPruneError, match="export_onnx: expected a BertModel, BertClassifier or "
                                            "BertClassifierWithLoss, got Dense"):
        export_onnx(nn.Dense(2, 2), tmp_path / "d.onnx")
    (tmp_path / "keep.onnx").write_bytes(b"an earlier export")
    with pytest.raises(LRPPruneError, match=r"opset: expected an integer in \[13, "):
        export_onnx(BertModel(cfg, False), tmp_path / "keep.onnx", opset=12)
    assert (tmp_path / "keep.onnx").read_bytes() == b"an earlier export"
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    with pytest.raises(LRPPruneError, match=r'pip install "lrp_prune\[onnx\]"'):
        export_onnx(BertModel(cfg, False), tmp_path / "m.onnx")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_pruned_minilm_with_an_empty_layer_runs_in_onnxruntime(tmp_path):
    """The real all-MiniLM-L6-v2, pruned to uneven heads with layer 3 emptied, at 2 batches x 2 lengths."""
    from lrp_prune.io.assets import fetch_minilm
    from lrp_prune.io.hf import load_hf_bert

    bert, cfg = load_hf_bert(fetch_minilm(), is_training=False, seq_length=64)
    clf = BertClassifier(cfg, False, num_labels=3, pooling="mean")
    load_param_dict(clf.bert, {name: p.asnumpy() for name, p in bert.parameters_and_names()})
    gated = make_pruner().apply(clf)
    rng = np.random.default_rng(0)
    grid = np.where(rng.random((6, 12)) < 0.5, 5.0, -5.0)
    grid[3] = -5.0  # layer 3 keeps no head
    grid[0] = 5.0
    set_log_a(gated, grid)
    pruned = make_pruner().convert(gated)
    kept = [len(h) for h in pruned.bert.config.layer_heads]
    assert kept[3] == 0 and kept[0] == 12 and 0 < sum(kept) < 72
    path = export_onnx(pruned, tmp_path / "minilm.onnx")
    assert [n for n, _ in onnx_layer_widths(path)] == kept
    assert check_onnx(pruned, path, ((2, 24), (5, 64))) <= 1e-4


def test_a_converted_model_with_ffn_units_pruned_runs_in_onnxruntime(tmp_path):
    from lrp_prune.network.gates import FFN, ModelGates

    cfg = tiny_config(layer_heads=UNEVEN, hidden_act="gelu_new")
    pruner = make_pruner(structures=["heads", "ffn"])
    gated = pruner.apply(classifier(cfg, "mean"))
    gates = ModelGates(gated)
    log_a = np.where(np.random.default_rng(3).random((3, 37)) < 0.4, -5.0, 4.0)
    log_a[2] = -5.0  # one layer without any unit
    gates.set_log_a(log_a, FFN)
    pruned = pruner.convert(gated)
    widths = [(len(pruned.config.heads_of(i)), pruned.config.units_per_layer[i]) for i in range(3)]
    path = export_onnx(pruned, tmp_path / "ffn")
    assert onnx_layer_widths(path) == widths and widths[2] == (1, 0)
    assert check_onnx(pruned, path, SHAPES) <= 1e-4

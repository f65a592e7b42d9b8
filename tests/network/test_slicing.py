"""Tests of lrp_prune.slicing (hand-computed matrices) and of lrp_prune.prune_heads on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from lrp_prune import LRPPruneError, prune_heads
from lrp_prune.io.checkpoint import param_dict
from lrp_prune.network.slicing import head_index, normalise_heads_to_prune, plan_layer, slice_columns, slice_rows

from helpers import as_tensors, max_diff, random_inputs, random_model, tiny_config
from reference import bert_forward, expected_param_names, param_shapes


# ---------------------------------------------------------------------------- head_index
def test_head_index_by_hand():
    assert head_index([0, 2], 3).tolist() == [0, 1, 2, 6, 7, 8]
    assert head_index([1], 4).tolist() == [4, 5, 6, 7]
    assert head_index([3, 0], 2).tolist() == [6, 7, 0, 1]  # order of positions is kept
    assert head_index([0, 1, 2], 1).tolist() == [0, 1, 2]


def test_head_index_empty_and_dtype():
    index = head_index([], 4)
    assert index.shape == (0,) and index.dtype == np.int64
    assert head_index((1, 2), 2).dtype == np.int64


# ---------------------------------------------------------------------------- plan_layer
def test_plan_layer_fresh():
    plan = plan_layer(heads=(0, 1, 2, 3), prune=[1, 3], head_size=2)
    assert plan.kept_heads == (0, 2)
    assert plan.kept_positions == (0, 2)
    assert plan.index.tolist() == [0, 1, 4, 5]


def test_plan_layer_nothing_and_everything():
    plan = plan_layer(heads=(0, 1, 2), prune=[], head_size=3)
    assert plan.kept_heads == (0, 1, 2) and plan.kept_positions == (0, 1, 2)
    assert plan.index.tolist() == list(range(9))
    plan = plan_layer(heads=(0, 1, 2), prune=[2, 0, 1], head_size=3)
    assert plan.kept_heads == () and plan.kept_positions == () and plan.index.tolist() == []


def test_plan_layer_repruning_ignores_heads_already_gone():
    # the layer lost head 1 earlier; it now has original heads (0, 2, 3) at positions 0, 1, 2
    plan = plan_layer(heads=(0, 2, 3), prune=[1, 3], head_size=2)
    assert plan.kept_heads == (0, 2)
    assert plan.kept_positions == (0, 1)  # positions among the CURRENT heads
    assert plan.index.tolist() == [0, 1, 2, 3]
    # a generator and duplicates are fine
    plan = plan_layer(heads=(1, 3), prune=(h for h in [3, 3, 0]), head_size=1)
    assert plan.kept_heads == (1,) and plan.kept_positions == (0,) and plan.index.tolist() == [0]


def test_plan_layer_composes():
    d = 2
    w = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)  # 4 heads of 2 rows
    first = plan_layer((0, 1, 2, 3), [2], d)
    w1 = slice_rows(w, first.index)
    second = plan_layer(first.kept_heads, [0, 2], d)  # 2 is already gone
    w2 = slice_rows(w1, second.index)
    once = plan_layer((0, 1, 2, 3), [0, 2], d)
    assert second.kept_heads == once.kept_heads == (1, 3)
    np.testing.assert_array_equal(w2, slice_rows(w, once.index))
    np.testing.assert_array_equal(w2, w[[2, 3, 6, 7]])


# ---------------------------------------------------------------------------- slice_rows / slice_columns
def test_slice_rows_weight_and_bias():
    w = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]], np.float32)  # [out 6, in 2]
    b = np.array([10, 20, 30, 40, 50, 60], np.float32)
    index = np.array([2, 3], np.int64)  # head 1 of size 2
    out = slice_rows(w, index)
    assert out.tolist() == [[5, 6], [7, 8]]
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert slice_rows(b, index).tolist() == [30, 40]
    assert slice_rows(b, np.array([0, 1, 4, 5])).tolist() == [10, 20, 50, 60]
    out[0, 0] = -1  # a new array, not a view
    assert w[2, 0] == 5


def test_slice_columns_without_scale():
    w = np.array([[1, 2, 3, 4, 5, 6],
                  [7, 8, 9, 10, 11, 12]], np.float32)  # [out 2, in 6]: 3 heads of 2 columns
    out = slice_columns(w, np.array([0, 1, 4, 5]))
    assert out.tolist() == [[1, 2, 5, 6], [7, 8, 11, 12]]
    assert out.dtype == np.float32 and out.flags.c_contiguous
    out[0, 0] = -1
    assert w[0, 0] == 1


def test_slice_columns_with_scale():
    w = np.array([[1, 2, 3, 4, 5, 6],
                  [7, 8, 9, 10, 11, 12]], np.float32)
    out = slice_columns(w, np.array([2, 3, 4, 5]), scale=np.array([10.0, 10.0, 0.5, 0.5]))
    assert out.tolist() == [[30, 40, 2.5, 3], [90, 100, 5.5, 6]]
    assert out.dtype == np.float32
    # folding a gate into W_O equals gating the context
    rng = np.random.default_rng(0)
    context = rng.standard_normal((5, 4))
    gate = np.array([0.3, 0.3, 0.8, 0.8])
    folded = slice_columns(w.astype(np.float64), np.array([2, 3, 4, 5]), gate)
    np.testing.assert_allclose(context @ folded.T, (context * gate) @ w[:, 2:].T, rtol=1e-12)


def test_slice_columns_keeps_float16():
    w = np.arange(8, dtype=np.float16).reshape(2, 4)
    out = slice_columns(w, np.array([1, 3]), scale=np.array([2.0, 0.5]))
    assert out.dtype == np.float16 and out.tolist() == [[2.0, 1.5], [10.0, 3.5]]


# ---------------------------------------------------------------------------- normalise_heads_to_prune
def test_normalise_every_layer_present_sorted():
    out = normalise_heads_to_prune({1: [3, 0, 3]}, num_layers=3, num_heads=4)
    assert out == {0: [], 1: [0, 3], 2: []}
    assert normalise_heads_to_prune({}, 2, 4) == {0: [], 1: []}


def test_normalise_string_keys_and_union():
    out = normalise_heads_to_prune({"0": [1], 0: [2, 1], "2": (3,)}, num_layers=3, num_heads=4)
    assert out == {0: [1, 2], 1: [], 2: [3]}
    assert all(isinstance(k, int) for k in out)
    assert all(isinstance(h, int) for heads in out.values() for h in heads)
    out = normalise_heads_to_prune({0: np.array([2, 0])}, 1, 4)
    assert out == {0: [0, 2]} and all(type(h) is int for h in out[0])


@pytest.mark.parametrize("key", ["layer0", None, 1.5j])
def test_normalise_bad_layer_key(key):
    with pytest.raises(LRPPruneError) as info:
        normalise_heads_to_prune({key: [0]}, 2, 4)
    msg = str(info.value)
    assert msg.startswith("heads_to_prune:") and repr(key) in msg


@pytest.mark.parametrize("key", [2, -1, "7"])
def test_normalise_layer_out_of_range(key):
    with pytest.raises(LRPPruneError) as info:
        normalise_heads_to_prune({key: [0]}, 2, 4)
    msg = str(info.value)
    assert msg.startswith("heads_to_prune:") and "[0, 2)" in msg and str(int(key)) in msg


@pytest.mark.parametrize("heads,bad", [([0, 4], "[4]"), ([-1], "[-1]"), ([9, 1, 5], "[5, 9]")])
def test_normalise_head_out_of_range(heads, bad):
    with pytest.raises(LRPPruneError) as info:
        normalise_heads_to_prune({1: heads}, 2, 4)
    msg = str(info.value)
    assert msg.startswith("heads_to_prune[1]:") and "[0, 4)" in msg and bad in msg


@pytest.mark.parametrize("heads", [3, None, ["a"]])
def test_normalise_heads_not_a_list(heads):
    with pytest.raises(LRPPruneError, match=r"^heads_to_prune\[0\]:"):
        normalise_heads_to_prune({0: heads}, 2, 4)


@pytest.mark.parametrize("value", [{1.5: [0]}, {0: [2.5]}])
def test_normalise_refuses_non_integer_indices(value):
    with pytest.raises(LRPPruneError, match="heads_to_prune"):
        normalise_heads_to_prune(value, 3, 4)


@pytest.mark.parametrize("value", [[0, 1], [(0, [1])], "0:1", None])
def test_normalise_not_a_dict(value):
    with pytest.raises(LRPPruneError) as info:
        normalise_heads_to_prune(value, 2, 4)
    assert str(info.value).startswith("heads_to_prune:") and "dict" in str(info.value)


# ---------------------------------------------------------------------------- prune_heads on a model
def _gates(cfg, pruned: dict) -> np.ndarray:
    gates = np.ones((cfg.num_hidden_layers, cfg.num_attention_heads))
    for layer, heads in pruned.items():
        gates[layer, heads] = 0.0
    return gates


def _run(model, inputs):
    seq, pooled, _ = model(*as_tensors(inputs))
    return seq, pooled


def _check_names(model, cfg):
    names = [name for name, _ in model.parameters_and_names()]
    assert len(names) == len(set(names))
    # Parameter.name (what ms.save_checkpoint uses) equals the full path, so it is unique too
    assert [p.name for _, p in model.parameters_and_names()] == names
    expected = param_shapes(cfg.to_dict())
    assert set(names) == set(expected)
    assert set(names) <= set(expected_param_names(cfg.num_hidden_layers))
    for name, param in model.parameters_and_names():
        assert tuple(param.shape) == expected[name], name


@pytest.fixture(scope="module")
def original():
    cfg = tiny_config()
    return cfg, param_dict(random_model(cfg, seed=3)), random_inputs(cfg, batch=3, seed=4, pad_from=5)


def test_prune_heads_matches_gated_reference(original):
    cfg, params, inputs = original
    to_prune = {0: [1, 2], 1: [0, 1, 2, 3], 2: [3]}
    model = random_model(cfg, seed=3)
    assert prune_heads(model, to_prune) is model
    assert model.config.layer_heads == ((0, 3), (), (0, 1, 2))
    seq, pooled = _run(model, inputs)
    ref_seq, ref_pooled = bert_forward(params, cfg.to_dict(), *inputs, gates=_gates(cfg, to_prune))
    assert max_diff(seq, ref_seq) < 1e-5
    assert max_diff(pooled, ref_pooled) < 1e-5
    # not a tautology: the unpruned model computes something else
    full_seq, _ = bert_forward(params, cfg.to_dict(), *inputs)
    assert max_diff(seq, full_seq) > 1e-3
    _check_names(model, model.config)
    layer1 = [n for n, _ in model.parameters_and_names() if n.startswith("bert_encoder.layers.1.attention.")]
    assert sorted(layer1) == ["bert_encoder.layers.1.attention.output.dense.bias",
                              "bert_encoder.layers.1.attention.output.layernorm.beta",
                              "bert_encoder.layers.1.attention.output.layernorm.gamma"]
    # the kept rows/columns are exactly those of the kept heads, in order
    pruned = param_dict(model)
    q = "bert_encoder.layers.0.attention.attention.query_layer.weight"
    np.testing.assert_array_equal(pruned[q], params[q][[*range(0, 8), *range(24, 32)]])
    o = "bert_encoder.layers.2.attention.output.dense.weight"
    np.testing.assert_array_equal(pruned[o], params[o][:, :24])
    b = "bert_encoder.layers.1.attention.output.dense.bias"
    np.testing.assert_array_equal(pruned[b], params[b])


def test_prune_heads_twice_composes(original):
    cfg, params, inputs = original
    model = random_model(cfg, seed=3)
    prune_heads(model, {0: [1], 2: [0, 1, 2, 3]})
    assert model.config.layer_heads == ((0, 2, 3), (0, 1, 2, 3), ())
    _run(model, inputs)  # compile the intermediate structure, so the second prune must drop it
    # original indices again, including heads already removed (0:1 and all of layer 2)
    prune_heads(model, {0: [1, 2], 1: [3], 2: [1]})
    union = {0: [1, 2], 1: [3], 2: [0, 1, 2, 3]}
    assert model.config.layer_heads == ((0, 3), (0, 1, 2), ())
    assert model.config.heads_per_layer == (2, 3, 0)
    seq, pooled = _run(model, inputs)
    ref_seq, ref_pooled = bert_forward(params, cfg.to_dict(), *inputs, gates=_gates(cfg, union))
    assert max_diff(seq, ref_seq) < 1e-5
    assert max_diff(pooled, ref_pooled) < 1e-5
    _check_names(model, model.config)
    assert not any(n.startswith("bert_encoder.layers.2.attention.attention.")
                   for n, _ in model.parameters_and_names())
    # the model rebuilt from its config has the same parameter layout
    from lrp_prune import BertModel

    rebuilt = BertModel(model.config, False)
    assert {n: tuple(p.shape) for n, p in rebuilt.parameters_and_names()} == \
        {n: tuple(p.shape) for n, p in model.parameters_and_names()}


def test_prune_heads_folds_gate_values(original):
    cfg, params, inputs = original
    rng = np.random.default_rng(7)
    gates = rng.uniform(0.2, 1.0, (cfg.num_hidden_layers, cfg.num_attention_heads))
    to_prune = {0: [0], 2: [1, 3]}
    model = prune_heads(random_model(cfg, seed=3), to_prune, gate_values=gates)
    seq, pooled = _run(model, inputs)
    ref_seq, ref_pooled = bert_forward(params, cfg.to_dict(), *inputs, gates=gates * _gates(cfg, to_prune))
    assert max_diff(seq, ref_seq) < 1e-5
    assert max_diff(pooled, ref_pooled) < 1e-5


def test_prune_heads_bad_input(original):
    cfg, _, _ = original
    model = random_model(cfg, seed=3)
    with pytest.raises(LRPPruneError, match=r"heads_to_prune\[0\]"):
        prune_heads(model, {0: [4]})
    with pytest.raises(LRPPruneError, match="gate_values"):
        prune_heads(model, {0: [1]}, gate_values=np.ones((2, 4)))
    assert model.config.layer_heads is None  # nothing changed

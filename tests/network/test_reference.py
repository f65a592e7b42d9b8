"""Self-checks of tests/reference.py; independent of the library under test."""
import math

import numpy as np
import pytest

from reference import activation, bert_forward, expected_param_names, param_shapes, random_params

TINY = dict(vocab_size=11, type_vocab_size=2, max_position_embeddings=8, hidden_size=8,
            num_attention_heads=4, num_hidden_layers=2, intermediate_size=12, hidden_act="gelu")
L0 = "bert_encoder.layers.0"


def _ln(v):  # LayerNorm without affine, eps 0, written independently of reference.layer_norm
    return (v - v.mean(-1, keepdims=True)) / v.std(-1, keepdims=True)


def _inputs(B=2, S=5, seed=1, pad=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, TINY["vocab_size"], (B, S))
    types = rng.integers(0, TINY["type_vocab_size"], (B, S))
    mask = np.ones((B, S), np.int32)
    if pad:
        mask[-1, S - pad:] = 0
    return ids, types, mask


def _slice_heads(params, config, layer_heads):
    """Params of the full model reduced to layer_heads (rows of Q/K/V, columns of W_O)."""
    d = config["hidden_size"] // config["num_attention_heads"]
    out = dict(params)
    for i, heads in enumerate(layer_heads):
        idx = np.array([h * d + j for h in heads for j in range(d)], dtype=int)
        p = f"bert_encoder.layers.{i}.attention"
        for proj in ("query_layer", "key_layer", "value_layer"):
            for kind in ("weight", "bias"):
                key = f"{p}.attention.{proj}.{kind}"
                if len(heads):
                    out[key] = params[key][idx]
                else:
                    del out[key]
        if len(heads):
            out[f"{p}.output.dense.weight"] = params[f"{p}.output.dense.weight"][:, idx]
        else:
            del out[f"{p}.output.dense.weight"]
    return out


# ---------------------------------------------------------------- names and shapes
def test_names_and_shapes():
    names = expected_param_names(2)
    assert len(names) == len(set(names)) == 5 + 16 * 2 + 2
    assert set(names) == set(param_shapes(TINY))
    assert "bert_encoder.layers.1.attention.attention.query_layer.weight" in names
    assert "bert_encoder.layers.0.intermediate.weight" in names and "dense.bias" in names
    shapes = param_shapes(TINY)
    assert shapes["bert_embedding_lookup.embedding_table"] == (11, 8)
    assert shapes[f"{L0}.attention.attention.key_layer.weight"] == (8, 8)
    assert shapes[f"{L0}.intermediate.weight"] == (12, 8)
    assert shapes[f"{L0}.output.dense.weight"] == (8, 12)
    pruned = param_shapes(dict(TINY, layer_heads=[[3, 1], []]))
    assert pruned[f"{L0}.attention.attention.value_layer.weight"] == (4, 8)
    assert pruned[f"{L0}.attention.attention.value_layer.bias"] == (4,)
    assert pruned[f"{L0}.attention.output.dense.weight"] == (8, 4)
    p1 = "bert_encoder.layers.1.attention"
    assert f"{p1}.attention.query_layer.weight" not in pruned
    assert f"{p1}.output.dense.weight" not in pruned and pruned[f"{p1}.output.dense.bias"] == (8,)


def test_random_params():
    params = random_params(TINY, seed=0)
    assert {k: v.shape for k, v in params.items()} == param_shapes(TINY)
    assert all(v.dtype == np.float32 for v in params.values())
    g = params[f"{L0}.output.layernorm.gamma"]
    assert abs(g.mean() - 1) < 0.1 and g.std() > 0.01
    for k, v in params.items():
        if not k.endswith("gamma"):
            assert np.all(v != 0) and np.abs(v).max() < 0.2, k
    assert not np.array_equal(random_params(TINY, 0)["dense.bias"], random_params(TINY, 1)["dense.bias"])
    np.testing.assert_array_equal(random_params(TINY, 3)["dense.weight"], random_params(TINY, 3)["dense.weight"])


# ---------------------------------------------------------------- hand-computed cases
def test_embeddings_only_hand_computed():
    cfg = dict(TINY, hidden_size=4, num_attention_heads=2, num_hidden_layers=0, layer_norm_eps=0.0)
    p = {k: np.zeros(s) for k, s in param_shapes(cfg).items()}
    p["bert_embedding_lookup.embedding_table"][3] = [1, 2, 3, 4]
    p["bert_embedding_postprocessor.full_position_embedding.embedding_table"][1] = [0, 0, 0, 4]
    p["bert_embedding_postprocessor.token_type_embedding.embedding_table"][1] = [1, 0, 0, 0]
    p["bert_embedding_postprocessor.layernorm.gamma"][:] = 2.0
    p["bert_embedding_postprocessor.layernorm.beta"][:] = [0, 0, 0, 1]
    p["dense.weight"][:] = np.eye(4)
    p["dense.bias"][:] = [0.5, 0, 0, 0]
    seq, pooled = bert_forward(p, cfg, [[3, 3]], [[1, 0]], [[1, 1]])
    # pos 0: [1,2,3,4] + [1,0,0,0] = [2,2,3,4]: mean 2.75, dev [-.75,-.75,.25,1.25], var 0.6875
    e0 = 2 * np.array([-.75, -.75, .25, 1.25]) / math.sqrt(0.6875) + [0, 0, 0, 1]
    # pos 1: [1,2,3,8]: mean 3.5, dev [-2.5,-1.5,-.5,4.5], var (6.25+2.25+.25+20.25)/4 = 7.25
    e1 = 2 * np.array([-2.5, -1.5, -.5, 4.5]) / math.sqrt(7.25) + [0, 0, 0, 1]
    np.testing.assert_allclose(seq[0], [e0, e1], atol=1e-12)
    np.testing.assert_allclose(pooled[0], np.tanh(e0 + [0.5, 0, 0, 0]), atol=1e-12)
    assert seq.dtype == np.float64 and seq.shape == (1, 2, 4) and pooled.shape == (1, 4)


def _zero_weight_layer_params(cfg):
    p = {k: np.zeros(s) for k, s in param_shapes(cfg).items()}
    emb = "bert_embedding_postprocessor.layernorm"
    p["bert_embedding_lookup.embedding_table"][:] = np.arange(cfg["vocab_size"] * 4).reshape(-1, 4) % 7
    p[f"{emb}.beta"][:] = [1, 2, 3, 4]                 # gamma 0 -> every token embeds to [1,2,3,4]
    a = f"{L0}.attention"
    p[f"{a}.attention.query_layer.bias"][:] = [1, -2, 3, 0.5]   # must not matter: keys all equal
    p[f"{a}.attention.key_layer.bias"][:] = [0.3, 1, -1, 2]
    p[f"{a}.attention.value_layer.bias"][:] = [1, 0, -1, 1]
    p[f"{a}.output.dense.weight"][:] = np.eye(4)
    p[f"{a}.output.dense.bias"][:] = [0, 0, 0, 1]
    p[f"{a}.output.layernorm.gamma"][:] = 2.0
    p[f"{a}.output.layernorm.beta"][:] = [0, 0, 0, 1]
    p[f"{L0}.intermediate.bias"][:] = [1, -1]
    p[f"{L0}.output.dense.weight"][:] = [[1, 1], [0, 0], [0, 0], [0, 0]]
    p[f"{L0}.output.dense.bias"][:] = [0, 0, 1, 0]
    p[f"{L0}.output.layernorm.gamma"][:] = 1.0
    p["dense.bias"][:] = [0.1, 0.2, 0.3, 0.4]
    return p


def test_one_layer_zero_weights_hand_computed():
    cfg = dict(TINY, hidden_size=4, num_attention_heads=2, num_hidden_layers=1, intermediate_size=2,
               hidden_act="relu", layer_norm_eps=0.0)
    p = _zero_weight_layer_params(cfg)
    seq, pooled = bert_forward(p, cfg, [[1, 2, 3]], [[0, 1, 0]], [[1, 1, 0]])
    # context = b_V (keys equal -> uniform probs; all values = b_V); W_O = I:
    # x + b_V + b_O = [1,2,3,4] + [1,0,-1,1] + [0,0,0,1] = [2,2,2,6]: mean 3, dev [-1,-1,-1,3], var 3
    x1 = 2 * np.array([-1, -1, -1, 3]) / math.sqrt(3) + [0, 0, 0, 1]
    # FFN: relu([1,-1]) = [1,0]; out = [1,0,0,0] + [0,0,1,0]
    x2 = _ln(x1 + [1, 0, 1, 0])
    np.testing.assert_allclose(seq[0], np.tile(x2, (3, 1)), atol=1e-12)
    np.testing.assert_allclose(pooled[0], np.tanh([0.1, 0.2, 0.3, 0.4]), atol=1e-12)


def test_zero_head_layer_formula():
    cfg = dict(TINY, hidden_size=4, num_attention_heads=2, num_hidden_layers=1, intermediate_size=2,
               hidden_act="relu", layer_norm_eps=0.0, layer_heads=[[]])
    p = {k: v for k, v in _zero_weight_layer_params(dict(cfg, layer_heads=None)).items()
         if k in param_shapes(cfg)}
    assert not any("query_layer" in k or ("attention.output.dense.weight" in k) for k in p)
    seq, _ = bert_forward(p, cfg, [[1, 2]], [[0, 0]], [[1, 1]])
    # LayerNorm(x + b_O): [1,2,3,5]: mean 2.75, dev [-1.75,-.75,.25,2.25], var 2.1875
    x1 = 2 * np.array([-1.75, -.75, .25, 2.25]) / math.sqrt(2.1875) + [0, 0, 0, 1]
    np.testing.assert_allclose(seq[0], np.tile(_ln(x1 + [1, 0, 1, 0]), (2, 1)), atol=1e-12)


def test_zero_head_layer_equals_all_gates_zero():
    params = random_params(TINY, seed=5)
    ids, types, mask = _inputs(pad=2)
    layer_heads = [[], [0, 1, 2, 3]]
    pruned = _slice_heads(params, TINY, layer_heads)
    gates = np.ones((2, 4))
    gates[0] = 0.0
    want = bert_forward(params, TINY, ids, types, mask, gates=gates)
    got = bert_forward(pruned, dict(TINY, layer_heads=layer_heads), ids, types, mask)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=1e-12)


# ---------------------------------------------------------------- attention semantics
def _naive_attention_block(p, cfg, x, mask):
    """Loop-per-head/query version of layer 0's attention block (heads = contiguous row blocks)."""
    H = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // H
    a = f"{L0}.attention"
    W = {n: (p[f"{a}.attention.{n}_layer.weight"].astype(np.float64),
             p[f"{a}.attention.{n}_layer.bias"].astype(np.float64)) for n in ("query", "key", "value")}
    B, S, _ = x.shape
    out = np.zeros_like(x)
    for b in range(B):
        ctx = np.zeros((S, H * d))
        for h in range(H):
            rows = slice(h * d, (h + 1) * d)
            q, k, v = ((x[b] @ W[n][0][rows].T + W[n][1][rows]) for n in ("query", "key", "value"))
            for s in range(S):
                logits = np.array([q[s] @ k[t] / math.sqrt(d) - 10000.0 * (1 - mask[b, t])
                                   for t in range(S)])
                w = np.exp(logits - logits.max())
                ctx[s, rows] = (w / w.sum()) @ v
        o = ctx @ p[f"{a}.output.dense.weight"].T.astype(np.float64) + p[f"{a}.output.dense.bias"] + x[b]
        g, be = p[f"{a}.output.layernorm.gamma"], p[f"{a}.output.layernorm.beta"]
        out[b] = (o - o.mean(-1, keepdims=True)) / np.sqrt(o.var(-1, keepdims=True) + 1e-12) * g + be
    return out


def test_attention_matches_naive_loops():
    cfg = dict(TINY, num_hidden_layers=1)
    params = random_params(cfg, seed=2)
    # make attention non-trivial (std 0.02 weights give nearly uniform probabilities)
    for n in ("query", "key"):
        params[f"{L0}.attention.attention.{n}_layer.weight"] *= 100
    ids, types, mask = _inputs(pad=2)
    emb_only, _ = bert_forward(params, dict(cfg, num_hidden_layers=0), ids, types, mask)
    x1 = _naive_attention_block(params, cfg, emb_only, mask)
    h = x1 @ params[f"{L0}.intermediate.weight"].T.astype(np.float64) + params[f"{L0}.intermediate.bias"]
    h = activation(h, "gelu")
    o = h @ params[f"{L0}.output.dense.weight"].T.astype(np.float64) + params[f"{L0}.output.dense.bias"] + x1
    want = _ln(o) * params[f"{L0}.output.layernorm.gamma"] + params[f"{L0}.output.layernorm.beta"]
    seq, _ = bert_forward(params, cfg, ids, types, mask)
    np.testing.assert_allclose(seq, want, atol=1e-9)


def test_padding_does_not_change_unpadded_tokens():
    params = random_params(TINY, seed=3)
    for i in range(2):
        for n in ("query", "key"):
            params[f"bert_encoder.layers.{i}.attention.attention.{n}_layer.weight"] *= 50
    ids, types, mask = _inputs(B=1, S=6)
    mask[0, 4:] = 0
    seq, pooled = bert_forward(params, TINY, ids, types, mask)
    short_seq, short_pooled = bert_forward(params, TINY, ids[:, :4], types[:, :4], mask[:, :4])
    np.testing.assert_allclose(seq[:, :4], short_seq, atol=1e-12)
    np.testing.assert_allclose(pooled, short_pooled, atol=1e-12)
    ids2 = ids.copy()
    ids2[0, 4:] = (ids[0, 4:] + 1) % TINY["vocab_size"]
    seq2, _ = bert_forward(params, TINY, ids2, types, mask)
    np.testing.assert_allclose(seq2[:, :4], seq[:, :4], atol=1e-12)
    assert not np.allclose(seq2[:, 4:], seq[:, 4:])       # padded positions are still computed
    unmasked, _ = bert_forward(params, TINY, ids2, types, np.ones_like(mask))
    assert not np.allclose(unmasked[:, :4], seq[:, :4])   # and the mask really matters


def test_gate_zero_equals_zeroed_value_rows():
    params = random_params(TINY, seed=4)
    ids, types, mask = _inputs(pad=1)
    d = TINY["hidden_size"] // TINY["num_attention_heads"]
    gates = np.ones((2, 4))
    gates[1, 2] = 0.0
    zeroed = dict(params)
    for kind in ("weight", "bias"):
        key = f"bert_encoder.layers.1.attention.attention.value_layer.{kind}"
        zeroed[key] = params[key].copy()
        zeroed[key][2 * d:3 * d] = 0
    want = bert_forward(zeroed, TINY, ids, types, mask)
    got = bert_forward(params, TINY, ids, types, mask, gates=gates)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=1e-12)
    ungated = bert_forward(params, TINY, ids, types, mask)
    assert not np.allclose(ungated[0], got[0])


def test_gates_all_one_and_folding_into_output_columns():
    params = random_params(TINY, seed=6)
    ids, types, mask = _inputs(pad=2)
    base = bert_forward(params, TINY, ids, types, mask)
    for w, g in zip(base, bert_forward(params, TINY, ids, types, mask, gates=np.ones((2, 4)))):
        np.testing.assert_array_equal(g, w)
    gates = np.random.default_rng(0).uniform(0, 1, (2, 4))
    d = TINY["hidden_size"] // TINY["num_attention_heads"]
    folded = dict(params)
    for i in range(2):
        key = f"bert_encoder.layers.{i}.attention.output.dense.weight"
        folded[key] = params[key] * np.repeat(gates[i], d)[None, :]
    for w, g in zip(bert_forward(folded, TINY, ids, types, mask),
                    bert_forward(params, TINY, ids, types, mask, gates=gates)):
        np.testing.assert_allclose(g, w, atol=1e-12)


@pytest.mark.parametrize("layer_heads", [[[0, 2], [1]], [[2, 0], [3, 1, 0]], [[1, 2, 3], []]])
def test_layer_heads_subset_equals_gated_full_model(layer_heads):
    params = random_params(TINY, seed=7)
    ids, types, mask = _inputs(pad=2)
    gates = np.random.default_rng(1).uniform(0.2, 1, (2, 4))
    full_gates = np.zeros((2, 4))
    for i, heads in enumerate(layer_heads):
        full_gates[i, heads] = gates[i, heads]
    cfg = dict(TINY, layer_heads=layer_heads)
    pruned = _slice_heads(params, TINY, layer_heads)
    assert {k: v.shape for k, v in pruned.items()} == param_shapes(cfg)
    want = bert_forward(params, TINY, ids, types, mask, gates=full_gates)
    got = bert_forward(pruned, cfg, ids, types, mask, gates=gates)   # gates by ORIGINAL head id
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=1e-12)
    ungated = bert_forward(pruned, cfg, ids, types, mask)
    want_ungated = bert_forward(params, TINY, ids, types, mask, gates=(full_gates > 0).astype(float))
    np.testing.assert_allclose(ungated[0], want_ungated[0], atol=1e-12)


# ---------------------------------------------------------------- activations and numerics
def test_gelu_variants():
    x = np.linspace(-6, 6, 1201)
    exact, approx = activation(x, "gelu"), activation(x, "gelu_tanh")
    np.testing.assert_array_equal(approx, activation(x, "gelu_new"))
    diff = np.abs(exact - approx)
    assert diff.max() < 1e-3 and diff.max() > 1e-6
    np.testing.assert_allclose(activation(np.array([0.0, 1.0, -1.0]), "gelu"),
                               [0.0, 0.8413447460685429, -0.15865525393145707], atol=1e-15)
    np.testing.assert_allclose(activation(np.array([-2.0, 3.0]), "relu"), [0.0, 3.0])
    with pytest.raises(ValueError):
        activation(x, "swish")
    params = random_params(TINY, seed=8)
    ids, types, mask = _inputs()
    a = bert_forward(params, TINY, ids, types, mask)[0]
    b = bert_forward(params, dict(TINY, hidden_act="gelu_new"), ids, types, mask)[0]
    assert not np.array_equal(a, b) and np.abs(a - b).max() < 1e-3


def test_large_scores_are_stable_and_layer_norm_eps_default():
    params = random_params(TINY, seed=9)
    for n in ("query", "key"):
        params[f"{L0}.attention.attention.{n}_layer.weight"] *= 1e4
    ids, types, mask = _inputs(pad=3)
    seq, pooled = bert_forward(params, TINY, ids, types, mask)
    assert np.all(np.isfinite(seq)) and np.all(np.isfinite(pooled))
    explicit = bert_forward(params, dict(TINY, layer_norm_eps=1e-12), ids, types, mask)[0]
    np.testing.assert_array_equal(seq, explicit)
    loose = bert_forward(params, dict(TINY, layer_norm_eps=1e-1), ids, types, mask)[0]
    assert not np.allclose(seq, loose)

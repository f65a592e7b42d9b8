"""Independent float64 numpy reference forward of BERT (MindSpore ModelZoo parameter names).

Used by tests as ground truth. Deliberately imports nothing from the library (and no mindspore).
Semantics follow docs/design.md sections 2-4:
  * Dense weights are [out, in]: y = x @ W.T + b.
  * Head h of a layer owns rows h*d:(h+1)*d of Q/K/V and columns h*d:(h+1)*d of W_O.
  * config["layer_heads"][i] lists the ORIGINAL head ids layer i keeps (None = all heads);
    a layer with no heads has only attention.output.dense.bias: its block is LayerNorm(x + b_O).
  * gates: [num_layers, H] indexed by original head id, scaling each head's context before W_O.
  * config["layer_units"][i] lists the ORIGINAL feed-forward units layer i keeps (None = all);
    unit u owns row u of intermediate.weight/bias and column u of output.dense.weight; a layer
    with no units has only output.dense.bias: its FFN block is LayerNorm(x + b_out).
  * ffn_gates: [num_layers, intermediate_size] by original unit id, scaling each unit after GELU.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

EMB = "bert_embedding_postprocessor"
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _layer_prefix(i: int) -> str:
    return f"bert_encoder.layers.{i}"


def _heads_of(config: Mapping[str, Any], i: int) -> list[int]:
    layer_heads = config.get("layer_heads")
    if layer_heads is None:
        return list(range(config["num_attention_heads"]))
    return list(layer_heads[i])


def _units_of(config: Mapping[str, Any], i: int) -> list[int]:
    layer_units = config.get("layer_units")
    if layer_units is None:
        return list(range(config["intermediate_size"]))
    return list(layer_units[i])


def expected_param_names(num_layers: int) -> list[str]:
    """docs/design.md §3 list, expanded for a full (unpruned) model."""
    names = ["bert_embedding_lookup.embedding_table",
             f"{EMB}.token_type_embedding.embedding_table",
             f"{EMB}.full_position_embedding.embedding_table",
             f"{EMB}.layernorm.gamma", f"{EMB}.layernorm.beta"]
    for i in range(num_layers):
        p = _layer_prefix(i)
        for proj in ("query_layer", "key_layer", "value_layer"):
            names += [f"{p}.attention.attention.{proj}.weight", f"{p}.attention.attention.{proj}.bias"]
        names += [f"{p}.attention.output.dense.weight", f"{p}.attention.output.dense.bias",
                  f"{p}.attention.output.layernorm.gamma", f"{p}.attention.output.layernorm.beta",
                  f"{p}.intermediate.weight", f"{p}.intermediate.bias",
                  f"{p}.output.dense.weight", f"{p}.output.dense.bias",
                  f"{p}.output.layernorm.gamma", f"{p}.output.layernorm.beta"]
    return names + ["dense.weight", "dense.bias"]


def param_shapes(config: Mapping[str, Any]) -> dict[str, tuple]:
    """Expected name -> shape, honouring config["layer_heads"] (pruned layers)."""
    hid = config["hidden_size"]
    d = hid // config["num_attention_heads"]
    shapes = {"bert_embedding_lookup.embedding_table": (config["vocab_size"], hid),
              f"{EMB}.token_type_embedding.embedding_table": (config["type_vocab_size"], hid),
              f"{EMB}.full_position_embedding.embedding_table": (config["max_position_embeddings"], hid),
              f"{EMB}.layernorm.gamma": (hid,), f"{EMB}.layernorm.beta": (hid,)}
    for i in range(config["num_hidden_layers"]):
        p, kept = _layer_prefix(i), len(_heads_of(config, i)) * d
        if kept:
            for proj in ("query_layer", "key_layer", "value_layer"):
                shapes[f"{p}.attention.attention.{proj}.weight"] = (kept, hid)
                shapes[f"{p}.attention.attention.{proj}.bias"] = (kept,)
            shapes[f"{p}.attention.output.dense.weight"] = (hid, kept)
        units = len(_units_of(config, i))
        if units:
            shapes.update({f"{p}.intermediate.weight": (units, hid), f"{p}.intermediate.bias": (units,),
                           f"{p}.output.dense.weight": (hid, units)})
        shapes.update({f"{p}.attention.output.dense.bias": (hid,),
                       f"{p}.attention.output.layernorm.gamma": (hid,),
                       f"{p}.attention.output.layernorm.beta": (hid,),
                       f"{p}.output.dense.bias": (hid,),
                       f"{p}.output.layernorm.gamma": (hid,), f"{p}.output.layernorm.beta": (hid,)})
    shapes.update({"dense.weight": (hid, hid), "dense.bias": (hid,)})
    return shapes


def random_params(config: Mapping[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    """float32 params: weights/tables N(0, 0.02), gamma 1 + 0.1 N, beta/biases 0.02 N (non-zero)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(".gamma"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        else:  # weights, embedding tables, beta, biases
            value = 0.02 * rng.standard_normal(shape)
        params[name] = value.astype(np.float32)
    return params


def layer_norm(x: np.ndarray, gamma, beta, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # biased variance, as BERT
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def activation(x: np.ndarray, name: str) -> np.ndarray:
    if name == "gelu":  # exact erf GELU
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_tanh", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(f"unknown hidden_act {name!r}")


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def bert_forward(params: Mapping[str, np.ndarray], config: Mapping[str, Any], input_ids,
                 token_type_ids, input_mask, gates=None, ffn_gates=None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (sequence_output (B,S,hidden), pooled_output (B,hidden)), computed in float64."""
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    input_ids, token_type_ids = np.asarray(input_ids), np.asarray(token_type_ids)
    mask = np.asarray(input_mask, dtype=np.float64)                      # (B, S)
    B, S = input_ids.shape
    H = config["num_attention_heads"]
    d = config["hidden_size"] // H
    eps = config.get("layer_norm_eps", 1e-12)
    act = config.get("hidden_act", "gelu")
    if gates is not None:
        gates = np.asarray(gates, dtype=np.float64)                      # (L, H), original head ids

    def dense(x, prefix):
        return x @ P[f"{prefix}.weight"].T + P[f"{prefix}.bias"]

    def ln(x, prefix):
        return layer_norm(x, P[f"{prefix}.gamma"], P[f"{prefix}.beta"], eps)

    x = (P["bert_embedding_lookup.embedding_table"][input_ids]
         + P[f"{EMB}.full_position_embedding.embedding_table"][np.arange(S)][None]
         + P[f"{EMB}.token_type_embedding.embedding_table"][token_type_ids])  # (B, S, hidden)
    x = ln(x, f"{EMB}.layernorm")
    score_bias = (1.0 - mask[:, None, None, :]) * -10000.0               # (B, 1, 1, S)

    for i in range(config["num_hidden_layers"]):
        p = _layer_prefix(i)
        heads = _heads_of(config, i)
        n = len(heads)
        if n == 0:  # all heads pruned: only the output bias is left
            attn = x + P[f"{p}.attention.output.dense.bias"]
        else:
            def split(t):  # (B, S, n*d) -> (B, n, S, d)
                return t.reshape(B, S, n, d).transpose(0, 2, 1, 3)
            q = split(dense(x, f"{p}.attention.attention.query_layer"))  # (B, n, S, d)
            k = split(dense(x, f"{p}.attention.attention.key_layer"))    # (B, n, S, d)
            v = split(dense(x, f"{p}.attention.attention.value_layer"))  # (B, n, S, d)
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + score_bias  # (B, n, S, S)
            context = softmax(scores, axis=-1) @ v                       # (B, n, S, d)
            if gates is not None:
                context = context * gates[i, heads][None, :, None, None]
            context = context.transpose(0, 2, 1, 3).reshape(B, S, n * d)  # (B, S, n*d)
            attn = dense(context, f"{p}.attention.output.dense") + x
        x = ln(attn, f"{p}.attention.output.layernorm")
        units = _units_of(config, i)
        if not units:  # all feed-forward units pruned: only the output bias is left
            x = ln(x + P[f"{p}.output.dense.bias"], f"{p}.output.layernorm")
            continue
        h = activation(dense(x, f"{p}.intermediate"), act)               # (B, S, units)
        if ffn_gates is not None:
            h = h * np.asarray(ffn_gates, np.float64)[i, units][None, None, :]
        x = ln(dense(h, f"{p}.output.dense") + x, f"{p}.output.layernorm")

    pooled = np.tanh(dense(x[:, 0], "dense"))                            # (B, hidden)
    return x, pooled

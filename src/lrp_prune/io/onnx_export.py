"""ONNX export of a (pruned) BERT: the graph written node by node from the converted weights.

MindSpore 2.10's ONNX exporter rejects BERT ("Exporting Erf operator is not yet supported": the
exact GELU). An erf built from supported ops at export time would change the graph MindSpore
runs; so this module builds the ONNX graph itself with the ``onnx`` package, from the model's
config and parameters, mirroring the model op for op (and ``tests/reference.py``): ONNX has
``Erf`` since opset 9, so the exact GELU is exported as it is.

What it handles, read from the parameter shapes (never from the gates: convert first):

* layer ``i`` keeping ``n_i`` heads (``n_i * d`` rows of Q/K/V, ``d`` from the *original* head
  count); a layer with no heads keeps only ``attention.output.dense.bias`` and its attention block
  is ``LayerNorm(x + b_O)``;
* layer ``i`` keeping ``w_i`` FFN units (rows of ``intermediate.weight``); a layer with none keeps
  only ``output.dense.bias`` and its FFN block is ``LayerNorm(x + b_out)``;
* a bare :class:`~lrp_prune.network.bert.BertModel` (outputs ``sequence_output`` (B, S, H) and
  ``pooled_output`` (B, H)) or a classifier (output ``logits`` (B, K); pooling ``pooler``, ``cls``
  or ``mean``).

Inputs are int32 ``input_ids``, ``token_type_ids``, ``input_mask``, each ``("batch", "sequence")``:
both dimensions are dynamic (any sequence length up to ``max_position_embeddings``). Opset 17 by
default (native ``LayerNormalization``); 13-16 build LayerNorm from ``ReduceMean``.

``onnx`` and ``onnxruntime`` are optional: ``pip install "lrp_prune[onnx]"``.

Example:
    >>> import os, tempfile
    >>> from lrp_prune import BertClassifier, BertConfig
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                  intermediate_size=37, seq_length=8, layer_heads=((0, 3), ()))
    >>> model = BertClassifier(cfg, False, num_labels=2)
    >>> path = export_onnx(model, os.path.join(tempfile.mkdtemp(), "m.onnx"))
    >>> onnx_layer_widths(path)  # (heads, FFN units) per layer
    [(2, 37), (0, 37)]
    >>> check_onnx(model, path) < 1e-4  # onnxruntime vs MindSpore on random padded inputs
    True
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from lrp_prune.errors import LRPPruneError, check_int, expect

if TYPE_CHECKING:  # the optional dependency is imported where it is used
    import onnx
    from mindspore import nn

__all__ = ["export_onnx", "check_onnx", "onnx_layer_widths", "build_onnx", "layer_widths", "DEFAULT_OPSET",
           "INPUT_NAMES"]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax over one axis, Unsqueeze/ReduceSum/Slice with axes as inputs
LAYER_NORM_OP_OPSET = 17  # first opset with a native LayerNormalization
MASK_VALUE = -10000.0  # the model's additive attention mask (network/bert.py)
POOLINGS = ("pooler", "cls", "mean")
TANH_GELUS = ("gelu_new", "gelu_tanh", "gelu_pytorch_tanh")

EMB = "bert_embedding_postprocessor"
INPUT_NAMES = ("input_ids", "token_type_ids", "input_mask")


def _onnx():
    """The ``onnx`` package, or a clear error naming the extra that installs it."""
    try:
        import onnx
    except ImportError:
        raise LRPPruneError('ONNX export: expected the onnx package, got none installed; '
                            'pip install "lrp_prune[onnx]"') from None
    return onnx


class _Graph:
    """Collects nodes and float32/int64 initializers under unique, readable names."""

    def __init__(self) -> None:
        self.onnx = _onnx()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._used: set[str] = set(INPUT_NAMES)

    def _unique(self, name: str) -> str:
        candidate, k = name, 1
        while candidate in self._used:
            candidate, k = f"{name}_{k}", k + 1
        self._used.add(candidate)
        return candidate

    def weight(self, name: str, value: np.ndarray) -> str:
        """Adds a float32 initializer and returns its tensor name."""
        name = self._unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def int64(self, name: str, values: list[int] | int) -> str:
        """Adds an int64 initializer (a list gives a 1-D tensor, an int a scalar)."""
        name = self._unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def scalar(self, name: str, value: float) -> str:
        """Adds a float32 scalar initializer."""
        return self.weight(name, np.asarray(value, np.float32))

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        """Adds one single-output node; returns the name of its output tensor."""
        out = self._unique(name)
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------

def _dense(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
    """y = x @ W.T + b for a weight stored as [out, in]; x is [..., in], y is [..., out]."""
    w_t = g.weight(f"{name}.weight_t", np.ascontiguousarray(weight.T))  # [in, out]
    b = g.weight(f"{name}.bias", bias)                                   # [out]
    return g.op("Add", [g.op("MatMul", [x, w_t], f"{name}/matmul"), b], f"{name}/out")


def _layer_norm(g: _Graph, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float,
                name: str, opset: int) -> str:
    """LayerNorm over the last axis with biased variance, as BERT.

    Uses the native LayerNormalization op from opset 17; below that, builds it from
    ReduceMean / Sub / Mul / Sqrt / Div (ReduceMean still takes ``axes`` as an attribute there).
    """
    gamma_name, beta_name = g.weight(f"{name}.gamma", gamma), g.weight(f"{name}.beta", beta)
    if opset >= LAYER_NORM_OP_OPSET:
        return g.op("LayerNormalization", [x, gamma_name, beta_name], f"{name}/out",
                    axis=-1, epsilon=float(eps))
    mean = g.op("ReduceMean", [x], f"{name}/mean", axes=[-1], keepdims=1)          # [..., 1]
    centered = g.op("Sub", [x, mean], f"{name}/centered")                          # [..., H]
    var = g.op("ReduceMean", [g.op("Mul", [centered, centered], f"{name}/sq")],
               f"{name}/var", axes=[-1], keepdims=1)                               # [..., 1]
    std = g.op("Sqrt", [g.op("Add", [var, g.scalar(f"{name}.eps", eps)], f"{name}/var_eps")],
               f"{name}/std")
    normed = g.op("Div", [centered, std], f"{name}/normed")
    return g.op("Add", [g.op("Mul", [normed, gamma_name], f"{name}/scaled"), beta_name],
                f"{name}/out")


def _activation(g: _Graph, x: str, act: str, name: str) -> str:
    """The FFN activation: exact erf GELU, tanh GELU or ReLU (as reference.activation)."""
    if act == "relu":
        return g.op("Relu", [x], f"{name}/relu")
    if act == "gelu":  # 0.5 * x * (1 + erf(x / sqrt(2)))
        inner = g.op("Erf", [g.op("Div", [x, g.scalar(f"{name}.sqrt2", math.sqrt(2.0))],
                                  f"{name}/x_over_sqrt2")], f"{name}/erf")
    elif act in TANH_GELUS:  # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        x_cubed = g.op("Mul", [g.op("Mul", [x, x], f"{name}/x2"), x], f"{name}/x3")
        poly = g.op("Add", [x, g.op("Mul", [x_cubed, g.scalar(f"{name}.c", 0.044715)],
                                    f"{name}/cx3")], f"{name}/poly")
        inner = g.op("Tanh", [g.op("Mul", [poly, g.scalar(f"{name}.k", math.sqrt(2.0 / math.pi))],
                                   f"{name}/kpoly")], f"{name}/tanh")
    else:
        raise LRPPruneError(f"hidden_act: expected 'gelu', 'relu' or one of {TANH_GELUS}, got {act!r}")
    one_plus = g.op("Add", [inner, g.scalar(f"{name}.one", 1.0)], f"{name}/one_plus")
    half_x = g.op("Mul", [x, g.scalar(f"{name}.half", 0.5)], f"{name}/half_x")
    return g.op("Mul", [half_x, one_plus], f"{name}/gelu")


def _embeddings(g: _Graph, p: Mapping[str, np.ndarray], pre: str, eps: float, opset: int) -> str:
    """Word + position + token-type embeddings, then LayerNorm. Returns [B, S, H]."""
    word_table = g.weight("word_embeddings", p[f"{pre}bert_embedding_lookup.embedding_table"])
    type_table = g.weight("token_type_embeddings",
                          p[f"{pre}{EMB}.token_type_embedding.embedding_table"])
    pos_table = g.weight("position_embeddings",
                         p[f"{pre}{EMB}.full_position_embedding.embedding_table"])   # [P, H]
    words = g.op("Gather", [word_table, "input_ids"], "emb/words", axis=0)           # [B, S, H]
    types = g.op("Gather", [type_table, "token_type_ids"], "emb/types", axis=0)      # [B, S, H]
    # position ids are arange(S): the first S rows of the position table
    shape = g.op("Shape", ["input_ids"], "emb/input_shape")                          # [2] = (B, S)
    seq_len = g.op("Slice", [shape, g.int64("one_1d", [1]), g.int64("two_1d", [2])],
                   "emb/seq_len")                                                    # [1] = (S,)
    positions = g.op("Slice", [pos_table, g.int64("zero_1d", [0]), seq_len,
                               g.int64("axis0_1d", [0])], "emb/positions")          # [S, H]
    total = g.op("Add", [g.op("Add", [words, positions], "emb/words_pos"), types], "emb/sum")
    return _layer_norm(g, total, p[f"{pre}{EMB}.layernorm.gamma"],
                       p[f"{pre}{EMB}.layernorm.beta"], eps, "emb/layernorm", opset)


def _attention_bias(g: _Graph) -> str:
    """(1 - input_mask) * -10000, shaped [B, 1, 1, S] to broadcast over heads and queries."""
    mask = g.op("Cast", ["input_mask"], "mask/float", to=g.onnx.TensorProto.FLOAT)          # [B, S]
    inverted = g.op("Sub", [g.scalar("mask.one", 1.0), mask], "mask/inverted")      # [B, S]
    bias = g.op("Mul", [inverted, g.scalar("mask.value", MASK_VALUE)], "mask/bias")  # [B, S]
    return g.op("Unsqueeze", [bias, g.int64("mask.axes", [1, 2])], "mask/bias_4d")   # [B,1,1,S]


def _attention(g: _Graph, x: str, score_bias: str, p: Mapping[str, np.ndarray], lp: str,
               n_heads: int, head_size: int, eps: float, name: str, opset: int) -> str:
    """Self-attention block with n_heads kept heads: LayerNorm(x + W_O(attention(x)) + b_O).

    With n_heads == 0 only the output bias is left and the block is LayerNorm(x + b_O).
    """
    out_bias = p[f"{lp}.attention.output.dense.bias"]
    gamma, beta = (p[f"{lp}.attention.output.layernorm.{k}"] for k in ("gamma", "beta"))
    if n_heads == 0:
        residual = g.op("Add", [x, g.weight(f"{name}.output.bias", out_bias)], f"{name}/residual")
        return _layer_norm(g, residual, gamma, beta, eps, f"{name}/layernorm", opset)

    split_shape = g.int64(f"{name}.split_shape", [0, 0, n_heads, head_size])  # 0 = copy B, S
    merge_shape = g.int64(f"{name}.merge_shape", [0, 0, n_heads * head_size])

    def project(proj: str, perm: list[int]) -> str:
        """[B, S, H] -> dense -> [B, S, n, d] -> transposed by perm."""
        w, b = (p[f"{lp}.attention.attention.{proj}_layer.{k}"] for k in ("weight", "bias"))
        flat = _dense(g, x, w, b, f"{name}/{proj}")                                  # [B, S, n*d]
        heads = g.op("Reshape", [flat, split_shape], f"{name}/{proj}_heads")         # [B, S, n, d]
        return g.op("Transpose", [heads], f"{name}/{proj}_t", perm=perm)

    q = project("query", [0, 2, 1, 3])                                               # [B, n, S, d]
    k_t = project("key", [0, 2, 3, 1])                                               # [B, n, d, S]
    v = project("value", [0, 2, 1, 3])                                               # [B, n, S, d]
    scores = g.op("MatMul", [q, k_t], f"{name}/scores_raw")                          # [B, n, S, S]
    scores = g.op("Div", [scores, g.scalar(f"{name}.sqrt_d", math.sqrt(head_size))],
                  f"{name}/scores_scaled")
    scores = g.op("Add", [scores, score_bias], f"{name}/scores")
    probs = g.op("Softmax", [scores], f"{name}/probs", axis=-1)                      # [B, n, S, S]
    context = g.op("MatMul", [probs, v], f"{name}/context")                          # [B, n, S, d]
    context = g.op("Transpose", [context], f"{name}/context_t", perm=[0, 2, 1, 3])   # [B, S, n, d]
    context = g.op("Reshape", [context, merge_shape], f"{name}/context_flat")        # [B, S, n*d]
    attn = _dense(g, context, p[f"{lp}.attention.output.dense.weight"], out_bias,
                  f"{name}/output")                                                  # [B, S, H]
    residual = g.op("Add", [attn, x], f"{name}/residual")
    return _layer_norm(g, residual, gamma, beta, eps, f"{name}/layernorm", opset)


def _feed_forward(g: _Graph, x: str, p: Mapping[str, np.ndarray], lp: str, act: str,
                  eps: float, name: str, opset: int) -> str:
    """FFN block: LayerNorm(x + W_out(act(W_in x + b_in)) + b_out).

    A layer without ``intermediate.weight`` (all units pruned) computes LayerNorm(x + b_out).
    """
    out_bias = p[f"{lp}.output.dense.bias"]
    gamma, beta = p[f"{lp}.output.layernorm.gamma"], p[f"{lp}.output.layernorm.beta"]
    if f"{lp}.intermediate.weight" not in p:
        residual = g.op("Add", [x, g.weight(f"{name}.output.bias", out_bias)], f"{name}/residual")
        return _layer_norm(g, residual, gamma, beta, eps, f"{name}/layernorm", opset)
    hidden = _dense(g, x, p[f"{lp}.intermediate.weight"], p[f"{lp}.intermediate.bias"],
                    f"{name}/intermediate")                                          # [B, S, w]
    hidden = _activation(g, hidden, act, f"{name}/act")
    out = _dense(g, hidden, p[f"{lp}.output.dense.weight"], out_bias, f"{name}/output")  # [B,S,H]
    residual = g.op("Add", [out, x], f"{name}/residual")
    return _layer_norm(g, residual, gamma, beta, eps, f"{name}/layernorm", opset)


def _first_token(g: _Graph, x: str, name: str) -> str:
    """x[:, 0] for x of shape [B, S, H]; returns [B, H]."""
    return g.op("Gather", [x, g.int64(f"{name}.index0", 0)], name, axis=1)


def _masked_mean(g: _Graph, x: str) -> str:
    """Mean of x [B, S, H] over tokens weighted by input_mask, denominator clamped to >= 1."""
    mask = g.op("Cast", ["input_mask"], "mean/mask", to=g.onnx.TensorProto.FLOAT)           # [B, S]
    mask = g.op("Unsqueeze", [mask, g.int64("mean.axis2", [2])], "mean/mask_3d")     # [B, S, 1]
    seq_axis = g.int64("mean.axis1", [1])
    total = g.op("ReduceSum", [g.op("Mul", [x, mask], "mean/masked"), seq_axis],
                 "mean/sum", keepdims=0)                                             # [B, H]
    count = g.op("ReduceSum", [mask, seq_axis], "mean/count", keepdims=0)            # [B, 1]
    count = g.op("Max", [count, g.scalar("mean.min_count", 1.0)], "mean/count_clamped")
    return g.op("Div", [total, count], "mean/features")                              # [B, H]


# --------------------------------------------------------------------------------------------
# shape inference from the parameters
# --------------------------------------------------------------------------------------------

def layer_widths(config: Mapping[str, Any], params: Mapping[str, np.ndarray],
                 backbone_prefix: str = "") -> list[tuple[int, int]]:
    """Per layer (kept heads n_i, kept FFN units w_i), read from the parameter shapes.

    Args:
        config: BERT config (hidden_size, num_attention_heads, num_hidden_layers).
        params: name -> array with MindSpore ModelZoo names.
        backbone_prefix: prefix of every backbone name, e.g. ``"bert."``.

    Returns:
        One ``(n_i, w_i)`` pair per layer.

    Raises:
        LRPPruneError: a required parameter is missing, or has a shape that does not fit the
            config or its siblings.
    """
    hidden = config["hidden_size"]
    d = hidden // config["num_attention_heads"]
    widths = []
    for i in range(config["num_hidden_layers"]):
        lp = f"{backbone_prefix}bert_encoder.layers.{i}"
        query = f"{lp}.attention.attention.query_layer.weight"
        n = 0
        if query in params:
            rows = params[query].shape[0]
            if rows % d or rows == 0:
                raise LRPPruneError(f"{query}: expected a positive multiple of the head size {d} rows, got {rows}")
            n = rows // d
            for name, shape in _attention_shapes(lp, n * d, hidden).items():
                _expect_shape(params, name, shape)
        _expect_shape(params, f"{lp}.attention.output.dense.bias", (hidden,))
        w = 0
        if f"{lp}.intermediate.weight" in params:
            w = params[f"{lp}.intermediate.weight"].shape[0]
            _expect_shape(params, f"{lp}.intermediate.weight", (w, hidden))
            _expect_shape(params, f"{lp}.intermediate.bias", (w,))
            _expect_shape(params, f"{lp}.output.dense.weight", (hidden, w))
        elif f"{lp}.output.dense.weight" in params:
            raise LRPPruneError(f"{lp}.output.dense.weight: expected it only with {lp}.intermediate.weight, "
                                "got it alone")
        _expect_shape(params, f"{lp}.output.dense.bias", (hidden,))
        widths.append((n, w))
    return widths


def _attention_shapes(lp: str, kept: int, hidden: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {f"{lp}.attention.output.dense.weight": (hidden, kept)}
    for proj in ("query_layer", "key_layer", "value_layer"):
        shapes[f"{lp}.attention.attention.{proj}.weight"] = (kept, hidden)
        shapes[f"{lp}.attention.attention.{proj}.bias"] = (kept,)
    return shapes


def _expect_shape(params: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]) -> None:
    expect(name in params, name, "a parameter of the model", "none")
    expect(tuple(params[name].shape) == tuple(shape), name, f"shape {tuple(shape)}", tuple(params[name].shape))


# ------------------------------------------------------------------------------------ the graph
def build_onnx(config: Mapping[str, Any], params: Mapping[str, np.ndarray], *,
               head: Mapping[str, Any] | None = None, backbone_prefix: str = "",
               head_prefix: str = "", opset: int = DEFAULT_OPSET) -> "onnx.ModelProto":
    """The ONNX model of a (possibly pruned) BERT or BERT classifier, from its config and parameters.

    Args:
        config: ``hidden_size``, ``num_attention_heads``, ``num_hidden_layers``,
            ``max_position_embeddings``, and optionally ``hidden_act`` (default ``"gelu"``) and
            ``layer_norm_eps`` (default 1e-12). Kept heads and FFN widths come from ``params``.
        params: name -> array with ModelZoo names (any float dtype; stored as float32).
        head: ``None`` for a bare BertModel, or ``{"num_labels": K, "pooling": ...}`` for a
            classifier with ``dense_1``.
        backbone_prefix: prefix of every backbone name (``"bert."``, ``"bert.bert."``).
        head_prefix: prefix of the classifier's ``dense_1.*``.
        opset: default-domain opset, at least 13.

    Raises:
        LRPPruneError: a missing parameter or a wrong shape, or a bad opset, head or hidden_act.
    """
    onnx = _onnx()
    helper = onnx.helper
    newest = onnx.defs.onnx_opset_version()
    opset = check_int(opset, "opset", minimum=MIN_OPSET, maximum=newest)
    hidden = config["hidden_size"]
    head_size = hidden // config["num_attention_heads"]
    eps = float(config.get("layer_norm_eps", 1e-12))
    act = config.get("hidden_act", "gelu")
    pre = backbone_prefix
    widths = layer_widths(config, params, pre)
    _expect_shape(params, f"{pre}{EMB}.full_position_embedding.embedding_table",
                  (config["max_position_embeddings"], hidden))

    g = _Graph()
    x = _embeddings(g, params, pre, eps, opset)                                      # (B, S, H)
    score_bias = _attention_bias(g)                                                  # (B, 1, 1, S)
    for i, (n_heads, _) in enumerate(widths):
        lp = f"{pre}bert_encoder.layers.{i}"
        x = _attention(g, x, score_bias, params, lp, n_heads, head_size, eps, f"layer{i}/attention", opset)
        x = _feed_forward(g, x, params, lp, act, eps, f"layer{i}/ffn", opset)
    sequence_output = x

    def pooler() -> str:
        first = _first_token(g, sequence_output, "pooler/first_token")               # (B, H)
        dense = _dense(g, first, params[f"{pre}dense.weight"], params[f"{pre}dense.bias"], "pooler/dense")
        return g.op("Tanh", [dense], "pooler/tanh")                                  # (B, H)

    batch_seq = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, onnx.TensorProto.INT32, batch_seq) for n in INPUT_NAMES]
    if head is None:
        outputs = {"sequence_output": (g.op("Identity", [sequence_output], "sequence_output"),
                                       ["batch", "sequence", hidden]),
                   "pooled_output": (g.op("Identity", [pooler()], "pooled_output"), ["batch", hidden])}
    else:
        pooling, num_labels = head.get("pooling", "pooler"), int(head["num_labels"])
        expect(pooling in POOLINGS, "pooling", f"one of {POOLINGS}", pooling)
        if pooling == "pooler":
            features = pooler()
        elif pooling == "cls":
            features = _first_token(g, sequence_output, "cls/features")
        else:
            features = _masked_mean(g, sequence_output)
        _expect_shape(params, f"{head_prefix}dense_1.weight", (num_labels, hidden))
        _expect_shape(params, f"{head_prefix}dense_1.bias", (num_labels,))
        logits = _dense(g, features, params[f"{head_prefix}dense_1.weight"], params[f"{head_prefix}dense_1.bias"],
                        "classifier")                                                # (B, K)
        outputs = {"logits": (g.op("Identity", [logits], "logits"), ["batch", num_labels])}
    output_infos = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)
                    for name, (_, shape) in outputs.items()]
    graph = helper.make_graph(g.nodes, "bert", inputs, output_infos, initializer=g.initializers)
    opset_ids = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opset_ids, producer_name="lrp_prune",
                             ir_version=helper.find_min_ir_version_for(opset_ids))


# ------------------------------------------------------------------------------------ from a model
def _describe(model: "nn.Cell", caller: str) -> tuple[dict, dict[str, np.ndarray], dict | None, str, str]:
    """(config, parameters, head, backbone prefix, head prefix) of a BertModel or a classifier."""
    from lrp_prune.network.bert import BertClassifier, BertClassifierWithLoss, BertModel
    from lrp_prune.network.gates import ModelGates

    if isinstance(model, BertClassifierWithLoss):
        classifier, head_prefix = model.bert, "bert."
    elif isinstance(model, BertClassifier):
        classifier, head_prefix = model, ""
    elif isinstance(model, BertModel):
        classifier, head_prefix = None, ""
    else:
        raise LRPPruneError(f"{caller}: expected a BertModel, BertClassifier or BertClassifierWithLoss, got "
                            f"{type(model).__name__} (for a model with a head of your own, export its BertModel: "
                            "the encoder outputs)")
    expect(not ModelGates(model, caller).is_gated, caller, "an ungated model (convert() the gated one first)",
           "a model with gates")
    params = {name: p.asnumpy() for name, p in model.parameters_and_names()}
    bert = classifier.bert if classifier is not None else model
    config = bert.config.to_dict()
    backbone_prefix = head_prefix + ("bert." if classifier is not None else "")
    head = None if classifier is None else {"num_labels": classifier.num_labels, "pooling": classifier.pooling}
    return config, params, head, backbone_prefix, head_prefix


def export_onnx(model: "nn.Cell", path: str | Path, *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` (a pruned or unpruned BertModel or classifier) as an ONNX file.

    The classifier's output is ``logits`` (B, K); a bare BertModel's are ``sequence_output``
    (B, S, H) and ``pooled_output`` (B, H). Batch and sequence dimensions are dynamic. The file
    is written under a temporary name and renamed: an earlier file is never half-overwritten.

    Args:
        model: a converted (ungated) ``BertModel``, ``BertClassifier`` or ``BertClassifierWithLoss``.
        path: the ``.onnx`` file (the suffix is added when missing).
        opset: ONNX default-domain opset, 13 or later (17: native LayerNormalization).

    Returns:
        The path written.

    Raises:
        LRPPruneError: onnx not installed, a gated or unsupported model, or a bad opset.
    """
    from lrp_prune.io.checkpoint import atomic_write_bytes, check_writable_dir

    onnx = _onnx()
    config, params, head, backbone_prefix, head_prefix = _describe(model, "export_onnx")
    graph = build_onnx(config, params, head=head, backbone_prefix=backbone_prefix, head_prefix=head_prefix,
                       opset=opset)
    widths = layer_widths(config, params, backbone_prefix)
    meta = {"lrp_prune.head_size": str(config["hidden_size"] // config["num_attention_heads"]),
            "lrp_prune.heads_per_layer": json.dumps([n for n, _ in widths]),
            "lrp_prune.ffn_units_per_layer": json.dumps([w for _, w in widths])}
    label_names = getattr(getattr(model, "bert", None) if head_prefix else model, "label_names", None)
    if head is not None and label_names:
        meta["lrp_prune.label_names"] = json.dumps(list(label_names))  # logits column k is class label_names[k]
    onnx.helper.set_model_props(graph, meta)
    onnx.checker.check_model(graph, full_check=True)
    path = Path(path)
    if path.suffix != ".onnx":
        path = path.with_name(path.name + ".onnx")
    check_writable_dir(path.parent, "export directory")
    atomic_write_bytes(path, graph.SerializeToString())
    logger.info("exported %s (opset %d, heads per layer %s) to %s", type(model).__name__, opset,
                [n for n, _ in widths], path)
    return path


def onnx_layer_widths(path: str | Path) -> list[tuple[int, int]]:
    """(heads, FFN units) per layer of a file :func:`export_onnx` wrote, read from its weights' shapes."""
    onnx = _onnx()
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    expect("lrp_prune.head_size" in meta, str(path), "an ONNX file written by export_onnx", "another file")
    head_size = int(meta["lrp_prune.head_size"])
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}  # MatMul weights are (in, out)
    widths, i = [], 0
    while f"layer{i}/ffn/layernorm.gamma" in shapes:
        query, units = shapes.get(f"layer{i}/attention/query.weight_t"), shapes.get(f"layer{i}/ffn/intermediate.weight_t")
        widths.append((0 if query is None else query[1] // head_size, 0 if units is None else units[1]))
        i += 1
    return widths


def check_onnx(model: "nn.Cell", path: str | Path, shapes: Sequence[tuple[int, int]] = ((1, 8), (2, 16)),
               seed: int = 0) -> float:
    """Largest ``|ONNX - MindSpore|`` over the model's outputs on random inputs of each (batch, seq) shape.

    Runs the file in onnxruntime (CPU) and ``model`` in MindSpore (eval mode) on the same random
    ids, token types and masks (some rows padded).

    Raises:
        LRPPruneError: onnxruntime not installed, or a sequence longer than the model allows.
    """
    from mindspore import Tensor

    try:
        import onnxruntime
    except ImportError:
        raise LRPPruneError('check_onnx: expected the onnxruntime package, got none installed; '
                            'pip install "lrp_prune[onnx]"') from None
    config, _, head, _, _ = _describe(model, "check_onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    model.set_train(False)
    worst = 0.0
    for batch, seq in shapes:
        check_int(seq, "sequence length", minimum=1, maximum=config["max_position_embeddings"])
        ids = rng.integers(1, config["vocab_size"], (batch, seq)).astype(np.int32)
        types = rng.integers(0, config["type_vocab_size"], (batch, seq)).astype(np.int32)
        lengths = rng.integers(1, seq + 1, batch)
        mask = (np.arange(seq)[None] < lengths[:, None]).astype(np.int32)  # (B, S): padded rows
        feeds = dict(zip(INPUT_NAMES, (ids, types, mask)))
        ours = session.run(None, feeds)
        theirs = model(Tensor(ids), Tensor(types), Tensor(mask))
        theirs = [theirs] if head is not None else [theirs[0], theirs[1]]
        for a, b in zip(ours, theirs):
            worst = max(worst, float(np.abs(a - b.asnumpy()).max()))
    return worst

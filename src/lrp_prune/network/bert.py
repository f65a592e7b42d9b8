"""BERT in MindSpore, with ModelZoo parameter names and per-layer head sets.

The parameter tree is that of MindSpore ModelZoo's ``bert_model.py`` so its
checkpoints load with no key map::

    bert_embedding_lookup.embedding_table
    bert_embedding_postprocessor.{token_type_embedding,full_position_embedding}.embedding_table
    bert_embedding_postprocessor.layernorm.{gamma,beta}
    bert_encoder.layers.{i}.attention.attention.{query_layer,key_layer,value_layer}.{weight,bias}
    bert_encoder.layers.{i}.attention.output.dense.{weight,bias}
    bert_encoder.layers.{i}.attention.output.layernorm.{gamma,beta}
    bert_encoder.layers.{i}.intermediate.{weight,bias}
    bert_encoder.layers.{i}.output.dense.{weight,bias}
    bert_encoder.layers.{i}.output.layernorm.{gamma,beta}
    dense.{weight,bias}                      # pooler (tanh)

Each layer may keep a different subset of heads (``BertConfig.layer_heads``) and of
feed-forward units (``BertConfig.layer_units``); a layer with no heads skips attention
and its block computes ``LayerNorm(x + b_O)``, a layer with no units skips its
feed-forward block the same way (``LayerNorm(x + b_out)``). Gates (:mod:`lrp_prune.network.hard_concrete`) are installed
by the pruner through :class:`~lrp_prune.network.gates.ModelGates`, not here: a layer
only knows how to run with or without one.

Example:
    >>> import numpy as np, mindspore as ms
    >>> from lrp_prune import BertConfig, BertModel
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> model = BertModel(cfg, is_training=False)
    >>> ids = ms.Tensor(np.ones((2, 8), np.int32))
    >>> seq, pooled, table = model(ids, ms.ops.zeros_like(ids), ms.ops.ones_like(ids))
    >>> seq.shape, pooled.shape, table.shape
    ((2, 8, 32), (2, 32), (50, 32))
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
from typing import Any, Iterator, Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import TruncatedNormal, initializer

from lrp_prune.errors import LRPPruneError, check_choice, check_fraction, check_int, expect
from lrp_prune.network.compat import drop_compiled_graphs
from lrp_prune.network.config import BertConfig
from lrp_prune.network.slicing import (LayerPlan, normalise_heads_to_prune, plan_layer, plan_units, slice_columns,
                                      slice_rows)

__all__ = [
    "BertModel",
    "Dropout",
    "check_inputs",
    "random_init_off",
    "BertClassifier",
    "BertClassifierWithLoss",
    "POOLINGS",
    "find_bert",
    "the_bert",
    "refresh_cell",
    "prune_heads",
    "prune_ffn",
    "BertIntermediate",
]

POOLINGS = ("pooler", "cls", "mean")
_MS_DTYPES = {"float32": ms.float32, "float16": ms.float16, "bfloat16": ms.bfloat16}
_MASK_ADDER = -10000.0  # ModelZoo's additive mask value


def _ms_dtype(name: str) -> ms.Type:
    return _MS_DTYPES[name]


class Activation(nn.Cell):
    """GELU (exact erf or tanh form) or ReLU, chosen by the config's ``hidden_act``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.approximate = "tanh" if name in ("gelu_new", "gelu_tanh", "gelu_pytorch_tanh") else "none"

    def construct(self, x: Tensor) -> Tensor:
        if self.name == "relu":
            return ops.relu(x)
        return ops.gelu(x, approximate=self.approximate)


_INIT = threading.local()


@contextlib.contextmanager
def random_init_off() -> Iterator[None]:
    """Build cells with zero-filled weights instead of the truncated-normal init.

    For models whose every value is loaded right after (``convert()`` building the pruned
    model from sliced weights): the random init of BERT-base costs seconds.
    """
    previous = getattr(_INIT, "off", False)
    _INIT.off = True
    try:
        yield
    finally:
        _INIT.off = previous


def _weight_init(config: BertConfig):
    return "zeros" if getattr(_INIT, "off", False) else TruncatedNormal(config.initializer_range)


def make_dense(in_features: int, out_features: int, config: BertConfig, *,
               weight: np.ndarray | None = None, bias: np.ndarray | None = None,
               activation: nn.Cell | None = None) -> nn.Dense:
    """The one way this library builds a Dense layer (init, dtype, compute type).

    With ``weight``/``bias`` the layer takes those values (``weight`` is ``[out, in]``).
    """
    dtype = _ms_dtype(config.dtype)
    if weight is None:
        weight_init = _weight_init(config)
    else:
        expect(weight.shape == (out_features, in_features), "dense weight",
               f"shape {(out_features, in_features)}", weight.shape)
        weight_init = Tensor(weight, dtype)
    bias_init = "zeros" if bias is None else Tensor(bias, dtype)
    dense = nn.Dense(in_features, out_features, weight_init=weight_init, bias_init=bias_init,
                     activation=activation, dtype=dtype)
    if config.compute_type != "float32":
        dense.to_float(_ms_dtype(config.compute_type))
    return dense


_PRECISION_FLAGS = ("fp16", "fp32", "bf16")


def dense_like(old: nn.Dense, weight: np.ndarray, bias: np.ndarray | None) -> nn.Dense:
    """A Dense with new values and everything else of ``old``: dtype, bias presence, compute type."""
    dtype = old.weight.dtype
    dense = nn.Dense(weight.shape[1], weight.shape[0], weight_init=Tensor(weight, dtype),
                     bias_init=Tensor(bias, dtype) if old.has_bias else "zeros",
                     has_bias=old.has_bias, activation=old.activation, dtype=dtype)
    flags = {k: v for k, v in old.get_flags().items() if k in _PRECISION_FLAGS}
    if flags:
        dense.add_flags_recursive(**flags)
    return dense


class Dropout(nn.Cell):
    """Inverted dropout with drop probability ``p``, reproducible under MindSpore's global seed.

    MindSpore's CPU ``Dropout`` kernel draws from one generator shared by the threads of
    ``ParallelLaunchAutoSearch``, so equal seeds give different masks after a few calls;
    ``ops.rand`` (UniformReal, also used by the gates) gives the same stream every run.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = check_fraction(p, "dropout p", closed_low=True, expected="a drop probability in [0, 1)")
        self.scale = 1.0 / (1.0 - self.p)

    def construct(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = (ops.rand(x.shape, dtype=ms.float32) >= self.p).astype(x.dtype)
        return x * keep * self.scale


def _host_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "asnumpy"):
        return value.asnumpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        raise LRPPruneError(f"{name}: expected an integer array or Tensor, got {type(value).__name__}") from None


def check_inputs(config: BertConfig | nn.Cell, input_ids, token_type_ids, input_mask, label_ids=None,
                 num_labels: int | None = None) -> None:
    """Check one batch (numpy arrays or Tensors) against ``config`` before it reaches MindSpore.

    The library's models run this on every top-level call (see :class:`BertModel`); call it
    yourself where the library cannot: before a step of your own compiled graph (a
    ``TrainOneStepCell`` around a BertModel runs the graph without a host-side check). An
    out-of-range id is otherwise a RuntimeError deep in MindSpore's Gather kernel that leaves
    the compiled graph failing on every later call (GRAPH_MODE), or a crash of the process
    (PYNATIVE_MODE); a negative id is silently read from the end of the table.

    Args:
        config: the model's config, or the model itself (a BertModel, a classifier, or any Cell
            holding one BertModel; its ``num_labels``, if it has one, checks the labels).
        input_ids, token_type_ids, input_mask: ``(batch, seq_length)`` integer arrays.
        label_ids: optional ``(batch,)`` integer class ids, checked against ``num_labels``.
        num_labels: the number of classes (with ``label_ids``).

    Raises:
        LRPPruneError: naming the argument, what was expected and what was received:
            not 2-D integer arrays of one shape, an empty batch or sequence, more tokens than
            ``max_position_embeddings``, ids outside ``[0, vocab_size)``, token types outside
            ``[0, type_vocab_size)``, a mask with values other than 0 and 1, labels of another
            shape or outside ``[0, num_labels)``.

    Example:
        >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        ...                  intermediate_size=37, seq_length=8)
        >>> ids = np.ones((2, 8), np.int32)
        >>> check_inputs(cfg, ids, ids * 0, ids)
        >>> try:
        ...     check_inputs(cfg, ids * 50, ids * 0, ids)
        ... except LRPPruneError as err:
        ...     print(err)
        input_ids: expected ids in [0, 50) (vocab_size 50), got [50]
    """
    if isinstance(config, nn.Cell):
        model = config
        config = the_bert(model, "check_inputs").config
        if num_labels is None:
            holder = model.bert if isinstance(model, BertClassifierWithLoss) else model
            num_labels = getattr(holder, "num_labels", None)
    expect(isinstance(config, BertConfig), "check_inputs", "a BertConfig or a model holding a BertModel",
           type(config).__name__)
    arrays = {}
    for name, value in (("input_ids", input_ids), ("token_type_ids", token_type_ids), ("input_mask", input_mask)):
        array = _host_array(value, name)
        expect(array.ndim == 2 and np.issubdtype(array.dtype, np.integer), name,
               "a 2-D integer array (batch, seq_length)", f"{array.dtype} array of shape {array.shape}")
        arrays[name] = array
    shape = arrays["input_ids"].shape
    for name in ("token_type_ids", "input_mask"):
        expect(arrays[name].shape == shape, name, f"shape {shape}, as input_ids", arrays[name].shape)
    expect(shape[0] >= 1 and shape[1] >= 1, "input_ids", "at least one row of at least one token", shape)
    expect(shape[1] <= config.max_position_embeddings, "input_ids",
           f"at most max_position_embeddings ({config.max_position_embeddings}) tokens per row", shape[1])
    for name, limit, field in (("input_ids", config.vocab_size, "vocab_size"),
                               ("token_type_ids", config.type_vocab_size, "type_vocab_size")):
        values = arrays[name]
        if values.min() < 0 or values.max() >= limit:
            bad = sorted(set(values[(values < 0) | (values >= limit)].tolist()))
            expect(False, name, f"ids in [0, {limit}) ({field} {limit})", bad[:5])
    mask = arrays["input_mask"]
    if mask.min() < 0 or mask.max() > 1:
        bad = sorted(set(mask[(mask != 0) & (mask != 1)].tolist()))
        expect(False, "input_mask", "only 0 and 1", bad[:5])
    if label_ids is not None:
        labels = _host_array(label_ids, "label_ids")
        expect(labels.shape == (shape[0],) and np.issubdtype(labels.dtype, np.integer), "label_ids",
               f"a 1-D integer array of {shape[0]} class ids (one per row)",
               f"{labels.dtype} array of shape {labels.shape}")
        if num_labels is not None and (labels.min() < 0 or labels.max() >= num_labels):
            bad = sorted(set(labels[(labels < 0) | (labels >= num_labels)].tolist()))
            expect(False, "label_ids", f"class ids in [0, {num_labels})", bad[:5])


_CALLS = threading.local()


class _HostChecked:
    """Mixin of the library's top-level cells: check the inputs on the host, then run the cell.

    Only the outermost call checks: nested cells are not re-checked (in PYNATIVE_MODE they go
    through ``__call__`` too; inside a compiled graph MindSpore does not call it at all). Set
    ``validate_inputs = False`` on an instance to skip the check in a trusted loop.
    """

    validate_inputs = True

    def __call__(self, *args, **kwargs):
        depth = getattr(_CALLS, "depth", 0)
        if depth == 0 and self.validate_inputs:
            try:
                bound = inspect.signature(self.construct).bind(*args, **kwargs)
            except TypeError as err:
                raise LRPPruneError(f"{type(self).__name__}: expected the arguments of construct"
                                    f"{inspect.signature(self.construct)}, got {err}") from None
            self.check_call(**bound.arguments)
        _CALLS.depth = depth + 1
        try:
            return super().__call__(*args, **kwargs)
        finally:
            _CALLS.depth = depth

    def check_call(self, **arguments) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


class EmbeddingTable(nn.Cell):
    """A lookup table with one parameter named ``embedding_table`` ([rows, width])."""

    def __init__(self, rows: int, width: int, config: BertConfig, use_one_hot: bool = False) -> None:
        super().__init__()
        self.rows = rows
        self.use_one_hot = use_one_hot
        self.embedding_table = Parameter(
            initializer(_weight_init(config), [rows, width], _ms_dtype(config.dtype)), name="embedding_table")

    def construct(self, ids: Tensor) -> Tensor:
        if self.use_one_hot:
            one_hot = ops.one_hot(ids, self.rows, Tensor(1.0, ms.float32), Tensor(0.0, ms.float32))
            return ops.matmul(one_hot.astype(self.embedding_table.dtype), self.embedding_table)
        return ops.gather(self.embedding_table, ids, 0)  # (B, S, width)


class EmbeddingPostprocessor(nn.Cell):
    """Adds token-type and position embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig, dropout_prob: float, use_one_hot: bool) -> None:
        super().__init__()
        h = config.hidden_size
        self.token_type_embedding = EmbeddingTable(config.type_vocab_size, h, config, use_one_hot)
        self.full_position_embedding = EmbeddingTable(config.max_position_embeddings, h, config)
        self.layernorm = nn.LayerNorm((h,), epsilon=config.layer_norm_eps)
        self.dropout = Dropout(p=dropout_prob)

    def construct(self, token_type_ids: Tensor, word_embeddings: Tensor) -> Tensor:
        seq_length = word_embeddings.shape[1]
        positions = ops.arange(seq_length, dtype=ms.int32).reshape(1, seq_length)  # (1, S)
        x = (word_embeddings + self.token_type_embedding(token_type_ids)
             + self.full_position_embedding(positions))
        return self.dropout(self.layernorm(x))


class _DtypeHolder:
    """Stands in for a config where only the parameter dtype matters."""

    def __init__(self, dtype: ms.Type) -> None:
        self.dtype = dtype


class BiasOnly(nn.Cell):
    """The output projection of a layer with no heads: only its bias remains."""

    def __init__(self, bias: np.ndarray, config: BertConfig | _DtypeHolder) -> None:
        super().__init__()
        dtype = config.dtype if isinstance(config, _DtypeHolder) else _ms_dtype(config.dtype)
        self.bias = Parameter(Tensor(bias, dtype), name="bias")

    def construct(self, x: Tensor) -> Tensor:
        return x + self.bias


class BertOutput(nn.Cell):
    """``LayerNorm(residual + dropout(dense(x)))``."""

    def __init__(self, in_features: int, config: BertConfig, dropout_prob: float) -> None:
        super().__init__()
        h = config.hidden_size
        self.dense = make_dense(in_features, h, config)
        self.layernorm = nn.LayerNorm((h,), epsilon=config.layer_norm_eps)
        self.dropout = Dropout(p=dropout_prob)

    def construct(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.layernorm(residual + self.dropout(self.dense(x)).astype(residual.dtype))


class BertAttention(nn.Cell):
    """Multi-head scaled dot-product attention over the heads a layer keeps.

    Attributes:
        heads: original indices of the heads this layer has (may be empty).
        gate: ``None``, or a :class:`~lrp_prune.gate.HardConcreteGate` installed by
            the pruner; it scales each head's context before the output projection.
    """

    def __init__(self, config: BertConfig, heads: Sequence[int], dropout_prob: float) -> None:
        super().__init__()
        self.heads = tuple(heads)
        self.num_heads = len(self.heads)
        self.head_size = config.head_size
        self.width = self.num_heads * self.head_size
        self.scale = 1.0 / math.sqrt(self.head_size)
        self.gate = None
        if self.num_heads:
            h = config.hidden_size
            self.query_layer = make_dense(h, self.width, config)
            self.key_layer = make_dense(h, self.width, config)
            self.value_layer = make_dense(h, self.width, config)
        self.softmax = nn.Softmax(axis=-1)
        self.dropout = Dropout(p=dropout_prob)

    @property
    def units(self) -> tuple[int, ...]:
        """The gated units of this cell (its heads), for :class:`~lrp_prune.network.gates.ModelGates`."""
        return self.heads

    def split_heads(self, x: Tensor) -> Tensor:
        b, s, _ = x.shape
        return x.reshape(b, s, self.num_heads, self.head_size).transpose(0, 2, 1, 3)  # (B, n, S, d)

    def construct(self, x: Tensor, mask_adder: Tensor) -> Tensor:
        b, s, _ = x.shape
        q = self.split_heads(self.query_layer(x))  # (B, n, S, d)
        k = self.split_heads(self.key_layer(x))  # (B, n, S, d)
        v = self.split_heads(self.value_layer(x))  # (B, n, S, d)
        scores = ops.matmul(q, k.swapaxes(-1, -2)) * self.scale  # (B, n, S, S)
        probs = self.dropout(self.softmax(scores.astype(mask_adder.dtype) + mask_adder))  # softmax in fp32
        context = ops.matmul(probs.astype(v.dtype), v)  # (B, n, S, d)
        if self.gate is not None:
            context = context * self.gate().reshape(-1, self.num_heads, 1, 1).astype(context.dtype)  # (1 or B, n, 1, 1)
        return context.transpose(0, 2, 1, 3).reshape(b, s, self.width)  # (B, S, n*d)


class BertSelfAttention(nn.Cell):
    """Attention plus its output projection, residual and LayerNorm."""

    def __init__(self, config: BertConfig, heads: Sequence[int], hidden_dropout: float,
                 attention_dropout: float) -> None:
        super().__init__()
        self.attention = BertAttention(config, heads, attention_dropout)
        self.output = BertOutput(max(1, self.attention.width), config, hidden_dropout)
        if not self.attention.num_heads:
            self.output.dense = BiasOnly(np.zeros(config.hidden_size, np.float32), config)

    def prune(self, plan: LayerPlan, scale: np.ndarray | None = None) -> None:
        """Keep only the heads of ``plan``; ``scale`` (one per kept head) is folded into W_O.

        Every derived size (``heads``, ``num_heads``, ``width``) changes with the
        weights. A layer left with no heads drops Q/K/V and keeps only ``b_O``.
        """
        attention = self.attention
        if attention.gate is not None:
            raise LRPPruneError("prune: expected a layer without a gate (use LRPHeadPruner.convert() "
                                "on gated models), got a gated layer")
        if not attention.num_heads or (plan.kept_positions == tuple(range(attention.num_heads))
                                       and scale is None):
            return
        dense = self.output.dense
        bias = dense.bias.asnumpy() if dense.has_bias else np.zeros(dense.out_channels, np.float32)
        if not plan.kept_heads:
            for name in ("query_layer", "key_layer", "value_layer"):
                delattr(attention, name)
            self.output.dense = BiasOnly(bias, _DtypeHolder(dense.weight.dtype))
        else:
            for name in ("query_layer", "key_layer", "value_layer"):
                old = getattr(attention, name)
                new_bias = slice_rows(old.bias.asnumpy(), plan.index) if old.has_bias else None
                setattr(attention, name, dense_like(old, slice_rows(old.weight.asnumpy(), plan.index), new_bias))
            column_scale = None if scale is None else np.repeat(np.asarray(scale, np.float64), attention.head_size)
            self.output.dense = dense_like(
                dense, slice_columns(dense.weight.asnumpy(), plan.index, column_scale),
                bias if dense.has_bias else None)
        attention.heads = plan.kept_heads
        attention.num_heads = len(plan.kept_heads)
        attention.width = attention.num_heads * attention.head_size

    def construct(self, x: Tensor, mask_adder: Tensor) -> Tensor:
        if self.attention.num_heads == 0:
            return self.output.layernorm(self.output.dense(x).astype(x.dtype))  # LayerNorm(x + b_O)
        return self.output(self.attention(x, mask_adder), x)


class BertIntermediate(nn.Dense):
    """The feed-forward block's first projection and activation over the units a layer keeps.

    An ``nn.Dense`` (so ModelZoo's ``intermediate.{weight,bias}`` names and every Dense tool
    apply) whose output may be scaled per unit by a gate after the activation.

    Attributes:
        units: original indices of the units (rows of ``weight``) this layer has.
        gate: ``None``, or a gate installed by a pruner (one value per unit, or per example and unit).
    """

    def __init__(self, in_features: int, units: Sequence[int], config: BertConfig, *,
                 weight: np.ndarray | None = None, bias: np.ndarray | None = None) -> None:
        units = tuple(units)
        dtype = _ms_dtype(config.dtype)
        weight_init = _weight_init(config) if weight is None else Tensor(weight, dtype)
        bias_init = "zeros" if bias is None else Tensor(bias, dtype)
        super().__init__(in_features, len(units), weight_init=weight_init, bias_init=bias_init,
                         activation=Activation(config.hidden_act), dtype=dtype)
        if config.compute_type != "float32":
            self.to_float(_ms_dtype(config.compute_type))
        self.config = config  # dtype, compute type and activation of a sliced copy (see prune_ffn)
        self.units = units
        self.num_units = len(units)
        self.gate = None

    def construct(self, x: Tensor) -> Tensor:
        b, s, h = x.shape
        y = self.bias_add(self.matmul(x.reshape(b * s, h), self.weight), self.bias)  # (B*S, n)
        y = self.activation(y).reshape(b, s, self.num_units)  # (B, S, n)
        if self.gate is not None:
            y = y * self.gate().reshape(-1, 1, self.num_units).astype(y.dtype)  # (1 or B, 1, n)
        return y


class NoUnits(nn.Cell):
    """Stands in for ``intermediate`` in a layer whose feed-forward units were all removed."""

    units: tuple[int, ...] = ()
    num_units = 0
    gate = None


class BertEncoderCell(nn.Cell):
    """One Transformer layer: self-attention block, then feed-forward block."""

    def __init__(self, config: BertConfig, heads: Sequence[int], hidden_dropout: float,
                 attention_dropout: float, units: Sequence[int] | None = None) -> None:
        super().__init__()
        units = tuple(range(config.intermediate_size)) if units is None else tuple(units)
        self.attention = BertSelfAttention(config, heads, hidden_dropout, attention_dropout)
        self.output = BertOutput(max(1, len(units)), config, hidden_dropout)
        if units:
            self.intermediate = BertIntermediate(config.hidden_size, units, config)
        else:
            self.intermediate = NoUnits()
            self.output.dense = BiasOnly(np.zeros(config.hidden_size, np.float32), config)

    def prune_ffn(self, plan: LayerPlan, scale: np.ndarray | None = None) -> None:
        """Keep only the feed-forward units of ``plan``; ``scale`` (one per kept unit) is folded into
        the columns of ``output.dense`` that consume them. A layer left with no units keeps only
        the output bias (its block computes ``LayerNorm(x + b_out)``)."""
        inter = self.intermediate
        if inter.gate is not None:
            raise LRPPruneError("prune: expected a layer without a gate (use LRPHeadPruner.convert() "
                                "on gated models), got a gated feed-forward block")
        if not inter.num_units or (plan.kept_positions == tuple(range(inter.num_units)) and scale is None):
            return
        dense = self.output.dense
        bias = dense.bias.asnumpy() if dense.has_bias else np.zeros(dense.out_channels, np.float32)
        if not plan.kept_units:
            self.intermediate = NoUnits()
            self.output.dense = BiasOnly(bias, _DtypeHolder(dense.weight.dtype))
            return
        self.intermediate = BertIntermediate(
            inter.in_channels, plan.kept_units, inter.config, weight=slice_rows(inter.weight.asnumpy(), plan.index),
            bias=slice_rows(inter.bias.asnumpy(), plan.index))
        self.output.dense = dense_like(dense, slice_columns(dense.weight.asnumpy(), plan.index, scale),
                                       bias if dense.has_bias else None)

    def construct(self, x: Tensor, mask_adder: Tensor) -> Tensor:
        x = self.attention(x, mask_adder)
        if self.intermediate.num_units == 0:
            return self.output.layernorm(self.output.dense(x).astype(x.dtype))  # LayerNorm(x + b_out)
        return self.output(self.intermediate(x), x)  # the FFN's dense layers may compute in fp16


class BertTransformer(nn.Cell):
    """The stack of encoder layers (``bert_encoder``)."""

    def __init__(self, config: BertConfig, hidden_dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.layers = nn.CellList([
            BertEncoderCell(config, config.heads_of(i), hidden_dropout, attention_dropout, config.units_of(i))
            for i in range(config.num_hidden_layers)])

    def construct(self, x: Tensor, mask_adder: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask_adder)
        return x


class BertModel(_HostChecked, nn.Cell):
    """Bidirectional Encoder Representations from Transformers.

    Args:
        config: the model's :class:`BertConfig` (``layer_heads`` sets heads per layer).
        is_training: ModelZoo semantics: when ``False`` every dropout probability is 0.
        use_one_hot_embeddings: look words up by one-hot matmul instead of gather.

    ``construct(input_ids, token_type_ids, input_mask)`` takes int32 ``(B, S)``
    tensors and returns ``(sequence_output (B, S, H), pooled_output (B, H),
    embedding_table (V, H))``. After :meth:`LRPHeadPruner.apply` it returns a
    4th output, ``total_reg`` (``l0_penalty * L_C``).

    Every top-level call checks its inputs on the host first (:func:`check_inputs`; about
    0.01% of a MiniLM forward at batch 32): a bad batch is an :class:`LRPPruneError` naming
    the argument, and the cell keeps working. ``model.validate_inputs = False`` skips it.
    """

    def __init__(self, config: BertConfig, is_training: bool, use_one_hot_embeddings: bool = False) -> None:
        super().__init__()
        expect(isinstance(config, BertConfig), "config", "a BertConfig", type(config).__name__)
        self.config = config
        self.is_training = bool(is_training)
        hidden_dropout = config.hidden_dropout_prob if is_training else 0.0
        attention_dropout = config.attention_probs_dropout_prob if is_training else 0.0
        self.bert_embedding_lookup = EmbeddingTable(config.vocab_size, config.hidden_size, config,
                                                    use_one_hot_embeddings)
        self.bert_embedding_postprocessor = EmbeddingPostprocessor(config, hidden_dropout,
                                                                   use_one_hot_embeddings)
        self.bert_encoder = BertTransformer(config, hidden_dropout, attention_dropout)
        self.dense = make_dense(config.hidden_size, config.hidden_size, config, activation=nn.Tanh())
        self.dense.weight.set_data(initializer(_weight_init(config), self.dense.weight.shape,
                                               self.dense.weight.dtype))
        self.is_gated = False  # set by LRPHeadPruner.apply()
        self.return_reg = False  # a gated bare BertModel returns total_reg as a 4th output
        self.budget = None  # a HeadBudget when pruning to a target number of heads

    def check_call(self, input_ids, token_type_ids, input_mask) -> None:
        """The host-side check of one call (see :func:`check_inputs`)."""
        check_inputs(self.config, input_ids, token_type_ids, input_mask)

    def embed(self, input_ids: Tensor, token_type_ids: Tensor, input_mask: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's inputs: embeddings ``(B, S, H)`` and the additive attention mask ``(B, 1, 1, S)``.

        Layer-by-layer tools (mask tuning) call it, then ``bert_encoder.layers[i](x, mask_adder)``.
        """
        words = self.bert_embedding_lookup(input_ids)  # (B, S, H)
        x = self.bert_embedding_postprocessor(token_type_ids, words)  # (B, S, H)
        b, s = input_mask.shape
        mask_adder = (1.0 - input_mask.astype(x.dtype)).reshape(b, 1, 1, s) * _MASK_ADDER  # (B, 1, 1, S)
        return x, mask_adder

    def construct(self, input_ids: Tensor, token_type_ids: Tensor, input_mask: Tensor):
        x, mask_adder = self.embed(input_ids, token_type_ids, input_mask)  # (B, S, H), (B, 1, 1, S)
        sequence_output = self.bert_encoder(x, mask_adder)  # (B, S, H)
        pooled_output = self.dense(sequence_output[:, 0])  # (B, H)
        if self.return_reg:
            return sequence_output, pooled_output, self.bert_embedding_lookup.embedding_table, self.total_reg()
        return sequence_output, pooled_output, self.bert_embedding_lookup.embedding_table

    def total_reg(self) -> Tensor:
        """``l0_penalty * cost * L_C`` summed over every gate (0 when not gated), plus the budget's term.

        Call it from your own loss cell when the gated BertModel sits inside a
        model with a head: ``loss = task_loss + self.net.bert.total_reg()``.
        """
        reg = Tensor(0.0, ms.float32)
        measured = Tensor(0.0, ms.float32)  # what the budget counts: open heads, or open compute
        counts_cost = False
        counts_latency = False
        if self.budget is not None:
            counts_cost = self.budget.counts_cost
            counts_latency = self.budget.counts_latency
        i = 0
        for layer in self.bert_encoder.layers:
            head_gate = layer.attention.attention.gate
            if head_gate is not None:
                reg = reg + head_gate.penalty()
                if counts_latency:  # the table's slope per head of this layer, at the current widths
                    measured = measured + self.budget.slopes[0, i] * head_gate.expected_open()
                elif counts_cost:
                    measured = measured + head_gate.expected_cost()
                else:
                    measured = measured + head_gate.expected_open()
            ffn_gate = layer.intermediate.gate
            if ffn_gate is not None:
                reg = reg + ffn_gate.penalty()
                if counts_latency:
                    measured = measured + self.budget.slopes[1, i] * ffn_gate.expected_open()
                elif counts_cost:
                    measured = measured + ffn_gate.expected_cost()
            i += 1
        if self.budget is not None:
            reg = reg + self.budget(measured)
        return reg

    def gate_cells(self) -> list:
        """``[(layer_index, BertAttention)]`` for every layer with a head gate
        (see :class:`~lrp_prune.network.gates.ModelGates` for everything else about gates)."""
        from lrp_prune.network.gates import HEADS, ModelGates

        return [(i, host) for _, i, host in ModelGates(self).gated(HEADS)]

    def get_gate_values(self) -> np.ndarray:
        """Deterministic gates ``[num_layers, num_attention_heads]``; missing heads are 0.

        An ungated model reports 1 for every head it has.
        """
        from lrp_prune.network.gates import ModelGates

        return ModelGates(self).values()


class BertClassifier(_HostChecked, nn.Cell):
    """Sentence(-pair) classifier: a BertModel, a pooling, dropout and ``dense_1``.

    The ModelZoo ``BertCLSModel``; its fine-tuning checkpoints (saved from
    :class:`BertClassifierWithLoss`) carry ``bert.bert.*`` and ``bert.dense_1.*``.

    Args:
        config: the backbone's config.
        is_training: ModelZoo semantics (dropout off when ``False``).
        num_labels: classes.
        dropout_prob: drop probability before ``dense_1`` (a *drop* probability).
        pooling: ``"pooler"`` (tanh pooler on [CLS]), ``"cls"`` ([CLS] vector) or
            ``"mean"`` (masked mean of the tokens; use it for sentence-transformers
            models such as all-MiniLM-L6-v2, whose pooler was never trained).
        label_names: optional class names by id (saved with a pruned model, shown in reports).

    ``construct(input_ids, token_type_ids, input_mask)`` returns logits ``(B, num_labels)``.

    Example:
        >>> from lrp_prune import HeadPruningFactory
        >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        ...                  intermediate_size=37, seq_length=8)
        >>> clf = BertClassifier(cfg, is_training=True, num_labels=2, pooling="mean")
        >>> gated = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
        ...                                        "config": {"l0_penalty": 0.01}}).apply(clf)
        >>> gated.get_gate_values().shape   # the gates of the BertModel inside, [layers, heads]
        (2, 4)
    """

    def __init__(self, config: BertConfig, is_training: bool, num_labels: int = 3,
                 dropout_prob: float = 0.1, pooling: str = "pooler",
                 use_one_hot_embeddings: bool = False, label_names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.num_labels = check_int(num_labels, "num_labels", minimum=2)
        if label_names is not None:
            expect(len(label_names) == self.num_labels, "label_names", f"{self.num_labels} class names",
                   list(label_names))
        self.label_names = None if label_names is None else tuple(str(name) for name in label_names)
        self.pooling = check_choice(pooling, "pooling", POOLINGS)
        self.dropout_prob = check_fraction(dropout_prob, "dropout_prob", closed_low=True,
                                           expected="a drop probability in [0, 1)")
        self.bert = BertModel(config, is_training, use_one_hot_embeddings)
        self.dropout = Dropout(p=dropout_prob if is_training else 0.0)
        self.dense_1 = make_dense(config.hidden_size, self.num_labels, config)

    @property
    def config(self) -> BertConfig:
        """The backbone's config."""
        return self.bert.config

    def check_call(self, input_ids, token_type_ids, input_mask) -> None:
        """The host-side check of one call (see :func:`check_inputs`)."""
        check_inputs(self.bert.config, input_ids, token_type_ids, input_mask)

    def construct(self, input_ids: Tensor, token_type_ids: Tensor, input_mask: Tensor) -> Tensor:
        outputs = self.bert(input_ids, token_type_ids, input_mask)
        if self.pooling == "pooler":
            features = outputs[1]  # (B, H)
        elif self.pooling == "cls":
            features = outputs[0][:, 0]  # (B, H)
        else:
            mask = input_mask.astype(outputs[0].dtype).expand_dims(-1)  # (B, S, 1)
            features = (outputs[0] * mask).sum(1) / ops.clamp(mask.sum(1), 1.0, None)  # (B, H)
        return self.dense_1(self.dropout(features))  # (B, num_labels)

    def get_gate_values(self) -> np.ndarray:
        """The backbone's deterministic gates, see :meth:`BertModel.get_gate_values`."""
        return self.bert.get_gate_values()


class BertClassifierWithLoss(_HostChecked, nn.Cell):
    """Cross-entropy of a :class:`BertClassifier`, plus ``total_reg`` when gated.

    The ModelZoo ``BertCLS``: attribute ``bert`` holds the classifier, so the
    checkpoint names are ``bert.bert.*`` and ``bert.dense_1.*``.

    ``construct(input_ids, token_type_ids, input_mask, label_ids)`` returns the
    scalar loss ``mean CE + total_reg``.
    """

    def __init__(self, classifier: BertClassifier) -> None:
        super().__init__()
        expect(isinstance(classifier, BertClassifier), "classifier", "a BertClassifier",
               type(classifier).__name__)
        self.bert = classifier
        self.loss = nn.CrossEntropyLoss()

    def check_call(self, input_ids, token_type_ids, input_mask, label_ids) -> None:
        """The host-side check of one call, labels included (see :func:`check_inputs`)."""
        check_inputs(self.bert.bert.config, input_ids, token_type_ids, input_mask, label_ids, self.bert.num_labels)

    def construct(self, input_ids: Tensor, token_type_ids: Tensor, input_mask: Tensor,
                  label_ids: Tensor) -> Tensor:
        logits = self.bert(input_ids, token_type_ids, input_mask)
        loss = self.loss(logits.astype(ms.float32), label_ids)
        if self.bert.bert.is_gated:
            loss = loss + self.bert.bert.total_reg()
        return loss


def find_bert(model: nn.Cell) -> list[tuple[str, BertModel]]:
    """Every ``(path, BertModel)`` inside ``model`` (the model itself has path ``""``)."""
    return [(name, cell) for name, cell in model.cells_and_names() if isinstance(cell, BertModel)]


def refresh_cell(root: nn.Cell) -> nn.Cell:
    """Make a Cell usable again after its structure changed in place.

    MindSpore names a parameter when its Cell is attached, so cells attached
    late carry short names; and a compiled graph is cached per Cell object, so a
    changed structure would keep running the old graph. This renames every
    parameter to its full path under ``root`` and drops the compiled graphs of
    ``root`` and all its sub-cells. Wrappers built *around* ``root`` before the
    change (a ``TrainOneStepCell``, say) must be rebuilt.
    """
    for name, param in root.parameters_and_names():
        if param.name != name:
            param.name = name
    drop_compiled_graphs(root)
    return root


def prune_heads(model: nn.Cell, heads_to_prune: dict, gate_values: np.ndarray | None = None) -> nn.Cell:
    """Physically remove heads from the BertModel in ``model`` (in place) and return ``model``.

    Args:
        model: a BertModel, or a Cell containing exactly one (a classifier, your own head),
            without gates.
        heads_to_prune: ``{layer: [head indices]}``, indices of the *original* model.
            Heads already removed are ignored, so pruning twice composes; the
            config's ``layer_heads`` records what is left.
        gate_values: optional ``[num_layers, num_attention_heads]`` scales folded into
            the output projection of each kept head (``convert()`` passes the gates).

    Returns:
        ``model``, pruned, with its parameter names refreshed and its graphs dropped.

    Example:
        >>> from lrp_prune import BertConfig, BertModel, prune_heads
        >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
        ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
        >>> model = prune_heads(BertModel(cfg, False), {0: [1, 2], 1: [0, 1, 2, 3]})
        >>> model.config.layer_heads
        ((0, 3), ())
    """
    bert, cfg, plan, gate_values = _pruning_plan(model, "prune_heads", heads_to_prune, gate_values,
                                                 "num_attention_heads", "heads_to_prune", "head")
    new_layer_heads = []
    for i, layer in enumerate(bert.bert_encoder.layers):
        attention = layer.attention.attention
        layer_plan = plan_layer(attention.heads, plan[i], cfg.head_size)
        scale = None if gate_values is None else gate_values[i, list(layer_plan.kept_heads)]
        layer.attention.prune(layer_plan, scale)
        new_layer_heads.append(attention.heads)
    bert.config = cfg.with_layer_heads(new_layer_heads)
    return refresh_cell(model)


def prune_ffn(model: nn.Cell, units_to_prune: dict, gate_values: np.ndarray | None = None) -> nn.Cell:
    """Physically remove feed-forward units from the BertModel in ``model`` (in place) and return ``model``.

    Args:
        model: a BertModel, or a Cell containing exactly one, without gates.
        units_to_prune: ``{layer: [unit indices]}``, indices of the *original* model (rows of
            ``intermediate.weight``). Units already removed are ignored, so pruning twice composes;
            the config's ``layer_units`` records what is left.
        gate_values: optional ``[num_layers, intermediate_size]`` scales folded into the
            ``output.dense`` column of each kept unit (``convert()`` passes the gates).

    Example:
        >>> from lrp_prune import BertConfig, BertModel
        >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
        ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
        >>> model = prune_ffn(BertModel(cfg, False), {0: range(30), 1: range(37)})
        >>> model.config.units_per_layer, model.config.layer_units[0]
        ((7, 0), (30, 31, 32, 33, 34, 35, 36))
    """
    bert, cfg, plan, gate_values = _pruning_plan(model, "prune_ffn", units_to_prune, gate_values,
                                                 "intermediate_size", "units_to_prune", "unit")
    new_layer_units = []
    for i, layer in enumerate(bert.bert_encoder.layers):
        layer_plan = plan_units(layer.intermediate.units, plan[i])
        scale = None if gate_values is None else gate_values[i, list(layer_plan.kept_units)]
        layer.prune_ffn(layer_plan, scale)
        new_layer_units.append(layer.intermediate.units)
    bert.config = cfg.with_layer_units(new_layer_units)
    return refresh_cell(model)


def _pruning_plan(model: nn.Cell, caller: str, to_prune: dict, gate_values, width_field: str, name: str,
                  unit: str) -> tuple[BertModel, BertConfig, dict[int, list[int]], np.ndarray | None]:
    """The checked inputs of :func:`prune_heads` / :func:`prune_ffn`: the model's BertModel (ungated), its
    config, ``{layer: [indices]}`` with every layer present, and the gate values as float64."""
    bert = the_bert(model, caller)
    cfg = bert.config
    width = getattr(cfg, width_field)
    plan = normalise_heads_to_prune(to_prune, cfg.num_hidden_layers, width, name, unit)
    if gate_values is not None:
        gate_values = np.asarray(gate_values, dtype=np.float64)
        expect(gate_values.shape == (cfg.num_hidden_layers, width), "gate_values",
               f"shape {(cfg.num_hidden_layers, width)}", gate_values.shape)
    _refuse_gated(bert, caller)
    return bert, cfg, plan, gate_values


def _refuse_gated(bert: BertModel, caller: str) -> None:
    from lrp_prune.network.gates import ModelGates

    gated = ModelGates(bert).gated()
    if gated:
        raise LRPPruneError(f"{caller}: expected a model without gates, got {gated[0][0].name} gates in layer "
                            f"{gated[0][1]}; use LRPHeadPruner.convert() for a gated model")


def the_bert(model: nn.Cell, caller: str) -> BertModel:
    """The single BertModel inside ``model`` or a clear error."""
    found = find_bert(model) if isinstance(model, nn.Cell) else []
    if len(found) != 1:
        what = type(model).__name__ if not found else f"{len(found)} BertModels at {[p or '<root>' for p, _ in found]}"
        raise LRPPruneError(f"{caller}: expected a BertModel or a Cell containing exactly one BertModel, "
                            f"got {what}")
    return found[0][1]

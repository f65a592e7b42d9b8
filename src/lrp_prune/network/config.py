"""BertConfig: a frozen, validated description of a (possibly pruned) BERT.

The keyword names are those of the MindSpore ModelZoo ``BertConfig`` so that
ModelZoo training scripts can pass their config unchanged. Two fields are added:
``layer_heads`` and ``layer_units`` record, per layer, which of the original heads
and feed-forward units the layer still has, so that a pruned model is fully
described by its config.

Example:
    >>> from lrp_prune import BertConfig
    >>> cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                  intermediate_size=37, vocab_size=50)
    >>> cfg.head_size, cfg.heads_per_layer
    (8, (4, 4))
    >>> pruned = cfg.with_layer_heads([[0, 2], []])
    >>> pruned.heads_per_layer, pruned.total_heads
    ((2, 0), 2)
    >>> thinner = pruned.with_layer_units([range(0, 37, 2), []])
    >>> thinner.units_per_layer, thinner.is_pruned
    ((19, 0), True)
    >>> BertConfig.from_json(thinner.to_json()) == thinner
    True
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from lrp_prune.errors import (LRPPruneError, check_fraction, check_int, check_number, describe, expect, is_int,
                              is_number)

__all__ = ["BertConfig", "ACTIVATIONS", "DTYPES"]

#: Accepted ``hidden_act`` values. ``"gelu"`` is the exact erf form, as HuggingFace
#: means it; ``"gelu_new"``/``"gelu_tanh"``/``"gelu_pytorch_tanh"`` are the tanh form.
ACTIVATIONS = ("gelu", "gelu_new", "gelu_tanh", "gelu_pytorch_tanh", "relu")
#: Accepted ``dtype``/``compute_type`` names (MindSpore dtypes are accepted and normalised).
DTYPES = ("float32", "float16", "bfloat16")


def _dtype_name(value: Any) -> Any:
    """Normalise a MindSpore dtype object (or a string) to its short name."""
    if isinstance(value, str):
        return value.lower().replace("mindspore.", "")
    text = str(value)  # mstype.float32 prints as "Float32"
    return text.lower() if text.lower() in DTYPES else value


@dataclass(frozen=True)
class BertConfig:
    """Configuration of a BertModel, ModelZoo keyword names plus ``layer_heads``.

    Attributes:
        seq_length: default sequence length for export and dummy inputs.
        vocab_size: number of WordPiece ids.
        hidden_size: width of every token vector; divisible by ``num_attention_heads``.
        num_hidden_layers: number of Transformer layers.
        num_attention_heads: heads per layer of the *unpruned* model; fixes the head size.
        intermediate_size: width of the feed-forward block.
        hidden_act: one of :data:`ACTIVATIONS`.
        hidden_dropout_prob: drop probability after embeddings and dense blocks.
        attention_probs_dropout_prob: drop probability on attention probabilities.
        max_position_embeddings: rows of the position table (longest sequence).
        type_vocab_size: rows of the token-type (segment) table.
        initializer_range: std of the truncated-normal weight init.
        use_relative_positions: ModelZoo option; only ``False`` is supported.
        dtype: parameter dtype name.
        compute_type: dtype the dense layers compute in (ModelZoo uses float16 on Ascend).
        layer_norm_eps: LayerNorm epsilon.
        layer_heads: per layer, the sorted original head indices the layer keeps;
            ``None`` means every layer has all heads.
        layer_units: per layer, the sorted original indices of the feed-forward units
            (columns of ``intermediate``) the layer keeps; ``None`` means all of them.
    """

    seq_length: int = 128
    vocab_size: int = 32000
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"  # exact erf GELU (HuggingFace meaning), not the tanh approximation
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 16  # ModelZoo's class default; its BERT-base yaml and HF use 2
    initializer_range: float = 0.02
    use_relative_positions: bool = False
    dtype: str = "float32"
    compute_type: str = "float32"  # ModelZoo's Ascend configs use float16; float16 is slower on CPU
    layer_norm_eps: float = 1e-12  # HuggingFace's value; MindSpore's nn.LayerNorm default is 1e-7
    layer_heads: tuple[tuple[int, ...], ...] | None = None
    layer_units: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))
        object.__setattr__(self, "compute_type", _dtype_name(self.compute_type))
        for name, what in (("layer_heads", "head"), ("layer_units", "unit")):
            value = getattr(self, name)
            if value is None:
                continue
            expect(isinstance(value, (list, tuple)), name,
                   f"a list with one list of {what} indices per layer, or None", value)
            try:
                if any(isinstance(h, bool) or not isinstance(h, numbers.Integral) for row in value for h in row):
                    raise TypeError(f"non-integer {what} index")
                normalised = tuple(tuple(int(h) for h in row) for row in value)
            except (TypeError, ValueError):
                raise LRPPruneError(
                    f"{name}: expected a list with one list of integer {what} indices per "
                    f"layer, got {describe(value)}") from None
            object.__setattr__(self, name, normalised)
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        positive_ints = ("seq_length", "vocab_size", "hidden_size", "num_hidden_layers",
                         "num_attention_heads", "intermediate_size", "max_position_embeddings",
                         "type_vocab_size")
        for name in positive_ints:
            object.__setattr__(self, name, check_int(getattr(self, name), name, minimum=1))
        expect(self.hidden_size % self.num_attention_heads == 0, "hidden_size",
               f"a multiple of num_attention_heads ({self.num_attention_heads})", self.hidden_size)
        expect(self.seq_length <= self.max_position_embeddings, "seq_length",
               f"at most max_position_embeddings ({self.max_position_embeddings})", self.seq_length)
        expect(self.hidden_act in ACTIVATIONS, "hidden_act", f"one of {ACTIVATIONS}", self.hidden_act)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            object.__setattr__(self, name, check_fraction(getattr(self, name), name, closed_low=True,
                                                          expected="a drop probability in [0, 1)"))
        for name in ("initializer_range", "layer_norm_eps"):
            object.__setattr__(self, name, check_number(getattr(self, name), name, minimum=0, strict=True,
                                                        expected="a finite positive number"))
        expect(self.use_relative_positions is False, "use_relative_positions",
               "False (relative positions are not supported)", self.use_relative_positions)
        expect(self.dtype in DTYPES, "dtype", f"one of {DTYPES}", self.dtype)
        expect(self.compute_type in DTYPES, "compute_type", f"one of {DTYPES}", self.compute_type)
        for name, width, what in (("layer_heads", self.num_attention_heads, "head"),
                                  ("layer_units", self.intermediate_size, "unit")):
            value = getattr(self, name)
            if value is None:
                continue
            expect(len(value) == self.num_hidden_layers, name, f"one entry per layer ({self.num_hidden_layers})",
                   value)
            for i, row in enumerate(value):
                ok = list(row) == sorted(set(row)) and all(0 <= h < width for h in row)
                expect(ok, f"{name}[{i}]", f"sorted, distinct {what} indices in [0, {width})", row)

    # ------------------------------------------------------------------ derived sizes
    @property
    def head_size(self) -> int:
        """Width of one head (``hidden_size // num_attention_heads``)."""
        return self.hidden_size // self.num_attention_heads

    def heads_of(self, layer: int) -> tuple[int, ...]:
        """Original indices of the heads that ``layer`` keeps."""
        if self.layer_heads is None:
            return tuple(range(self.num_attention_heads))
        return self.layer_heads[layer]

    @property
    def heads_per_layer(self) -> tuple[int, ...]:
        """Number of heads each layer keeps."""
        return tuple(len(self.heads_of(i)) for i in range(self.num_hidden_layers))

    @property
    def total_heads(self) -> int:
        """Number of heads the whole model keeps."""
        return sum(self.heads_per_layer)

    def units_of(self, layer: int) -> tuple[int, ...]:
        """Original indices of the feed-forward units that ``layer`` keeps."""
        if self.layer_units is None:
            return tuple(range(self.intermediate_size))
        return self.layer_units[layer]

    @property
    def units_per_layer(self) -> tuple[int, ...]:
        """Feed-forward width (units kept) of each layer."""
        return tuple(len(self.units_of(i)) for i in range(self.num_hidden_layers))

    @property
    def total_units(self) -> int:
        """Feed-forward units the whole model keeps."""
        return sum(self.units_per_layer)

    @property
    def is_pruned(self) -> bool:
        """Whether any layer lacks any head or feed-forward unit."""
        return (self.total_heads < self.num_hidden_layers * self.num_attention_heads
                or self.total_units < self.num_hidden_layers * self.intermediate_size)

    def with_layer_heads(self, layer_heads: Sequence[Sequence[int]] | None) -> "BertConfig":
        """A copy with another head layout (``None`` restores all heads)."""
        if layer_heads is not None:
            layer_heads = tuple(tuple(sorted(int(h) for h in heads)) for heads in layer_heads)
            if all(len(h) == self.num_attention_heads for h in layer_heads):
                layer_heads = None  # canonical form of "unpruned"
        return dataclasses.replace(self, layer_heads=layer_heads)

    def with_layer_units(self, layer_units: Sequence[Sequence[int]] | None) -> "BertConfig":
        """A copy with another feed-forward layout (``None`` restores every unit)."""
        if layer_units is not None:
            layer_units = tuple(tuple(sorted(int(u) for u in units)) for units in layer_units)
            if all(len(u) == self.intermediate_size for u in layer_units):
                layer_units = None  # canonical form of "unpruned"
        return dataclasses.replace(self, layer_units=layer_units)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict of every field."""
        out = dataclasses.asdict(self)
        for name in ("layer_heads", "layer_units"):
            if getattr(self, name) is not None:
                out[name] = [list(h) for h in getattr(self, name)]
        return out

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (stable key order)."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BertConfig":
        """Build from a dict; unknown keys are an error that lists the known ones."""
        expect(isinstance(data, Mapping), "BertConfig", "a dict of config fields", data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LRPPruneError(f"BertConfig: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str, source: str = "BertConfig JSON") -> "BertConfig":
        """Parse JSON text produced by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise LRPPruneError(f"{source}: expected valid JSON, got a parse error ({err})") from None
        return cls.from_dict(data)

    @classmethod
    def from_json_file(cls, path: str | Path) -> "BertConfig":
        """Read a config JSON file written by :meth:`to_json` (or by hand; UTF-8, with or without BOM)."""
        from lrp_prune.textfiles import read_text

        path = Path(path)
        expect(path.is_file(), "config file", "an existing JSON file", str(path))
        return cls.from_json(read_text(path, "config file"), source=str(path))

    @classmethod
    def from_hf_config(cls, hf: Mapping[str, Any] | str | Path) -> "BertConfig":
        """Translate a HuggingFace BERT ``config.json`` (dict or path).

        HF's ``pruned_heads`` (``{layer: [heads]}``) becomes ``layer_heads``.
        """
        if not isinstance(hf, Mapping):
            from lrp_prune.textfiles import read_json_file

            path = Path(hf)
            if path.is_dir():
                path = path / "config.json"
            expect(path.is_file(), "HuggingFace config", "an existing config.json", str(path))
            hf = read_json_file(path, "HuggingFace config")
            expect(isinstance(hf, Mapping), f"HuggingFace config {str(path)!r}", "a JSON object of config fields",
                   type(hf).__name__)
        model_type = hf.get("model_type", "bert")
        expect(model_type == "bert", "model_type", "'bert'", model_type)
        required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size")
        missing = [k for k in required if k not in hf]
        if missing:
            raise LRPPruneError(f"HuggingFace config: missing keys {missing}; expected {list(required)}")
        pos_type = hf.get("position_embedding_type", "absolute")
        expect(pos_type == "absolute", "position_embedding_type", "'absolute'", pos_type)
        field = _hf_reader(hf)
        max_pos = field("max_position_embeddings", int, 512)
        n_layers, n_heads = field("num_hidden_layers", int), field("num_attention_heads", int)
        layer_heads = None
        pruned = hf.get("pruned_heads") or {}
        if pruned:
            from lrp_prune.network.slicing import normalise_heads_to_prune

            try:
                plan = normalise_heads_to_prune(pruned, n_layers, n_heads)
            except LRPPruneError as err:
                raise LRPPruneError(f"HuggingFace config pruned_heads: {err}") from None
            layer_heads = [[h for h in range(n_heads) if h not in plan[i]] for i in range(n_layers)]
        dtype = str(hf.get("torch_dtype") or "float32")
        return cls(
            seq_length=min(128, max_pos),
            vocab_size=field("vocab_size", int),
            hidden_size=field("hidden_size", int),
            num_hidden_layers=n_layers,
            num_attention_heads=n_heads,
            intermediate_size=field("intermediate_size", int),
            hidden_act=field("hidden_act", str, "gelu"),
            hidden_dropout_prob=field("hidden_dropout_prob", float, 0.1),
            attention_probs_dropout_prob=field("attention_probs_dropout_prob", float, 0.1),
            max_position_embeddings=max_pos,
            type_vocab_size=field("type_vocab_size", int, 2),
            initializer_range=field("initializer_range", float, 0.02),
            dtype=dtype if dtype in DTYPES else "float32",
            layer_norm_eps=field("layer_norm_eps", float, 1e-12),
        ).with_layer_heads(layer_heads)

    # ------------------------------------------------------------------ counting
    def head_macs(self, seq_length: int | None = None) -> int:
        """Multiply-adds of one head for one sequence: its Q/K/V rows, its W_O columns, its share
        of the score and context products."""
        s = seq_length or self.seq_length
        return 4 * s * self.hidden_size * self.head_size + 2 * s * s * self.head_size

    def unit_macs(self, seq_length: int | None = None) -> int:
        """Multiply-adds of one feed-forward unit for one sequence: its two dot products per token."""
        return 2 * (seq_length or self.seq_length) * self.hidden_size

    def attention_flops(self, seq_length: int | None = None) -> int:
        """Multiply-adds of all attention blocks for one sequence (Q/K/V/O and the two attention matmuls)."""
        return self.total_heads * self.head_macs(seq_length)

    def ffn_flops(self, seq_length: int | None = None) -> int:
        """Multiply-adds of all feed-forward blocks for one sequence."""
        return self.total_units * self.unit_macs(seq_length)

    def encoder_flops(self, seq_length: int | None = None) -> int:
        """Multiply-adds of the encoder's prunable blocks (attention and feed-forward) for one sequence.

        Example:
            >>> cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            ...                  intermediate_size=37, vocab_size=50, seq_length=8)
            >>> cfg.encoder_flops() == 8 * cfg.head_macs() + 74 * cfg.unit_macs()
            True
        """
        return self.attention_flops(seq_length) + self.ffn_flops(seq_length)

    def num_parameters(self, pooler: bool = True) -> int:
        """Closed-form parameter count of a BertModel with this config."""
        h = self.hidden_size
        count = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h
        for n, i in zip(self.heads_per_layer, self.units_per_layer):
            width = n * self.head_size
            count += 3 * (h * width + width)  # Q, K, V
            count += width * h + h  # W_O (its bias exists even with zero heads)
            count += 2 * h  # attention LayerNorm
            count += h * i + i + i * h + h + 2 * h  # feed-forward (its output bias even with zero units), LayerNorm
        if pooler:
            count += h * h + h
        return count


def _hf_reader(hf: Mapping[str, Any]):
    """``field(key, kind, default)``: a HuggingFace config value of the right type, or a clear error."""
    missing = object()

    def field(key: str, kind: type, default: Any = missing) -> Any:
        value = hf.get(key, default)
        if value is missing:
            raise LRPPruneError(f"HuggingFace config {key}: expected a value, got no such key")
        if kind is int:
            ok = is_int(value) or (is_number(value) and float(value).is_integer())
            expect(ok, f"HuggingFace config {key}", "an integer", value)
            return int(value)
        if kind is float:
            expect(is_number(value), f"HuggingFace config {key}", "a number", value)
            return float(value)
        expect(isinstance(value, kind), f"HuggingFace config {key}", f"a {kind.__name__}", value)
        return value

    return field

"""A small FLOPs model of one BERT forward, for the *ideal* speed-up of head and FFN pruning.

Counts multiply-accumulates (MACs), the unit of ``BertConfig.attention_flops``;
multiply by 2 for floating-point operations. Ratios (the ideal speed-up) do not
depend on the unit. Per sequence of length ``s``, hidden ``h``, FFN width ``i``,
head size ``d``, ``n`` heads and ``i`` feed-forward units kept in a layer (``i`` is the full
``intermediate_size`` unless the config records ``layer_units``, so heads-only figures are
what they were before FFN pruning existed):

=====================  ===================  ============================================
part                   MACs                 note
=====================  ===================  ============================================
Q, K, V and W_O        ``4 * s * h * n*d``  the four projections of the kept heads
attention matmuls      ``2 * s * s * n*d``  scores ``Q K^T`` and context ``P V``
feed-forward           ``2 * s * h * i``    intermediate and output dense (kept units)
pooler                 ``h * h``            once per sequence ([CLS] only)
embeddings, LayerNorm  0                    negligible (gathers and O(s*h) work)
softmax, GELU, biases  0                    O(s*s*n) / O(s*i): negligible next to matmuls
=====================  ===================  ============================================

A layer with no heads has attention MACs 0 (it only adds ``b_O``).

Example:
    >>> from lrp_prune import BertConfig
    >>> cfg = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                  intermediate_size=16, seq_length=4)
    >>> f = forward_flops(cfg, 4)
    >>> f.qkvo, f.attention_matmuls, f.ffn, f.pooler, f.total
    (1024, 256, 1024, 64, 2368)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FlopsBreakdown", "forward_flops", "ideal_speedup"]


@dataclass(frozen=True)
class FlopsBreakdown:
    """MACs of one forward, by part. ``per_layer`` lists each layer's total (attention + FFN)."""

    seq_length: int
    batch_size: int
    qkvo: int
    attention_matmuls: int
    ffn: int
    pooler: int
    per_layer: tuple[int, ...]

    @property
    def attention(self) -> int:
        """Q/K/V/O plus the two attention matmuls (what head pruning removes)."""
        return self.qkvo + self.attention_matmuls

    @property
    def total(self) -> int:
        """Every counted MAC of the forward."""
        return self.qkvo + self.attention_matmuls + self.ffn + self.pooler

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_layer"] = list(self.per_layer)
        out.update(attention=self.attention, total=self.total, unit="multiply-accumulates")
        return out


def forward_flops(config: Any, seq_length: int | None = None, batch_size: int = 1) -> FlopsBreakdown:
    """MACs of a BertModel forward with ``config`` (its ``heads_per_layer``) on ``batch_size`` sequences.

    Args:
        config: a ``lrp_prune.BertConfig`` (pruned or not).
        seq_length: tokens per sequence; default ``config.seq_length``.
        batch_size: sequences; every count scales linearly with it.
    """
    s = int(config.seq_length if seq_length is None else seq_length)
    b = int(batch_size)
    if s <= 0 or b <= 0:
        raise ValueError(f"seq_length and batch_size: expected positive integers, got {s} and {b}")
    h, d = config.hidden_size, config.head_size
    units = getattr(config, "units_per_layer", (config.intermediate_size,) * config.num_hidden_layers)
    qkvo = attn = ffn = 0
    per_layer = []
    for n, i in zip(config.heads_per_layer, units):
        width = n * d
        layer_qkvo = 4 * s * h * width
        layer_attn = 2 * s * s * width
        layer_ffn = 2 * s * h * i
        qkvo += layer_qkvo
        attn += layer_attn
        ffn += layer_ffn
        per_layer.append(b * (layer_qkvo + layer_attn + layer_ffn))
    return FlopsBreakdown(seq_length=s, batch_size=b, qkvo=b * qkvo, attention_matmuls=b * attn, ffn=b * ffn,
                          pooler=b * h * h, per_layer=tuple(per_layer))


def ideal_speedup(unpruned: Any, pruned: Any, seq_length: int | None = None) -> float:
    """``MACs(unpruned) / MACs(pruned)``: the speed-up if time were proportional to MACs."""
    return forward_flops(unpruned, seq_length).total / forward_flops(pruned, seq_length).total

"""A readable, JSON-able account of what ``convert()`` removed.

Example:
    >>> import numpy as np
    >>> from lrp_prune import BertConfig
    >>> from lrp_prune.pruning.summary import PruningSummary
    >>> before = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                     num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> after = before.with_layer_heads([[0, 1], []])
    >>> s = PruningSummary.build(before, after, before.num_parameters(), after.num_parameters())
    >>> s.heads_kept, s.heads_total, s.heads_removed
    (2, 8, {0: [2, 3], 1: [0, 1, 2, 3]})
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from lrp_prune.network.config import BertConfig

__all__ = ["PruningSummary"]


@dataclass(frozen=True)
class PruningSummary:
    """Heads and feed-forward units kept per layer, parameters and FLOPs before and after.

    Attributes:
        heads_kept_per_layer: number of heads each layer keeps.
        kept_heads: original indices each layer keeps.
        heads_removed: ``{layer: [original head indices removed]}``, every layer present.
        heads_kept / heads_total: totals.
        params_before / params_after: parameter counts (gates excluded).
        attention_flops_before / attention_flops_after: multiply-adds of the attention
            blocks for one sequence of ``seq_length`` tokens.
        seq_length: the sequence length the FLOPs are counted at.
        gate_values: ``[layers][heads]`` deterministic gates read at convert (or ``None``).
        warnings: what a user should know about this pruning (e.g. that no head is left).
        units_kept_per_layer: feed-forward units each layer keeps.
        units_kept / units_total: totals.
        encoder_flops_before / encoder_flops_after: multiply-adds of the attention and
            feed-forward blocks for one sequence of ``seq_length`` tokens.
    """

    heads_kept_per_layer: list[int]
    kept_heads: list[list[int]]
    heads_removed: dict[int, list[int]]
    heads_kept: int
    heads_total: int
    params_before: int
    params_after: int
    attention_flops_before: int
    attention_flops_after: int
    seq_length: int
    gate_values: list[list[float]] | None = None
    warnings: list[str] = field(default_factory=list)
    units_kept_per_layer: list[int] = field(default_factory=list)
    units_kept: int = 0
    units_total: int = 0
    encoder_flops_before: int = 0
    encoder_flops_after: int = 0

    @classmethod
    def build(cls, before: BertConfig, after: BertConfig, params_before: int, params_after: int,
              gate_values: np.ndarray | None = None) -> "PruningSummary":
        """Compare two configs of one model (before and after pruning)."""
        n_heads = before.num_attention_heads
        kept = [list(after.heads_of(i)) for i in range(after.num_hidden_layers)]
        removed = {i: [h for h in range(n_heads) if h not in kept[i]] for i in range(after.num_hidden_layers)}
        unpruned = before.with_layer_heads(None).with_layer_units(None)
        warnings = []
        if after.total_heads == 0:
            warnings.append("every head was removed: each layer computes LayerNorm(x + b_O) then its FFN")
        if after.total_units == 0:
            warnings.append("every feed-forward unit was removed: each layer's FFN block computes LayerNorm(x + b_out)")
        return cls(
            heads_kept_per_layer=[len(k) for k in kept],
            kept_heads=kept,
            heads_removed=removed,
            heads_kept=after.total_heads,
            heads_total=before.num_hidden_layers * n_heads,
            params_before=int(params_before),
            params_after=int(params_after),
            attention_flops_before=unpruned.attention_flops(),
            attention_flops_after=after.attention_flops(),
            seq_length=before.seq_length,
            gate_values=None if gate_values is None else np.asarray(gate_values, float).round(6).tolist(),
            warnings=warnings,
            units_kept_per_layer=list(after.units_per_layer),
            units_kept=after.total_units,
            units_total=unpruned.total_units,
            encoder_flops_before=unpruned.encoder_flops(),
            encoder_flops_after=after.encoder_flops(),
        )

    def to_dict(self) -> dict:
        """Plain dict (JSON keys of ``heads_removed`` become strings when dumped)."""
        return asdict(self)

    def to_json(self) -> str:
        """JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "PruningSummary":
        """Inverse of :meth:`to_dict` (accepts string layer keys from JSON)."""
        data = dict(data)
        data["heads_removed"] = {int(k): list(v) for k, v in data["heads_removed"].items()}
        return cls(**data)

    def __str__(self) -> str:
        ffn = bool(self.units_total) and self.units_kept < self.units_total
        rows = [f"{'layer':>5}  {'kept':>4}  " + ("ffn units  " if ffn else "") + "removed heads"]
        for i, n in enumerate(self.heads_kept_per_layer):
            units = f"{self.units_kept_per_layer[i]:>9}  " if ffn else ""
            rows.append(f"{i:>5}  {n:>4}  {units}{self.heads_removed[i]}")
        ratio = self.attention_flops_after / max(1, self.attention_flops_before)
        rows.append(f"heads kept {self.heads_kept}/{self.heads_total}; parameters "
                    f"{self.params_before:,} -> {self.params_after:,}; attention FLOPs x{ratio:.3f} "
                    f"(seq {self.seq_length})")
        if ffn:
            rows.append(f"feed-forward units kept {self.units_kept}/{self.units_total}; encoder FLOPs "
                        f"x{self.encoder_flops_after / max(1, self.encoder_flops_before):.3f}")
        return "\n".join(rows)

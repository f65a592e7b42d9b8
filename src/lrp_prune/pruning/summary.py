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
    """Heads kept per layer, heads removed, parameters and attention FLOPs before and after.

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

    @classmethod
    def build(cls, before: BertConfig, after: BertConfig, params_before: int, params_after: int,
              gate_values: np.ndarray | None = None) -> "PruningSummary":
        """Compare two configs of one model (before and after pruning)."""
        n_heads = before.num_attention_heads
        kept = [list(after.heads_of(i)) for i in range(after.num_hidden_layers)]
        removed = {i: [h for h in range(n_heads) if h not in kept[i]] for i in range(after.num_hidden_layers)}
        return cls(
            heads_kept_per_layer=[len(k) for k in kept],
            kept_heads=kept,
            heads_removed=removed,
            heads_kept=after.total_heads,
            heads_total=before.num_hidden_layers * n_heads,
            params_before=int(params_before),
            params_after=int(params_after),
            attention_flops_before=before.with_layer_heads(None).attention_flops(),
            attention_flops_after=after.attention_flops(),
            seq_length=before.seq_length,
            gate_values=None if gate_values is None else np.asarray(gate_values, float).round(6).tolist(),
            warnings=["every head was removed: each layer computes LayerNorm(x + b_O) then its FFN"]
            if after.total_heads == 0 else [],
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
        rows = [f"{'layer':>5}  {'kept':>4}  removed heads"]
        for i, n in enumerate(self.heads_kept_per_layer):
            rows.append(f"{i:>5}  {n:>4}  {self.heads_removed[i]}")
        ratio = self.attention_flops_after / max(1, self.attention_flops_before)
        rows.append(f"heads kept {self.heads_kept}/{self.heads_total}; parameters "
                    f"{self.params_before:,} -> {self.params_after:,}; attention FLOPs x{ratio:.3f} "
                    f"(seq {self.seq_length})")
        return "\n".join(rows)

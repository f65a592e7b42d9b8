"""Pure functions that compute which rows and columns survive head and feed-forward pruning.

Head ``j`` (local position within a layer) with head size ``d`` owns rows
``j*d:(j+1)*d`` of the query/key/value weights and biases, and columns
``j*d:(j+1)*d`` of the attention output weight ``W_O`` (its bias belongs to
no head). Feed-forward unit ``j`` owns row ``j`` of ``intermediate.weight`` and
``intermediate.bias`` and column ``j`` of ``output.dense.weight``: a unit is a
"head" of size 1, so the same plan serves both (:func:`plan_units`). Every
function here takes and returns numpy arrays and never touches a Cell, so each
one can be checked on small hand-written matrices.

Example:
    >>> import numpy as np
    >>> plan = plan_layer(heads=(0, 1, 3), prune=[1], head_size=2)
    >>> plan.kept_heads, plan.kept_positions, plan.index.tolist()
    ((0, 3), (0, 2), [0, 1, 4, 5])
    >>> w = np.arange(12.0).reshape(6, 2)
    >>> slice_rows(w, plan.index).tolist()
    [[0.0, 1.0], [2.0, 3.0], [8.0, 9.0], [10.0, 11.0]]
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from lrp_prune.errors import LRPPruneError, describe

__all__ = [
    "LayerPlan",
    "plan_layer",
    "plan_units",
    "head_index",
    "slice_rows",
    "slice_columns",
    "normalise_heads_to_prune",
    "prune_layer_params",
    "prune_ffn_params",
]

#: The parameters of one layer's attention that head pruning touches (relative to the layer).
_QKV = ("attention.attention.query_layer", "attention.attention.key_layer", "attention.attention.value_layer")
_W_O = "attention.output.dense"
#: The parameters of one layer's feed-forward block that unit pruning touches.
_FFN_IN, _FFN_OUT = "intermediate", "output.dense"


@dataclass(frozen=True)
class LayerPlan:
    """What stays of one layer.

    Attributes:
        kept_heads: original indices of the heads that stay.
        kept_positions: their positions among the layer's current heads.
        index: the rows of Q/K/V (and columns of W_O) that stay, ``int64``.
    """

    kept_heads: tuple[int, ...]
    kept_positions: tuple[int, ...]
    index: np.ndarray

    @property
    def kept_units(self) -> tuple[int, ...]:
        """``kept_heads`` under the name a feed-forward plan reads better with."""
        return self.kept_heads


def head_index(positions: Sequence[int], head_size: int) -> np.ndarray:
    """Rows owned by the heads at ``positions`` (in order): ``[p*d, ..., p*d + d - 1, ...]``."""
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 1)  # (n, 1)
    return (positions * head_size + np.arange(head_size, dtype=np.int64)).reshape(-1)  # (n*d,)


def plan_layer(heads: Sequence[int], prune: Iterable[int], head_size: int) -> LayerPlan:
    """Plan the pruning of one layer.

    Args:
        heads: original indices of the heads the layer has now (sorted).
        prune: original indices to remove; heads the layer no longer has are ignored,
            so a second pruning may repeat earlier indices (pruning composes).
        head_size: rows per head.
    """
    prune = set(int(h) for h in prune)
    kept = [(pos, h) for pos, h in enumerate(heads) if h not in prune]
    positions = tuple(pos for pos, _ in kept)
    return LayerPlan(tuple(h for _, h in kept), positions, head_index(positions, head_size))


def plan_units(units: Sequence[int], prune: Iterable[int]) -> LayerPlan:
    """Plan the feed-forward pruning of one layer: :func:`plan_layer` with units of size 1.

    Example:
        >>> plan = plan_units(units=(0, 2, 5, 6), prune=[2, 6])
        >>> plan.kept_units, plan.kept_positions, plan.index.tolist()
        ((0, 5), (0, 2), [0, 2])
    """
    return plan_layer(units, prune, 1)


def slice_rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` of a weight ``[out, in]`` or a bias ``[out]`` (a new array)."""
    return np.ascontiguousarray(np.take(array, index, axis=0))


def slice_columns(weight: np.ndarray, index: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Columns ``index`` of ``weight [out, in]``, each multiplied by ``scale`` (one per kept column).

    Folding a head's gate ``g`` into its ``W_O`` columns keeps the layer's output
    unchanged: ``W_O[:, cols] @ (g * context) == (W_O[:, cols] * g) @ context``.
    """
    out = np.take(weight, index, axis=1)
    if scale is not None:
        out = out * np.asarray(scale, dtype=np.float64).reshape(1, -1)
    return np.ascontiguousarray(out.astype(weight.dtype, copy=False))


def _as_index(value) -> int:
    """An int, numpy int or decimal string (JSON keys); floats and bools are refused."""
    if isinstance(value, str) and value.strip().lstrip("-").isdecimal():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(value)
    return int(value)


def normalise_heads_to_prune(heads_to_prune: Mapping, num_layers: int, num_heads: int,
                             name: str = "heads_to_prune", unit: str = "head") -> dict[int, list[int]]:
    """Validate ``{layer: [head indices]}`` and return it with every layer present, sorted.

    ``name``/``unit`` name the argument in errors (``"units_to_prune"``/``"unit"`` for feed-forward units).

    Raises:
        LRPPruneError: a key that is not a layer index, or a head index out of range.
    """
    if not isinstance(heads_to_prune, Mapping):
        raise LRPPruneError(f"{name}: expected a dict {{layer: [{unit} indices]}}, got "
                            f"{describe(heads_to_prune)}")
    out: dict[int, list[int]] = {i: [] for i in range(num_layers)}
    for key, heads in heads_to_prune.items():
        try:
            layer = _as_index(key)
        except (TypeError, ValueError):
            raise LRPPruneError(f"{name}: expected integer layer keys, got {describe(key)}") from None
        if not 0 <= layer < num_layers:
            raise LRPPruneError(f"{name}: expected layer keys in [0, {num_layers}), got {layer}")
        try:
            if isinstance(heads, (str, bytes)):
                raise TypeError(heads)
            indices = sorted({_as_index(h) for h in heads})
        except (TypeError, ValueError):
            raise LRPPruneError(f"{name}[{layer}]: expected a list of integer {unit} indices, got "
                                f"{describe(heads)}") from None
        bad = [h for h in indices if not 0 <= h < num_heads]
        if bad:
            raise LRPPruneError(f"{name}[{layer}]: expected {unit} indices in [0, {num_heads}), got {bad}")
        out[layer] = sorted(set(out[layer]) | set(indices))
    return out


def prune_layer_params(params: Mapping[str, np.ndarray], layer_prefix: str, plan: LayerPlan,
                       scale: np.ndarray | None, head_size: int) -> dict[str, np.ndarray]:
    """The parameters of one layer after head pruning (a new dict; other names pass unchanged).

    Args:
        params: ``{name: array}`` holding the layer's parameters under ``layer_prefix``
            (e.g. ``"bert.bert_encoder.layers.3."``).
        layer_prefix: the layer's name prefix, ending in ``"."``.
        plan: what stays (:func:`plan_layer`).
        scale: one value per *kept* head folded into its W_O columns (the gate), or ``None``.
        head_size: rows per head.

    A layer left with no heads keeps only W_O's bias (its block becomes ``LayerNorm(x + b_O)``).

    Example:
        >>> p = {"l.attention.attention.query_layer.weight": np.arange(8.0).reshape(4, 2),
        ...      "l.attention.attention.query_layer.bias": np.arange(4.0),
        ...      "l.attention.output.dense.weight": np.ones((2, 4)), "l.attention.output.dense.bias": np.zeros(2)}
        >>> out = prune_layer_params(p, "l.", plan_layer((0, 1), [0], 2), np.array([0.5]), 2)
        >>> out["l.attention.attention.query_layer.weight"].tolist(), out["l.attention.output.dense.weight"].tolist()
        ([[4.0, 5.0], [6.0, 7.0]], [[0.5, 0.5], [0.5, 0.5]])
        >>> sorted(prune_layer_params(p, "l.", plan_layer((0, 1), [0, 1], 2), None, 2))
        ['l.attention.output.dense.bias']
    """
    out = dict(params)
    if not plan.kept_heads:
        for name in [n for n in out if n.startswith(layer_prefix) and
                     (n[len(layer_prefix):].startswith(tuple(q + "." for q in _QKV))
                      or n == f"{layer_prefix}{_W_O}.weight")]:
            del out[name]
        return out
    for q in _QKV:
        for part in ("weight", "bias"):
            name = f"{layer_prefix}{q}.{part}"
            if name in out:
                out[name] = slice_rows(out[name], plan.index)
    column_scale = None if scale is None else np.repeat(np.asarray(scale, np.float64), head_size)
    name = f"{layer_prefix}{_W_O}.weight"
    out[name] = slice_columns(out[name], plan.index, column_scale)
    return out


def prune_ffn_params(params: Mapping[str, np.ndarray], layer_prefix: str, plan: LayerPlan,
                     scale: np.ndarray | None) -> dict[str, np.ndarray]:
    """The parameters of one layer after feed-forward pruning (a new dict; other names pass unchanged).

    Args:
        params: ``{name: array}`` holding the layer's parameters under ``layer_prefix``.
        layer_prefix: the layer's name prefix, ending in ``"."``.
        plan: what stays (:func:`plan_units`).
        scale: one value per *kept* unit folded into its ``output.dense`` column (the gate), or ``None``.

    A layer left with no units keeps only the output bias (its block becomes ``LayerNorm(x + b_out)``).

    Example:
        >>> p = {"l.intermediate.weight": np.arange(6.0).reshape(3, 2), "l.intermediate.bias": np.arange(3.0),
        ...      "l.output.dense.weight": np.ones((2, 3)), "l.output.dense.bias": np.zeros(2)}
        >>> out = prune_ffn_params(p, "l.", plan_units((0, 1, 2), [1]), np.array([0.5, 2.0]))
        >>> out["l.intermediate.weight"].tolist(), out["l.output.dense.weight"].tolist()
        ([[0.0, 1.0], [4.0, 5.0]], [[0.5, 2.0], [0.5, 2.0]])
        >>> sorted(prune_ffn_params(p, "l.", plan_units((0, 1, 2), [0, 1, 2]), None))
        ['l.output.dense.bias']
    """
    out = dict(params)
    names_in = [f"{layer_prefix}{_FFN_IN}.{part}" for part in ("weight", "bias")]
    name_out = f"{layer_prefix}{_FFN_OUT}.weight"
    if not plan.kept_units:
        for name in (*names_in, name_out):
            out.pop(name, None)
        return out
    for name in names_in:
        out[name] = slice_rows(out[name], plan.index)
    out[name_out] = slice_columns(out[name_out], plan.index, scale)
    return out

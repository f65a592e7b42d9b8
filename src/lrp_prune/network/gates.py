"""ModelGates: the one home of gate state, as ``[layers, units]`` numpy grids.

A *structure* is a kind of prunable unit of an encoder layer and the cell whose
``gate`` attribute scales it: the attention heads (``"heads"``: the gate sits on
``attention.attention`` and scales each head's context) and the feed-forward units
(``"ffn"``: the gate sits on ``intermediate`` and scales each unit after the
activation). A *gate kind* is the
cell installed there: :class:`~lrp_prune.network.hard_concrete.HardConcreteGate`
(a learned ``log_a`` per unit) or :class:`~lrp_prune.network.mask_gate.MaskGate` (a fixed
mask and a separate scale per unit, from retraining-free pruning). Both are open sets: a
new structure is one more :class:`Structure` entry in :data:`STRUCTURES`; a new gate kind
is one more cell with the host-side methods ``values()``, ``prob_open()``, ``close()``
(optionally ``kept()``, when kept-ness is not simply ``values() > 0``; and, if it learns,
``log_a`` / ``set_log_a``). Everything else here works for any of them.

Grids are indexed by the *original* unit index, so a model that was pruned before
still reads as ``[num_hidden_layers, num_attention_heads]``; a unit a layer no longer
has is NaN (or the ``missing`` value you ask for).

Example:
    >>> import numpy as np
    >>> from lrp_prune import BertConfig, BertModel, HeadPruningFactory
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
    ...                                         "config": {"l0_penalty": 0.01}})
    >>> gates = ModelGates(pruner.apply(BertModel(cfg, is_training=True)))
    >>> gates.structures, gates.log_a().shape
    (('heads',), (2, 4))
    >>> gates.close([(0, 1), (1, 3)])
    >>> gates.values().tolist()
    [[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]]
    >>> gates.to_prune()
    {0: [1], 1: [3]}
    >>> round(gates.expected_open(), 2)   # 6 open heads, each P(open) = 0.978 at log_a = 3
    5.87
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from mindspore import nn

from lrp_prune.errors import LRPPruneError, expect

__all__ = ["Structure", "HEADS", "FFN", "STRUCTURES", "ModelGates", "structure_named", "grid_from_checkpoint"]


@dataclass(frozen=True)
class Structure:
    """A kind of prunable unit of an encoder layer and where its gate sits.

    Attributes:
        name: the structure's name in configs and reports (``"heads"``).
        unit: one unit's name in messages (``"head"``).
        host_path: attribute path from an encoder layer to the cell holding ``gate``; that
            cell also tells which original units it still has (``units``).
        width_field: the :class:`~lrp_prune.network.config.BertConfig` field giving the
            original number of units per layer.
    """

    name: str
    unit: str
    host_path: str
    width_field: str

    def host(self, layer: nn.Cell) -> nn.Cell:
        """The cell of ``layer`` that carries this structure's gate."""
        return functools.reduce(getattr, self.host_path.split("."), layer)

    def width(self, config: Any) -> int:
        """Original units per layer."""
        return int(getattr(config, self.width_field))

    def log_a_name(self, layer: int) -> str:
        """Full parameter name of layer ``layer``'s ``log_a`` in a bare BertModel."""
        return f"bert_encoder.layers.{layer}.{self.host_path}.gate.log_a"

    def layer_of(self, name: str, param: str = "log_a") -> int | None:
        """The layer index if ``name`` is this structure's gate parameter ``param`` (any prefix), else ``None``.

        Example:
            >>> HEADS.layer_of("bert.bert.bert_encoder.layers.3.attention.attention.gate.log_a")
            3
            >>> HEADS.layer_of("bert_encoder.layers.3.intermediate.gate.log_a") is None
            True
            >>> HEADS.layer_of("bert_encoder.layers.2.attention.attention.gate.mask", "mask")
            2
        """
        match = re.search(rf"(?:^|\.)bert_encoder\.layers\.(\d+)\.{re.escape(self.host_path)}\.gate\."
                          rf"{re.escape(param)}$", name)
        return int(match.group(1)) if match else None


HEADS = Structure(name="heads", unit="head", host_path="attention.attention", width_field="num_attention_heads")
"""Attention heads: the gate scales each head's context before the output projection."""

FFN = Structure(name="ffn", unit="unit", host_path="intermediate", width_field="intermediate_size")
"""Feed-forward units: the gate scales each unit of ``intermediate`` after the activation."""

STRUCTURES: Mapping[str, Structure] = {"heads": HEADS, "ffn": FFN}
"""Every structure the library can gate, by name."""


def structure_named(structure: str | Structure) -> Structure:
    """The :class:`Structure` for a name (or the structure itself)."""
    if isinstance(structure, Structure):
        return structure
    expect(structure in STRUCTURES, "structure", f"one of {sorted(STRUCTURES)}", structure)
    return STRUCTURES[structure]


class ModelGates:
    """Read and change every gate of the BertModel inside ``model``.

    Args:
        model: a BertModel, or a Cell holding exactly one (a classifier, your own model).
        caller: the name used in error messages.

    Raises:
        LRPPruneError: ``model`` holds no BertModel or several.

    Example:
        >>> import numpy as np
        >>> from lrp_prune import BertConfig, BertClassifier, HeadPruningFactory
        >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
        ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
        >>> clf = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
        ...     "config": {"l0_penalty": 0.01}}).apply(BertClassifier(cfg, True, num_labels=2))
        >>> gates = ModelGates(clf)
        >>> gates.set_log_a(np.array([[3.0, -5.0, 0.0, 3.0], [3.0, 3.0, 3.0, -5.0]]))
        >>> gates.values().round(2).tolist()
        [[1.0, 0.0, 0.5, 1.0], [1.0, 1.0, 1.0, 0.0]]
        >>> gates.to_prune()
        {0: [1], 1: [3]}
    """

    def __init__(self, model: nn.Cell, caller: str = "gates") -> None:
        from lrp_prune.network.bert import the_bert

        self.model = model
        self.bert = the_bert(model, caller)

    # ------------------------------------------------------------------ what is gated
    @property
    def config(self):
        """The BertModel's (current) config."""
        return self.bert.config

    def hosts(self, structure: str | Structure = HEADS) -> list[tuple[int, nn.Cell]]:
        """``[(layer index, host cell)]`` of every layer, gated or not."""
        structure = structure_named(structure)
        return [(i, structure.host(layer)) for i, layer in enumerate(self.bert.bert_encoder.layers)]

    def gated(self, structure: str | Structure | None = None) -> list[tuple[Structure, int, nn.Cell]]:
        """``[(structure, layer index, host cell)]`` of every host with a gate (all structures by default)."""
        picked = STRUCTURES.values() if structure is None else (structure_named(structure),)
        return [(s, i, host) for s in picked for i, host in self.hosts(s) if host.gate is not None]

    @property
    def structures(self) -> tuple[str, ...]:
        """Names of the structures that carry at least one gate."""
        return tuple(s.name for s in STRUCTURES.values() if self.gated(s))

    @property
    def is_gated(self) -> bool:
        """Whether any gate is installed."""
        return bool(self.gated())

    # ------------------------------------------------------------------ grids
    def _grid(self, structure: str | Structure, per_host: Callable[[nn.Cell], np.ndarray | None],
              missing: float = np.nan) -> np.ndarray:
        """A ``[layers, width]`` grid filled per host with ``per_host(host)`` (``None``: left as ``missing``)."""
        structure = structure_named(structure)
        grid = np.full((self.config.num_hidden_layers, structure.width(self.config)), missing, np.float64)
        for i, host in self.hosts(structure):
            if not host.units:
                continue
            values = per_host(host)
            if values is not None:
                grid[i, list(host.units)] = values
        return grid

    def log_a(self, structure: str | Structure = HEADS) -> np.ndarray:
        """``log_a`` per unit, ``[layers, width]``; NaN for units without a learned gate."""
        return self._grid(structure, lambda h: h.gate.log_a.asnumpy() if hasattr(h.gate, "log_a") else None)

    def set_log_a(self, values, structure: str | Structure = HEADS) -> None:
        """Set ``log_a`` of every gated unit from a ``[layers, width]`` grid (other cells are ignored).

        Raises:
            LRPPruneError: a grid of the wrong shape, or a non-finite value for a gated unit.
        """
        structure = structure_named(structure)
        values = np.asarray(values, dtype=np.float64)
        shape = (self.config.num_hidden_layers, structure.width(self.config))
        expect(values.shape == shape, "log_a", f"a grid of shape {shape} (layers, {structure.name})", values.shape)
        for _, i, host in self.gated(structure):
            expect(hasattr(host.gate, "set_log_a"), "set_log_a", "gates with a learned log_a",
                   type(host.gate).__name__)
            host.gate.set_log_a(values[i, list(host.units)])

    def values(self, structure: str | Structure = HEADS, missing: float = 0.0) -> np.ndarray:
        """Deterministic (eval) gates ``[layers, width]``: units without a gate read 1, units the
        model no longer has read ``missing`` (0 by default, as ``get_gate_values()`` reports them)."""
        return self._grid(structure, lambda h: np.ones(len(h.units)) if h.gate is None else h.gate.values(),
                          missing)

    def prob_open(self, structure: str | Structure = HEADS, clip: bool = False) -> np.ndarray:
        """P(gate != 0) in training ``[layers, width]``; NaN where no gate (or no unit)."""
        return self._grid(structure, lambda h: None if h.gate is None else h.gate.prob_open(clip))

    def prob_closed(self, structure: str | Structure = HEADS) -> np.ndarray:
        """P(gate = 0) in training ``[layers, width]``: what the original's docs animate."""
        return 1.0 - self.prob_open(structure)

    def expected_open(self, structure: str | Structure | None = None, clip: bool = True) -> float:
        """L_C: the expected number of open units (of one structure, or all), each term clipped to
        ``[eps, 1 - eps]`` as the penalty computes it."""
        picked = STRUCTURES.values() if structure is None else (structure_named(structure),)
        return float(sum(np.nansum(self.prob_open(s, clip)) for s in picked))

    def expected_cost(self, clip: bool = True) -> float:
        """The expected compute of the open units in head-equivalents: each gate's P(open) weighted by
        its unit's ``cost`` (a head costs 1; see :class:`~lrp_prune.network.hard_concrete.HardConcreteGate`).
        With head gates only it equals :meth:`expected_open`."""
        return float(sum(np.nansum(self.prob_open(s, clip)) * self.cost(s) for s in self.gated_structures()))

    def cost(self, structure: str | Structure = HEADS) -> float:
        """The compute of one unit of ``structure`` in head-equivalents, as its gates carry it (1 without gates)."""
        gated = self.gated(structure)
        return float(getattr(gated[0][2].gate, "cost", 1.0)) if gated else 1.0

    def gated_structures(self) -> list[Structure]:
        """The structures that carry at least one gate."""
        return [STRUCTURES[name] for name in self.structures]

    def kept(self, structure: str | Structure = HEADS) -> np.ndarray:
        """Which units ``convert()`` keeps, bool ``[layers, width]``: units without a gate, units whose
        gate says so (a mask gate's mask; otherwise an eval gate above 0); never a unit the model
        no longer has."""
        def per_host(host: nn.Cell) -> np.ndarray:
            if host.gate is None:
                return np.ones(len(host.units))
            return host.gate.kept() if hasattr(host.gate, "kept") else host.gate.values() > 0
        return self._grid(structure, per_host, missing=0.0) > 0

    def open_units(self, structure: str | Structure = HEADS) -> list[tuple[int, int]]:
        """``[(layer, original index)]`` of the units ``convert()`` keeps (see :meth:`kept`)."""
        return [(int(i), int(j)) for i, j in zip(*np.nonzero(self.kept(structure)))]

    def to_prune(self, structure: str | Structure = HEADS) -> dict[int, list[int]]:
        """``{layer: [original indices]}`` that ``convert()`` leaves out: closed gates (eval gate
        exactly 0, or a mask of 0) and units the model no longer has; every layer present."""
        kept = self.kept(structure)
        return {i: [int(j) for j in np.flatnonzero(~row)] for i, row in enumerate(kept)}

    # ------------------------------------------------------------------ changing gates
    def close(self, units: Iterable[tuple[int, int]], structure: str | Structure = HEADS) -> None:
        """Close the given ``(layer, original index)`` units (their eval gate becomes exactly 0).

        Raises:
            LRPPruneError: a unit that has no gate.
        """
        structure = structure_named(structure)
        by_layer: dict[int, list[int]] = {}
        for layer, unit in units:
            by_layer.setdefault(int(layer), []).append(int(unit))
        hosts = dict(self.hosts(structure))
        for layer, picked in by_layer.items():
            host = hosts.get(layer)
            bad = [u for u in picked if host is None or host.gate is None or u not in host.units]
            if bad:
                raise LRPPruneError(f"close: expected gated {structure.unit}s of layer {layer}, got {bad}")
            host.gate.close([host.units.index(u) for u in picked])

    def install(self, make_gate: Callable[[int, int], nn.Cell], structure: str | Structure = HEADS) -> int:
        """Put ``make_gate(layer, n_units)`` on every host that has units; returns the units gated."""
        count = 0
        for i, host in self.hosts(structure):
            if host.units:
                host.gate = make_gate(i, len(host.units))
                count += len(host.units)
        self.bert.is_gated = self.is_gated
        return count

    def remove(self) -> None:
        """Take every gate off (the model then computes as if all gates were 1)."""
        for _, _, host in self.gated():
            host.gate = None
        self.bert.is_gated = False


def grid_from_checkpoint(params: Mapping[str, np.ndarray], config: Any | None = None,
                         structure: str | Structure = HEADS,
                         layer_units: list[list[int]] | None = None, param: str = "log_a") -> tuple[np.ndarray, int]:
    """A gate parameter (``log_a``; a mask gate's ``mask`` or ``scale``) of one structure read from a
    checkpoint's ``{name: array}`` as a ``[layers, width]`` grid.

    Args:
        params: the checkpoint's parameters (any name prefix).
        config: the gated model's config (gives the grid's shape); default: inferred.
        structure: which gates to read.
        layer_units: original unit indices each layer had when gated (for a model pruned
            before gating); default: the first ``n`` units of each layer.

    Returns:
        ``(grid, gated layers)``; NaN where there is no gate.
    """
    structure = structure_named(structure)
    found = {}
    for name, value in params.items():
        layer = structure.layer_of(name, param)
        if layer is not None:
            found[layer] = np.asarray(value, np.float64).reshape(-1)
    if not found:
        return np.zeros((0, 0)), 0
    layers = config.num_hidden_layers if config is not None else max(found) + 1
    width = structure.width(config) if config is not None else max(len(v) for v in found.values())
    grid = np.full((layers, width), np.nan)
    for layer, values in found.items():
        units = layer_units[layer] if layer_units is not None else list(range(len(values)))
        expect(len(units) == len(values) and layer < layers, f"{structure.log_a_name(layer)}",
               f"{len(units)} values", len(values))
        grid[layer, units] = values
    return grid, len(found)

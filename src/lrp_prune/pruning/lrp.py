"""The Golden Stick API: ``HeadPruningFactory`` -> ``LRPHeadPruner.apply()`` / ``convert()``.

Example:
    >>> import numpy as np, mindspore as ms
    >>> from lrp_prune import (BertConfig, BertModel, HeadPruningFactory, PruningType,
    ...                        SupportedModels)
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> pruner = HeadPruningFactory.get_pruner({
    ...     "prune_type": PruningType.LRP, "arch_type": SupportedModels.BERT,
    ...     "config": {"model_params": {"config": cfg}, "l0_penalty": 0.0015}})
    >>> gated = pruner.apply(BertModel(cfg, is_training=True))
    >>> [name for name, _ in gated.parameters_and_names() if name.endswith("log_a")]
    ['bert_encoder.layers.0.attention.attention.gate.log_a', 'bert_encoder.layers.1.attention.attention.gate.log_a']
    >>> gated.get_gate_values().shape
    (2, 4)
"""

from __future__ import annotations

import enum
import logging
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from mindspore import nn

from lrp_prune.errors import LRPPruneError, check_int, check_number, describe, expect, is_int, is_number
from lrp_prune.network.bert import refresh_cell
from lrp_prune.network.config import BertConfig
from lrp_prune.network.gates import FFN, HEADS, STRUCTURES, ModelGates
from lrp_prune.network.hard_concrete import GateSettings, HardConcreteGate, initial_log_a
from lrp_prune.pruning.budget import HeadBudget, LatencyBudget, check_targets, resolve_target
from lrp_prune.pruning.convert import convert_gated

__all__ = [
    "PruningType",
    "SupportedModels",
    "HeadPruningFactory",
    "LRPHeadPruner",
    "PrunerConfig",
    "DEFAULT_LOG_A_INIT",
    "parameter_groups",
]

logger = logging.getLogger(__name__)

#: Gates start open: log_a = 3 gives an eval gate of exactly 1 (the gated model
#: equals the original) and P(closed) ~ 2.2% in training. Measured with a PyTorch
#: reference of this method on all-MiniLM-L6-v2/SNLI (docs/design.md §2): at an equal number
#: of heads, the open init kept more accuracy than the original's xavier_uniform init
#: (14 heads: 78.4% vs 18 heads: 78.0%). ``log_a_init="xavier_uniform"`` restores the original.
DEFAULT_LOG_A_INIT = 3.0


class PruningType(enum.Enum):
    """Pruning methods the factory knows.

    ``LRP``: Hard Concrete gates learned with an L0 penalty (:class:`LRPHeadPruner`; needs
    training). ``FISHER``: retraining-free, Fisher importance plus least-squares mask tuning
    (:class:`~lrp_prune.pruning.fisher.FisherHeadPruner`; minutes, no training).
    """

    LRP = "LRP"
    FISHER = "FISHER"


class SupportedModels(enum.Enum):
    """Architectures the factory knows."""

    BERT = "BERT"


@dataclass(frozen=True)
class PrunerConfig:
    """The validated pruner config (every field is checked once, here).

    Attributes:
        gate: temperature, stretch limits, eps and ``l0_penalty``.
        log_a_init: initial ``log_a``: a number, ``"xavier_uniform"``, or a ``[layers, heads]`` grid
            (one value per head by original index, e.g. from
            :func:`~lrp_prune.pruning.importance.importance_log_a`).
        model_config: the BertConfig given as ``model_params``/``model_config`` (optional);
            ``apply()`` checks the model against its layers and heads.
        target_heads: heads to keep (an int, or a fraction in (0, 1) of the model's heads);
            ``None`` is the plain ``l0_penalty`` mode.
        budget_warmup_steps: steps over which the target moves from all heads to ``target_heads``.
        budget_lr: step size of the Lagrange multipliers' ascent.
        seed: seed of the ``"xavier_uniform"`` init (``None``: drawn from the OS).
        structures: what ``apply()`` gates: ``("heads",)`` (the faithful LRP behaviour),
            ``("heads", "ffn")`` or ``("ffn",)`` (one gate per feed-forward unit, after the activation).
        target_flops: the fraction in (0, 1) of the encoder's multiply-adds (attention and
            feed-forward, at ``cost_seq_length`` tokens) to keep; ``None`` for no compute budget.
            At most one of ``target_heads`` and ``target_flops``.
        cost_seq_length: tokens per sequence at which a unit's compute is counted (the run's
            ``max_seq_length``); ``None``: the model config's ``seq_length``.
        target_speedup: the encoder speed-up (> 1) to reach, predicted from a latency table of one
            layer measured on this machine (ZipLM); at most one of the three targets.
        latency_batch_size: the batch size the latency table is measured at (the one you will serve).
        latency_table: a :class:`~lrp_prune.pruning.latency.LatencyTable` to use instead of measuring
            (or loading the cached one).
    """

    gate: GateSettings
    log_a_init: float | str | np.ndarray = DEFAULT_LOG_A_INIT
    model_config: Any = None
    target_heads: float | int | None = None
    budget_warmup_steps: int = 100  # a third to a half of a short run: the gates follow the moving target
    budget_lr: float = 0.001  # multipliers move 0.001 * (E - T) per step; 0.01 overshot on MiniLM
    seed: int | None = None
    structures: tuple[str, ...] = ("heads",)
    target_flops: float | None = None
    cost_seq_length: int | None = None
    target_speedup: float | None = None
    latency_batch_size: int = 32  # the batch the table is timed at: CPU serving in batches
    latency_table: Any = None

    def __post_init__(self) -> None:
        expect(isinstance(self.gate, GateSettings), "gate", "a GateSettings", self.gate)
        names = self.structures
        ok = (isinstance(names, (list, tuple)) and len(names) > 0 and len(set(names)) == len(names)
              and all(isinstance(n, str) and n in STRUCTURES for n in names))
        expect(ok, "structures", f"a non-empty list of distinct names from {list(STRUCTURES)}", names)
        object.__setattr__(self, "structures", tuple(n for n in STRUCTURES if n in names))  # canonical order
        object.__setattr__(self, "cost_seq_length", check_int(self.cost_seq_length, "cost_seq_length", minimum=1,
                                                              optional=True))
        object.__setattr__(self, "latency_batch_size", check_int(self.latency_batch_size, "latency_batch_size",
                                                                 minimum=1))
        if self.latency_table is not None:
            from lrp_prune.pruning.latency import LatencyTable

            expect(isinstance(self.latency_table, LatencyTable), "latency_table", "a LatencyTable",
                   type(self.latency_table).__name__)
        if isinstance(self.log_a_init, (np.ndarray, list, tuple)):
            grid = np.asarray(self.log_a_init, dtype=np.float64)
            expect(grid.ndim == 2 and grid.size > 0 and bool(np.isfinite(grid).all()), "log_a_init",
                   "a number, 'xavier_uniform' or a [layers, heads] grid of finite values", self.log_a_init)
            grid.flags.writeable = False
            object.__setattr__(self, "log_a_init", grid)
        else:
            initial_log_a(1, self.log_a_init, 0)  # validates a number or "xavier_uniform"
        if is_number(self.log_a_init):
            object.__setattr__(self, "log_a_init", float(self.log_a_init))
        heads, flops, speedup = check_targets(self.target_heads, self.target_flops, self.target_speedup)
        object.__setattr__(self, "target_heads", heads)
        object.__setattr__(self, "target_flops", flops)
        object.__setattr__(self, "target_speedup", speedup)
        if self.target_heads is not None:
            expect("heads" in self.structures, "target_heads", "'heads' among the gated structures",
                   list(self.structures))
        if self.model_config is not None:
            object.__setattr__(self, "model_config", _as_bert_config(self.model_config, "model_params['config']"))
        object.__setattr__(self, "budget_warmup_steps",
                           check_int(self.budget_warmup_steps, "budget_warmup_steps", minimum=0))
        object.__setattr__(self, "budget_lr", check_number(self.budget_lr, "budget_lr", minimum=0, strict=True,
                                                           expected="a positive number"))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", minimum=0, optional=True))

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "PrunerConfig":
        """Map the inner ``"config"`` dict of the factory call onto the fields (validated by the class)."""
        expect(isinstance(config, Mapping), "config", "a dict", config)
        unknown = sorted(set(config) - set(_KNOWN_KEYS))
        if unknown:
            raise LRPPruneError(f"config: unknown keys {unknown}; known keys are {list(_KNOWN_KEYS)}")
        expect("l0_penalty" in config or any(config.get(k) is not None for k in _TARGETS), "l0_penalty",
               "a number >= 0 (required unless a target is given)", "no l0_penalty key")
        limits = config.get("stretch_limits", (-0.1, 1.1))
        gate = GateSettings(temperature=config.get("temperature", 0.33),
                            stretch_limits=tuple(limits) if isinstance(limits, list) else limits,
                            eps=config.get("eps", 1e-6), l0_penalty=config.get("l0_penalty", 0.0))
        model_config = None
        for key in ("model_params", "model_config"):
            if key in config:
                params = config[key]
                expect(isinstance(params, Mapping) and "config" in params, key,
                       "a dict with key 'config' holding the BertConfig", params)
                model_config = _as_bert_config(params["config"], f"{key}['config']")
        return cls(gate=gate, log_a_init=config.get("log_a_init", DEFAULT_LOG_A_INIT), model_config=model_config,
                   target_heads=config.get("target_heads"),
                   budget_warmup_steps=config.get("budget_warmup_steps", 100),
                   budget_lr=config.get("budget_lr", 0.001), seed=config.get("seed"),
                   structures=config.get("structures", ("heads",)), target_flops=config.get("target_flops"),
                   cost_seq_length=config.get("cost_seq_length"), target_speedup=config.get("target_speedup"),
                   latency_batch_size=config.get("latency_batch_size", 32), latency_table=config.get("latency_table"))


_KNOWN_KEYS = ("model_params", "model_config", "l0_penalty", "temperature", "stretch_limits", "eps",
               "log_a_init", "target_heads", "budget_warmup_steps", "budget_lr", "seed", "structures",
               "target_flops", "cost_seq_length", "target_speedup", "latency_batch_size", "latency_table")
_TARGETS = ("target_heads", "target_flops", "target_speedup")


def _as_bert_config(value: Any, field: str) -> Any:
    """Accept a BertConfig, a dict of its fields, or any object with layers/heads attributes (ModelZoo's)."""
    if isinstance(value, BertConfig):
        return value
    if isinstance(value, Mapping):
        return BertConfig.from_dict(value)
    ok = all(is_int(getattr(value, a, None)) for a in ("num_hidden_layers", "num_attention_heads"))
    expect(ok, field, "a BertConfig (or an object with num_hidden_layers and num_attention_heads)", value)
    return value


class HeadPruningFactory:
    """Builds a head pruner from the Golden Stick style config."""

    @staticmethod
    def get_pruner(config: Mapping[str, Any]):
        """Return the pruner that ``config`` describes: an :class:`LRPHeadPruner` for
        ``PruningType.LRP``, a :class:`~lrp_prune.pruning.fisher.FisherHeadPruner` for
        ``PruningType.FISHER`` (its inner keys: :class:`~lrp_prune.pruning.fisher.FisherConfig`).

        Args:
            config: ``{"prune_type": PruningType.LRP, "arch_type": SupportedModels.BERT,
                "config": {"model_params": {"config": bert_cfg}, "l0_penalty": 0.0015, ...}}``.
                Optional inner keys: ``temperature`` (0.33), ``stretch_limits`` ((-0.1, 1.1)),
                ``eps`` (1e-6), ``log_a_init`` (3.0), ``target_heads`` (an int or a fraction;
                then ``l0_penalty`` may be omitted), ``budget_warmup_steps`` (100), ``budget_lr``
                (0.001), ``seed`` (of the xavier init), ``structures`` (``["heads"]``; add
                ``"ffn"`` to gate feed-forward units), ``target_flops`` (a fraction of the
                encoder's multiply-adds), ``cost_seq_length``. ``model_config`` is a synonym of
                ``model_params``.

        Raises:
            LRPPruneError: naming the bad key, what was expected and what was received.
        """
        expect(isinstance(config, Mapping), "pruner config", "a dict with prune_type, arch_type, config",
               config)
        missing = [k for k in ("prune_type", "arch_type", "config") if k not in config]
        if missing:
            raise LRPPruneError(f"pruner config: missing keys {missing}; expected prune_type, arch_type, config")
        unknown = sorted(set(config) - {"prune_type", "arch_type", "config"})
        if unknown:
            raise LRPPruneError(f"pruner config: unknown keys {unknown}; known keys are "
                                "['arch_type', 'config', 'prune_type']")
        method = _enum_member(PruningType, config["prune_type"], "prune_type")
        _enum_member(SupportedModels, config["arch_type"], "arch_type")
        if method is PruningType.FISHER:
            from lrp_prune.pruning.fisher import FisherConfig, FisherHeadPruner

            return FisherHeadPruner(FisherConfig.from_dict(config["config"]))
        return LRPHeadPruner(PrunerConfig.from_dict(config["config"]))


def _enum_member(enum_cls: type[enum.Enum], value: Any, key: str) -> enum.Enum:
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        for member in enum_cls:
            if value.upper() in (member.name, member.value):
                return member
    names = [f"{enum_cls.__name__}.{m.name}" for m in enum_cls]
    raise LRPPruneError(f"{key}: expected one of {names}, got {describe(value)}")


class LRPHeadPruner:
    """Voita et al. (2019) head pruning: Hard Concrete gates, an L0 penalty, then slicing.

    Use :class:`HeadPruningFactory` to build one, or ``LRPHeadPruner(PrunerConfig(...))``.

    Attributes:
        config: the :class:`PrunerConfig`.
        last_summary: the :class:`~lrp_prune.pruning.summary.PruningSummary` of the last
            :meth:`convert` (also reachable as ``pruned.prune_summary``).

    Example:
        >>> from lrp_prune import BertConfig, BertModel, ModelGates
        >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
        ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
        >>> pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
        ...                                         "config": {"l0_penalty": 0.01}})
        >>> gated = pruner.apply(BertModel(cfg, is_training=True))
        >>> ModelGates(gated).close([(0, 3), (1, 0), (1, 1)])   # what training would do
        >>> pruned = pruner.convert(gated)                       # gated stays gated
        >>> summary = pruned.prune_summary                        # also pruner.last_summary
        >>> summary.heads_kept, summary.heads_removed, summary.params_before > summary.params_after
        (5, {0: [3], 1: [0, 1]}, True)
    """

    def __init__(self, config: PrunerConfig) -> None:
        expect(isinstance(config, PrunerConfig), "config", "a PrunerConfig", type(config).__name__)
        self.config = config
        self.last_summary = None

    # ------------------------------------------------------------------ apply
    def apply(self, model: nn.Cell) -> nn.Cell:
        """Gate every attention layer (and, with ``structures`` holding ``"ffn"``, every feed-forward
        block) of the BertModel in ``model`` (in place) and return ``model``.

        A bare BertModel then returns ``(sequence_output, pooled_output,
        embedding_table, total_reg)``. Inside a model with a head the BertModel keeps its
        3 outputs so the head runs unchanged; add ``bert.total_reg()`` to your loss
        (:class:`~lrp_prune.network.bert.BertClassifierWithLoss` does it itself). Every other
        parameter keeps its value and name; the only new parameters are the gates'
        ``...attention.attention.gate.log_a`` (and ``...intermediate.gate.log_a``). Build
        optimizers and train wrappers *after* ``apply()``. What it returns has
        ``get_gate_values()`` (a model of your own gets it on that instance), as the original's
        docs call it.

        Each feed-forward gate's L0 term is weighted by the unit's compute in head-equivalents
        (:meth:`unit_cost`), so ``l0_penalty`` keeps its meaning: the price of one open head.

        Raises:
            LRPPruneError: no BertModel or several, an already gated model, or a model that
                does not match ``model_params``.
        """
        cfg_ = self.config
        gates = applicable_gates(model, cfg_.model_config, cfg_.structures)
        bert = gates.bert
        config = bert.config
        rng = np.random.default_rng(cfg_.seed)
        init = cfg_.log_a_init
        if "heads" in cfg_.structures:
            if isinstance(init, np.ndarray):  # a [layers, heads] grid: each layer's row, at the heads it has
                shape = (config.num_hidden_layers, config.num_attention_heads)
                expect(init.shape == shape, "log_a_init", f"a grid of shape {shape} (layers, heads)", init.shape)
                units = dict((i, list(host.units)) for i, host in gates.hosts(HEADS))
                make = lambda i, n: HardConcreteGate(n, cfg_.gate, init[i, units[i]], rng)  # noqa: E731
            else:
                make = lambda _, n: HardConcreteGate(n, cfg_.gate, init, rng)  # noqa: E731
            gates.install(make, HEADS)
        if "ffn" in cfg_.structures:
            ffn_init = DEFAULT_LOG_A_INIT if isinstance(init, np.ndarray) else init  # a grid is the heads'
            cost = self.unit_cost(config)
            gates.install(lambda _, n: HardConcreteGate(n, cfg_.gate, ffn_init, rng, cost=cost), FFN)
        target = self._budget(config)
        if cfg_.target_speedup is not None:
            bert.budget = LatencyBudget(self.latency_table(config), cfg_.target_speedup, config.heads_per_layer,
                                        config.units_per_layer, cfg_.budget_warmup_steps, cfg_.budget_lr)
            target = (bert.budget.target, bert.budget.total_heads)
        elif target is not None:
            bert.budget = HeadBudget(*target, cfg_.budget_warmup_steps, cfg_.budget_lr,
                                     counts_cost=cfg_.target_flops is not None)
        bert.return_reg = model is bert
        if not hasattr(model, "get_gate_values"):  # your own Cell: the method the original's docs call on it
            model.get_gate_values = types.MethodType(_get_gate_values, model)
        refresh_cell(model)
        logger.info("apply: gated %s in %d layers (l0_penalty=%g%s)",
                    " and ".join(f"{n} {s.name}" for s, n in
                                 ((HEADS, config.total_heads), (FFN, config.total_units)) if s.name in cfg_.structures),
                    config.num_hidden_layers, cfg_.gate.l0_penalty,
                    "" if target is None else f", budget {target[0]:g} of {target[1]:g}"
                    + (" head-equivalents" if cfg_.target_flops is not None else
                       " unpruned-layer times" if cfg_.target_speedup is not None else " heads"))
        return model

    def unit_cost(self, config: BertConfig) -> float:
        """One feed-forward unit's multiply-adds over one head's, at ``cost_seq_length`` tokens.

        Example:
            >>> from lrp_prune import BertConfig
            >>> minilm = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
            ...                     intermediate_size=1536, seq_length=64)
            >>> pruner = LRPHeadPruner(PrunerConfig(GateSettings(l0_penalty=0.01), structures=("heads", "ffn")))
            >>> round(pruner.unit_cost(minilm), 4)   # 2 * 384 / (4 * 384 * 32 + 2 * 64 * 32)
            0.0144
        """
        seq = self.config.cost_seq_length or config.seq_length
        return config.unit_macs(seq) / config.head_macs(seq)

    def latency_table(self, config: BertConfig):
        """The layer latency table of ``config``'s shapes at ``latency_batch_size`` and ``cost_seq_length``:
        the one given, else the cached measurement of this machine (measured once, about a minute)."""
        if self.config.latency_table is not None:
            return self.config.latency_table
        from lrp_prune.pruning.latency import cached_layer_table

        return cached_layer_table(config, self.config.latency_batch_size,
                                  self.config.cost_seq_length or config.seq_length)

    def _budget(self, config: BertConfig) -> tuple[float, float] | None:
        """``(target, total)`` of the budget in what it counts (heads, or head-equivalents), or ``None``."""
        cfg_ = self.config
        if cfg_.target_heads is not None:
            return resolve_target(cfg_.target_heads, config.total_heads), config.total_heads
        if cfg_.target_flops is None:
            return None
        cost = self.unit_cost(config)
        gated = (config.total_heads if "heads" in cfg_.structures else 0.0) + \
            (config.total_units * cost if "ffn" in cfg_.structures else 0.0)
        fixed = config.total_heads + config.total_units * cost - gated  # the compute no gate can remove
        target = cfg_.target_flops * (config.total_heads + config.total_units * cost) - fixed
        expect(target > 0, "target_flops",
               f"more than the share of compute the ungated structures keep ({fixed / (gated + fixed):.3f})",
               cfg_.target_flops)
        return target, gated

    # ------------------------------------------------------------------ the target budget
    @staticmethod
    def expected_open(model: nn.Cell) -> float:
        """L_C: the expected number of open heads of the gated BertModel in ``model``."""
        return ModelGates(model, "expected_open").expected_open(HEADS)

    def update_budget(self, model: nn.Cell) -> dict[str, Any]:
        """Call after every optimizer step in ``target_heads`` mode: one ascent step of the multipliers.

        Returns the controller state (``expected_open``, ``target_now``, ``lambda_1``, ``lambda_2``);
        in ``l0_penalty`` mode only ``expected_open``. With ``target_flops``, ``expected_open`` is the
        expected open compute in head-equivalents.
        """
        gates = ModelGates(model, "update_budget")
        budget = gates.bert.budget
        if budget is not None and budget.counts_latency:
            return budget.update_layers(*_expected_widths(gates))
        expected = gates.expected_cost() if budget is not None and budget.counts_cost else gates.expected_open(HEADS)
        if budget is None:
            return {"expected_open": expected}
        return budget.update(expected)

    # ------------------------------------------------------------------ reading gates
    @staticmethod
    def get_gate_values(model: nn.Cell) -> np.ndarray:
        """Deterministic gates ``[num_layers, num_heads]`` of the BertModel in ``model``."""
        return ModelGates(model, "get_gate_values").values(HEADS)

    @staticmethod
    def heads_to_prune(model: nn.Cell) -> dict[int, list[int]]:
        """``{layer: [original head indices]}`` that ``convert()`` would leave out: closed gates
        (deterministic gate exactly 0) and heads the model no longer has; every layer present."""
        return ModelGates(model, "heads_to_prune").to_prune(HEADS)

    # ------------------------------------------------------------------ convert
    def convert(self, gated: nn.Cell, save_dir_path: str | Path | None = None, *,
                enforce_target: bool = True, inplace: bool = False) -> nn.Cell:
        """The pruned model: every head whose deterministic gate is 0 removed, the kept gates folded into W_O.

        ``gated`` is left as it was (still gated, same values): evaluate it, train it further
        or convert it again. The returned model is new, of the same kind (a BertModel with 3
        outputs and no gates, or the same model with a head; see
        :mod:`lrp_prune.pruning.convert` for how a model of your own is copied). In eval it
        computes what the gated model computes in eval.

        Args:
            gated: what :meth:`apply` returned (possibly trained).
            save_dir_path: optional directory; receives ``gated_model.ckpt``,
                ``heads_to_prune.pkl``/``.json``, ``pruned_config.json``,
                ``pruned_model.ckpt`` and ``summary.json``, committed all at once
                (:mod:`lrp_prune.io.store`). A failed save changes neither model.
            enforce_target: in ``target_heads`` mode, keep exactly the target: when more heads
                are open, the ``T`` with the highest P(open) are kept (a warning names the ones
                removed; call :meth:`project_to_target` first to make the gated model match);
                when fewer are open, raise with the numbers. ``False`` keeps whatever the gates say.
            inplace: turn ``gated`` itself into the pruned model (the original's behaviour),
                for a model that cannot be copied.

        Returns:
            The pruned model; its :class:`~lrp_prune.pruning.summary.PruningSummary` is
            ``pruned.prune_summary`` (also ``pruner.last_summary``, the original's place).

        Example:
            >>> from lrp_prune import BertConfig, BertModel
            >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
            ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
            >>> pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
            ...                                         "config": {"l0_penalty": 0.01}})
            >>> gated = pruner.apply(BertModel(cfg, is_training=False))
            >>> pruned = pruner.convert(gated)
            >>> pruned is gated, gated.is_gated, pruned.prune_summary.heads_kept
            (False, True, 8)
        """
        gates = ModelGates(gated, "convert")
        if not gates.is_gated:
            raise LRPPruneError("convert: expected a model gated by apply(), got an ungated model")
        closed = {}
        if gates.bert.budget is not None and enforce_target:
            closed = _target_projection(gates, "convert")["closed_by_structure"]
        pruned = convert_gated(gated, save_dir_path, inplace=inplace, closed=closed)
        self.last_summary = pruned.prune_summary
        return pruned

    def project_to_target(self, model: nn.Cell) -> dict[str, Any]:
        """In ``target_heads`` mode, close the lowest-ranked open heads of the gated model so exactly
        the target stays open (``convert()`` removes the same heads without changing the gated model).

        Call it before evaluating the gated model so the gated and pruned evaluations see the
        same heads. Returns ``{"open_before": n, "target": T, "closed": [(layer, head), ...]}``
        (empty outside target mode).
        """
        gates = ModelGates(model, "project_to_target")
        if gates.bert.budget is None:
            return {}
        projection = _target_projection(gates, "project_to_target")
        for name, units in projection["closed_by_structure"].items():
            gates.close(units, name)
        return projection


def applicable_gates(model: nn.Cell, model_config: Any = None, structures=("heads",)) -> ModelGates:
    """The :class:`ModelGates` of a model any pruner's ``apply()`` may gate: one BertModel, no gates yet,
    at least one unit of each structure to gate, and (when given) layers and heads matching ``model_config``."""
    gates = ModelGates(model, "apply")
    if gates.is_gated:
        raise LRPPruneError("apply: expected an ungated model, got a model that apply() already gated")
    config = gates.config
    if model_config is not None:
        got = (config.num_hidden_layers, config.num_attention_heads)
        want = (model_config.num_hidden_layers, model_config.num_attention_heads)
        expect(got == want, "model_params['config']", f"a config matching the model's (layers, heads) = {got}", want)
    if "heads" in structures:
        expect(config.total_heads > 0, "apply", "a model with at least one head", "a model with no heads left")
    if "ffn" in structures:
        expect(config.total_units > 0, "apply", "a model with at least one feed-forward unit",
               "a model with no feed-forward units left")
    return gates


def _get_gate_values(self: nn.Cell) -> np.ndarray:
    """Deterministic gates ``[num_layers, num_attention_heads]`` of the BertModel inside (missing heads 0)."""
    return ModelGates(self, "get_gate_values").values(HEADS)


def _expected_widths(gates: ModelGates) -> tuple[np.ndarray, np.ndarray]:
    """Expected open heads and FFN units of every layer (an ungated structure counts what the layer has)."""
    config = gates.config
    out = []
    for structure, fixed in ((HEADS, config.heads_per_layer), (FFN, config.units_per_layer)):
        if gates.gated(structure):
            out.append(np.nan_to_num(np.nansum(gates.prob_open(structure, clip=True), axis=1)))
        else:
            out.append(np.asarray(fixed, dtype=float))
    return out[0], out[1]


def _latency_projection(gates: ModelGates, caller: str) -> dict[str, Any]:
    """Open units in order of P(open), each kept while the predicted time stays within the budget."""
    budget, config = gates.bert.budget, gates.config
    counts = {}
    candidates = []
    for structure, fixed in ((HEADS, config.heads_per_layer), (FFN, config.units_per_layer)):
        if gates.gated(structure):
            counts[structure.name] = np.zeros(config.num_hidden_layers)
            p_open, values = gates.prob_open(structure), gates.values(structure, missing=np.nan)
            candidates += [(p_open[lu], values[lu], structure.name, *lu) for lu in gates.open_units(structure)]
        else:
            counts[structure.name] = np.asarray(fixed, dtype=float)
    ranked = sorted(candidates, key=lambda c: (c[0], c[1], c[3], c[4]), reverse=True)
    layer_time = [budget.table.at(counts["heads"][i], counts["ffn"][i]) / budget.unit_time
                  for i in range(config.num_hidden_layers)]
    total, dropped = sum(layer_time), []
    for c in ranked:
        name, layer = c[2], c[3]
        counts[name][layer] += 1
        new = budget.table.at(counts["heads"][layer], counts["ffn"][layer]) / budget.unit_time
        if total - layer_time[layer] + new <= budget.target + 1e-9:
            total += new - layer_time[layer]
            layer_time[layer] = new
        else:
            counts[name][layer] -= 1
            dropped.append(c)
    by_structure: dict[str, list[tuple[int, int]]] = {}
    for c in dropped:
        by_structure.setdefault(c[2], []).append((int(c[3]), int(c[4])))
    if dropped:
        logger.warning("%s: closing %s beyond the target_speedup budget (predicted time %.3f of %.3f unpruned-layer "
                       "times kept); convert(..., enforce_target=False) keeps every open unit instead", caller,
                       ", ".join(f"{len(v)} {STRUCTURES[k].unit}s" for k, v in by_structure.items()), total,
                       budget.total_heads)
    return {"open_before": len(ranked), "target": budget.target, "predicted": total,
            "closed": by_structure.get("heads", []), "closed_by_structure": by_structure}


def _target_projection(gates: ModelGates, caller: str) -> dict[str, Any]:
    """The open units beyond the budget, ranked by P(open) (ties: by eval gate); nothing is changed.

    Heads budget: the open heads beyond ``target`` (fewer open heads than the target is an error).
    Compute budget (a ceiling): open units of every gated structure are kept in order of P(open)
    while they fit in the target compute.
    """
    budget = gates.bert.budget
    if budget.counts_latency:
        return _latency_projection(gates, caller)
    target = budget.target
    candidates = []  # (P(open), eval gate, structure, layer, unit, cost)
    for structure in (gates.gated_structures() if budget.counts_cost else [HEADS]):
        p_open, values = gates.prob_open(structure), gates.values(structure, missing=np.nan)
        cost = gates.cost(structure) if budget.counts_cost else 1.0
        candidates += [(p_open[lu], values[lu], structure.name, *lu, cost) for lu in gates.open_units(structure)]
    ranked = sorted(candidates, key=lambda c: (c[0], c[1], c[3], c[4]), reverse=True)
    open_total = sum(c[5] for c in ranked)
    if open_total < target - 1e-6 and not budget.counts_cost:  # a compute budget is a ceiling, not a count
        raise LRPPruneError(
            f"{caller}: expected at least target_heads={target} open heads, got {open_total:g} (the controller "
            "over-shot: train longer, lower budget_lr, or convert(..., enforce_target=False) to keep them)")
    kept, dropped = 0.0, []
    for c in ranked:
        if kept + c[5] <= target + 1e-6:
            kept += c[5]
        else:
            dropped.append(c)
    by_structure: dict[str, list[tuple[int, int]]] = {}
    for c in dropped:
        by_structure.setdefault(c[2], []).append((int(c[3]), int(c[4])))
    if dropped and budget.counts_cost:
        logger.warning("%s: %s open beyond the target_flops budget (%g head-equivalents); keeping the highest "
                       "P(open) that fit and closing the rest (to keep every open unit instead, convert(..., "
                       "enforce_target=False); to let the gates settle on the budget themselves, train longer or "
                       "raise budget_lr)", caller, ", ".join(f"{len(v)} {STRUCTURES[k].unit}s" for k, v in by_structure.items()),
                       target)
    elif dropped:
        logger.warning("%s: %d heads have open gates but target_heads=%d; keeping the %d with the highest "
                       "P(open) and closing %s (to keep every open head instead, convert(..., "
                       "enforce_target=False); to let the gates settle on the target themselves, train longer "
                       "or raise budget_lr)", caller, len(ranked), target, target, by_structure["heads"])
    return {"open_before": len(ranked) if not budget.counts_cost else open_total, "target": target,
            "closed": by_structure.get("heads", []), "closed_by_structure": by_structure}


def parameter_groups(model: nn.Cell, learning_rate: float | list | None = None, *, log_a_lr: float = 0.1,
                     weight_decay: float = 0.01) -> list[dict]:
    """Optimizer parameter groups: ``log_a`` with its own rate, no decay on LayerNorm/bias/``log_a``.

    Args:
        model: the gated model (or its with-loss wrapper).
        learning_rate: rate of the ordinary weights (a number or a per-step list); ``None``
            uses the optimizer's own.
        log_a_lr: rate of every ``log_a`` (0.1 in the reference).
        weight_decay: decay of the weight matrices and embeddings.

    Returns:
        A list for ``nn.AdamWeightDecay(groups, learning_rate=...)``; the last entry is
        ``{"order_params": ...}`` so parameters keep the model's order.

    Example:
        >>> import mindspore as ms
        >>> from lrp_prune import BertConfig, BertModel, HeadPruningFactory, parameter_groups
        >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
        ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
        >>> gated = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
        ...     "config": {"l0_penalty": 0.01}}).apply(BertModel(cfg, True))
        >>> groups = parameter_groups(gated, 2e-5)
        >>> [len(g["params"]) for g in groups[:3]], groups[2]["lr"]
        ([10, 13, 1], 0.1)
        >>> opt = ms.nn.AdamWeightDecay(groups, learning_rate=2e-5)
    """
    params = model.trainable_params()
    names = {id(p): n for n, p in model.parameters_and_names()}
    gates = [p for p in params if names.get(id(p), p.name).endswith("log_a")]
    rest = [p for p in params if not names.get(id(p), p.name).endswith("log_a")]

    def no_decay(p: Any) -> bool:
        name = names.get(id(p), p.name)
        return "layernorm" in name.lower() or name.endswith(("bias", "beta", "gamma"))

    decay = {"params": [p for p in rest if not no_decay(p)], "weight_decay": weight_decay}
    plain = {"params": [p for p in rest if no_decay(p)], "weight_decay": 0.0}
    if learning_rate is not None:
        decay["lr"] = plain["lr"] = learning_rate
    groups = [decay, plain]
    if gates:
        groups.append({"params": gates, "lr": log_a_lr, "weight_decay": 0.0})
    groups.append({"order_params": params})
    return groups

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
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from mindspore import Tensor, nn

from lrp_prune.config import BertConfig
from lrp_prune.errors import LRPPruneError, describe, expect
from lrp_prune.budget import HeadBudget, resolve_target
from lrp_prune.gate import GateSettings, HardConcreteGate, eval_gate_values, prob_open
from lrp_prune.model import BertModel, _the_bert, prune_heads, refresh_cell

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
#: reference of this method on all-MiniLM-L6-v2/SNLI (DESIGN §2): at an equal number of
#: heads, the open init kept more accuracy than the original's xavier_uniform init
#: (14 heads: 78.4% vs 18 heads: 78.0%). ``log_a_init="xavier_uniform"`` restores the original.
DEFAULT_LOG_A_INIT = 3.0


class PruningType(enum.Enum):
    """Pruning methods the factory knows."""

    LRP = "LRP"


class SupportedModels(enum.Enum):
    """Architectures the factory knows."""

    BERT = "BERT"


_KNOWN_KEYS = ("model_params", "model_config", "l0_penalty", "temperature", "stretch_limits", "eps",
               "log_a_init", "target_heads", "budget_warmup_steps", "budget_lr")


@dataclass(frozen=True)
class PrunerConfig:
    """The validated pruner config.

    Attributes:
        gate: temperature, stretch limits, eps and ``l0_penalty``.
        log_a_init: initial ``log_a`` (a number) or ``"xavier_uniform"``.
        model_config: the BertConfig given as ``model_params``/``model_config`` (optional);
            ``apply()`` checks the model against its layers and heads.
        target_heads: heads to keep (an int, or a fraction in (0, 1) of the model's heads);
            ``None`` is the plain ``l0_penalty`` mode.
        budget_warmup_steps: steps over which the target moves from all heads to ``target_heads``.
        budget_lr: step size of the Lagrange multipliers' ascent.
    """

    gate: GateSettings
    log_a_init: float | str = DEFAULT_LOG_A_INIT
    model_config: Any = None
    target_heads: float | int | None = None
    budget_warmup_steps: int = 100  # a third to a half of a short run: the gates follow the moving target
    budget_lr: float = 0.001  # multipliers move 0.001 * (E - T) per step; 0.01 overshot on MiniLM

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "PrunerConfig":
        """Validate the inner ``"config"`` dict of the factory call."""
        expect(isinstance(config, Mapping), "config", "a dict", config)
        unknown = sorted(set(config) - set(_KNOWN_KEYS))
        if unknown:
            raise LRPPruneError(f"config: unknown keys {unknown}; known keys are {list(_KNOWN_KEYS)}")
        target = config.get("target_heads")
        if target is not None:
            ok = isinstance(target, (int, float)) and not isinstance(target, bool) and (
                (isinstance(target, float) and 0 < target < 1) or (float(target).is_integer() and target >= 1))
            expect(ok, "target_heads", "an int >= 1 or a fraction in (0, 1)", target)
        expect("l0_penalty" in config or target is not None, "l0_penalty",
               "a number >= 0 (required unless target_heads is given)", "no l0_penalty key")
        penalty = config.get("l0_penalty", 0.0)
        expect(isinstance(penalty, (int, float)) and not isinstance(penalty, bool), "l0_penalty",
               "a number >= 0", penalty)
        gate = GateSettings(
            temperature=config.get("temperature", 0.33),
            stretch_limits=tuple(config["stretch_limits"]) if isinstance(config.get("stretch_limits"), (list, tuple))
            else config.get("stretch_limits", (-0.1, 1.1)),
            eps=config.get("eps", 1e-6),
            l0_penalty=float(penalty))
        log_a_init = config.get("log_a_init", DEFAULT_LOG_A_INIT)
        if isinstance(log_a_init, str):
            expect(log_a_init == "xavier_uniform", "log_a_init", "a number or 'xavier_uniform'", log_a_init)
        else:
            expect(isinstance(log_a_init, (int, float)) and not isinstance(log_a_init, bool)
                   and math.isfinite(log_a_init), "log_a_init", "a finite number or 'xavier_uniform'", log_a_init)
        model_config = None
        for key in ("model_params", "model_config"):
            if key in config:
                params = config[key]
                expect(isinstance(params, Mapping) and "config" in params, key,
                       "a dict with key 'config' holding the BertConfig", params)
                model_config = _as_bert_config(params["config"], f"{key}['config']")
        warmup = config.get("budget_warmup_steps", 100)
        expect(isinstance(warmup, int) and not isinstance(warmup, bool) and warmup >= 0, "budget_warmup_steps",
               "an integer >= 0", warmup)
        budget_lr = config.get("budget_lr", 0.001)
        expect(isinstance(budget_lr, (int, float)) and not isinstance(budget_lr, bool) and budget_lr > 0
               and math.isfinite(budget_lr), "budget_lr", "a positive number", budget_lr)
        return cls(gate=gate, log_a_init=log_a_init, model_config=model_config, target_heads=target,
                   budget_warmup_steps=warmup, budget_lr=float(budget_lr))


def _as_bert_config(value: Any, field: str) -> Any:
    """Accept a BertConfig, a dict of its fields, or any object with layers/heads attributes (ModelZoo's)."""
    if isinstance(value, BertConfig):
        return value
    if isinstance(value, Mapping):
        return BertConfig.from_dict(value)
    ok = all(isinstance(getattr(value, a, None), int) for a in ("num_hidden_layers", "num_attention_heads"))
    expect(ok, field, "a BertConfig (or an object with num_hidden_layers and num_attention_heads)", value)
    return value


class HeadPruningFactory:
    """Builds a head pruner from the Golden Stick style config."""

    @staticmethod
    def get_pruner(config: Mapping[str, Any]) -> "LRPHeadPruner":
        """Return the pruner that ``config`` describes.

        Args:
            config: ``{"prune_type": PruningType.LRP, "arch_type": SupportedModels.BERT,
                "config": {"model_params": {"config": bert_cfg}, "l0_penalty": 0.0015, ...}}``.
                Optional inner keys: ``temperature`` (0.33), ``stretch_limits`` ((-0.1, 1.1)),
                ``eps`` (1e-6), ``log_a_init`` (3.0), ``target_heads`` (an int or a fraction;
                then ``l0_penalty`` may be omitted), ``budget_warmup_steps`` (100), ``budget_lr``
                (0.001). ``model_config`` is a synonym of ``model_params``.

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
        prune_type = _enum_member(PruningType, config["prune_type"], "prune_type")
        arch_type = _enum_member(SupportedModels, config["arch_type"], "arch_type")
        assert prune_type is PruningType.LRP and arch_type is SupportedModels.BERT
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
    """

    def __init__(self, config: PrunerConfig) -> None:
        expect(isinstance(config, PrunerConfig), "config", "a PrunerConfig", type(config).__name__)
        self.config = config

    # ------------------------------------------------------------------ apply
    def apply(self, model: nn.Cell) -> nn.Cell:
        """Gate every attention layer of the BertModel in ``model`` (in place) and return ``model``.

        A bare BertModel then returns ``(sequence_output, pooled_output,
        embedding_table, total_reg)``. Inside a model with a head the BertModel keeps its
        3 outputs so the head runs unchanged; add ``bert.total_reg()`` to your loss
        (:class:`~lrp_prune.model.BertClassifierWithLoss` does it itself). Every other
        parameter keeps its value and name; the only new parameters are the
        ``...attention.attention.gate.log_a``. Build optimizers and train wrappers
        *after* ``apply()``.

        Raises:
            LRPPruneError: no BertModel or several, an already gated model, or a model that
                does not match ``model_params``.
        """
        bert = _the_bert(model, "apply")
        if bert.is_gated:
            raise LRPPruneError("apply: expected an ungated model, got a model that apply() already gated")
        expected = self.config.model_config
        if expected is not None:
            got = (bert.config.num_hidden_layers, bert.config.num_attention_heads)
            want = (expected.num_hidden_layers, expected.num_attention_heads)
            expect(got == want, "model_params['config']",
                   f"a config matching the model's (layers, heads) = {got}", want)
        total = bert.config.total_heads
        expect(total > 0, "apply", "a model with at least one head", "a model with no heads left")
        target = None
        if self.config.target_heads is not None:
            target = resolve_target(self.config.target_heads, total)
        for layer in bert.bert_encoder.layers:
            attention = layer.attention.attention
            if attention.num_heads:
                attention.gate = HardConcreteGate(attention.num_heads, self.config.gate, self.config.log_a_init)
        if target is not None:
            bert.budget = HeadBudget(target, total, self.config.budget_warmup_steps, self.config.budget_lr)
        bert.is_gated = True
        bert.return_reg = model is bert
        refresh_cell(model)
        logger.info("apply: gated %d heads in %d layers (l0_penalty=%g%s)", total, bert.config.num_hidden_layers,
                    self.config.gate.l0_penalty, "" if target is None else f", target {target} heads")
        return model

    # ------------------------------------------------------------------ the target budget
    @staticmethod
    def expected_open(model: nn.Cell) -> float:
        """L_C: the expected number of open heads of the gated BertModel in ``model``."""
        bert = _the_bert(model, "expected_open")
        total = 0.0
        for _, attention in bert.gate_cells():
            settings = attention.gate.settings
            total += float(np.clip(prob_open(attention.gate.log_a.asnumpy(), settings), settings.eps,
                                   1 - settings.eps).sum())
        return total

    def update_budget(self, model: nn.Cell) -> dict[str, Any]:
        """Call after every optimizer step in ``target_heads`` mode: one ascent step of the multipliers.

        Returns the controller state (``expected_open``, ``target_now``, ``lambda_1``, ``lambda_2``);
        in ``l0_penalty`` mode only ``expected_open``.
        """
        bert = _the_bert(model, "update_budget")
        expected = self.expected_open(model)
        if bert.budget is None:
            return {"expected_open": expected}
        return bert.budget.update(expected)

    # ------------------------------------------------------------------ reading gates
    @staticmethod
    def get_gate_values(model: nn.Cell) -> np.ndarray:
        """Deterministic gates ``[num_layers, num_heads]`` of the BertModel in ``model``."""
        return _the_bert(model, "get_gate_values").get_gate_values()

    @staticmethod
    def heads_to_prune(model: nn.Cell) -> dict[int, list[int]]:
        """``{layer: [original head indices]}`` that ``convert()`` would leave out: closed gates
        (deterministic gate exactly 0) and heads the model no longer has; every layer present."""
        bert = _the_bert(model, "heads_to_prune")
        gates = bert.get_gate_values()
        return {i: [h for h in range(gates.shape[1]) if gates[i, h] == 0.0] for i in range(gates.shape[0])}

    # ------------------------------------------------------------------ convert
    def convert(self, gated: nn.Cell, save_dir_path: str | Path | None = None, *,
                enforce_target: bool = True) -> nn.Cell:
        """Remove every head whose deterministic gate is 0 and fold the kept gates into W_O.

        ``gated`` is changed in place into the pruned model of the same kind (a
        BertModel with 3 outputs and no gates, or the same model with a head) and
        returned. In eval it computes what the gated model computes in eval.

        Args:
            gated: what :meth:`apply` returned (possibly trained).
            save_dir_path: optional directory; receives ``gated_model.ckpt``,
                ``heads_to_prune.pkl``/``.json``, ``pruned_config.json``,
                ``pruned_model.ckpt`` and ``summary.json`` (each written atomically).
            enforce_target: in ``target_heads`` mode, make the kept count exactly the target:
                when more heads are open, keep the ``T`` with the highest P(open) and close
                the rest in the gated model first (a warning names them), so pruned still
                equals gated; when fewer are open, raise with the numbers.
                ``False`` keeps whatever the gates say.

        Returns:
            The pruned model. Its summary is in ``pruner.last_summary``.
        """
        from lrp_prune.checkpoint import check_writable_dir
        from lrp_prune.serialization import save_pruned
        from lrp_prune.summary import PruningSummary

        bert = _the_bert(gated, "convert")
        if not bert.is_gated:
            raise LRPPruneError("convert: expected a model gated by apply(), got an ungated model")
        if bert.budget is not None and enforce_target:
            self._project_to_target(bert)
        gated_params = None
        if save_dir_path is not None:
            save_dir = check_writable_dir(save_dir_path)
            # written by save_pruned together with the rest, so an interrupted save loses nothing
            gated_params = {name: p.asnumpy().copy() for name, p in gated.parameters_and_names()}
        gates = bert.get_gate_values()
        heads = self.heads_to_prune(gated)
        before_config = bert.config
        params_before = _count_params(gated)
        for _, attention in bert.gate_cells():
            attention.gate = None
        bert.is_gated = False
        bert.return_reg = False
        bert.budget = None
        prune_heads(gated, heads, gate_values=gates)
        summary = PruningSummary.build(before_config, bert.config, params_before, _count_params(gated), gates)
        self.last_summary = summary
        logger.info("convert: kept %d of %d heads", bert.config.total_heads,
                    before_config.num_hidden_layers * before_config.num_attention_heads)
        if save_dir_path is not None:
            save_pruned(gated, save_dir, heads_to_prune=heads, summary=summary, gated_params=gated_params)
        return gated


    def project_to_target(self, model: nn.Cell) -> dict[str, Any]:
        """In ``target_heads`` mode, close the lowest-ranked open heads so exactly the target stays open.

        ``convert()`` does this itself; call it before evaluating the gated model so the
        gated and pruned evaluations see the same heads. Returns ``{"open_before": n,
        "target": T, "closed": [(layer, head), ...]}`` (empty outside target mode).
        """
        bert = _the_bert(model, "project_to_target")
        if bert.budget is None:
            return {}
        return self._project_to_target(bert)

    @staticmethod
    def _project_to_target(bert: BertModel) -> dict[str, Any]:
        """Keep exactly ``budget.target`` open heads, ranked by P(open); see :meth:`convert`."""
        target = bert.budget.target
        ranked = []  # (P(open), gate, layer, position)
        for i, attention in bert.gate_cells():
            log_a = attention.gate.log_a.asnumpy()
            p_open = prob_open(log_a, attention.gate.settings)
            gates = eval_gate_values(log_a, attention.gate.settings.stretch_limits)
            ranked += [(p_open[j], gates[j], i, j) for j in range(len(log_a))]
        n_open = sum(1 for _, g, _, _ in ranked if g > 0)
        if n_open == target:
            return {"open_before": n_open, "target": target, "closed": []}
        if n_open < target:
            raise LRPPruneError(
                f"convert: expected at least target_heads={target} open heads, got {n_open} (the controller "
                "over-shot: train longer, lower budget_lr, or convert(..., enforce_target=False) to keep them)")
        ranked.sort(key=lambda r: (r[0], r[1]), reverse=True)
        dropped = [(i, bert.bert_encoder.layers[i].attention.attention.heads[j]) for _, g, i, j in ranked[target:]
                   if g > 0]
        logger.warning("convert: %d heads have open gates but target_heads=%d; keeping the %d with the highest "
                       "P(open) and closing %s", n_open, target, target, dropped)
        cells = dict(bert.gate_cells())
        for _, g, i, j in ranked[target:]:
            if g > 0:
                gate = cells[i].gate
                log_a = gate.log_a.asnumpy().copy()
                log_a[j] = gate.settings.log_a_closed - 8.0  # about -10: closed, and its gradient ~0
                gate.log_a.set_data(Tensor(log_a))
        return {"open_before": n_open, "target": target, "closed": dropped}


def _count_params(model: nn.Cell) -> int:
    return int(sum(p.size for name, p in model.parameters_and_names() if not name.endswith("log_a")))


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

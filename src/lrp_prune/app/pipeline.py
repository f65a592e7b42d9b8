"""The end-to-end pruning flow, as phase functions passing typed values.

Shared by ``samples/run_sample_bert.py``, ``lrp-prune prune`` and ``lrp-prune demo``::

    load_model -> load_data -> finetune -> evaluate (start) -> gate -> train_gated -> train_control
      -> evaluate (gated) -> convert -> evaluate (pruned) -> evaluate (control) -> measure_latency
      -> RunReport

With ``method="fisher"`` the middle is retraining-free (:func:`prune_retraining_free`):
``evaluate (start) -> importance, mask search, mask tuning -> evaluate (masked) -> convert ->
evaluate (pruned)``; no step is trained, so the start itself is the equal-budget reference.

Each phase takes the options and what earlier phases returned, and returns a small
dataclass; :func:`run_prune` composes them. The gated phase and the control arm continue the
fine-tuning's stream of batches (the same batches, in the same order, for both), and the
control trains the ungated start as long as the gated phase (:mod:`lrp_prune.app.controls`). The process-wide MindSpore state (mode,
device, seed, data parallelism) is set by the caller: see :mod:`lrp_prune.app.runtime`.

Example:
    >>> opts = PruneOptions(task="mnli", data_dir="/data/MNLI", model="bert.json",
    ...                     load_checkpoint_path="bert.ckpt", vocab_file="vocab.txt")
    >>> gated_steps(opts, {"lengths": np.full(100, 10), "x": np.zeros(100)})
    3
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import mindspore as ms
import numpy as np
from mindspore import nn

from lrp_prune.app.options import MINILM_NAME, PruneOptions, options_dict
from lrp_prune.app.runtime import Runtime, current_runtime
from lrp_prune.data.batching import batch_stream, batches, num_batches, shard
from lrp_prune.data.examples import NLI_LABELS, grouped_split
from lrp_prune.data.readers import load_task
from lrp_prune.data.tokenization import PairTokenizer, encode_examples
from lrp_prune.errors import LRPPruneError, expect
from lrp_prune.io.checkpoint import load_checkpoint, load_param_dict, param_dict, save_checkpoint
from lrp_prune.network.bert import BertClassifier, BertClassifierWithLoss, find_bert
from lrp_prune.network.config import BertConfig
from lrp_prune.network.gates import FFN, HEADS, ModelGates
from lrp_prune.pruning.lrp import LRPHeadPruner, PrunerConfig, parameter_groups
from lrp_prune.pruning.summary import PruningSummary
from lrp_prune.training.evaluate import evaluate_accuracy
from lrp_prune.network.compat import copy_cell
from lrp_prune.training.distill import DistillationLoss, DistilledClassifierWithLoss
from lrp_prune.training.optim import adamw, linear_schedule, reset_adamw
from lrp_prune.training.step import DynamicLossScale, TrainStep
from lrp_prune.training.timing import compare_latency

__all__ = [
    "PruneOptions", "MINILM_NAME", "RunReport", "run_prune",
    "Loaded", "TaskData", "Finetuning", "Evaluation", "Gating", "GateHistory", "GatedTraining", "Control",
    "Conversion", "Latency", "TeacherLogits", "Trainer", "load_model", "load_data", "finetune", "evaluate", "gate",
    "train_gated", "train_control", "convert", "measure_latency", "gated_steps", "stream", "load_classifier",
    "encode_split", "linear_schedule", "RetrainingFree", "prune_retraining_free", "importance_sample",
]

logger = logging.getLogger(__name__)

#: The old name of :func:`lrp_prune.data.tokenization.encode_examples`.
encode_split = encode_examples


# ------------------------------------------------------------------------------------ phase values
@dataclass
class Loaded:
    """The model to prune and its tokenizer.

    Attributes:
        classifier: the classifier (weights loaded, maybe not fine-tuned yet).
        model_dir: the HuggingFace directory it came from (``None`` for a BertConfig JSON).
        tokenizer: its WordPiece tokenizer.
    """

    classifier: BertClassifier
    model_dir: Path | None
    tokenizer: PairTokenizer

    @property
    def config(self) -> BertConfig:
        """The backbone's config."""
        return self.classifier.bert.config


@dataclass
class TaskData:
    """Tokenized training and evaluation arrays (``input_ids`` ..., ``lengths``, ``label_ids``)."""

    train: dict[str, np.ndarray]
    evaluation: dict[str, np.ndarray]
    eval_split: str
    skipped_rows: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> reason -> rows
    label_names: tuple[str, ...] = NLI_LABELS
    truncated: dict[str, float] = field(default_factory=dict)  # split -> share of rows cut at max_seq_length

    @property
    def train_pairs(self) -> int:
        """Training examples (of this rank)."""
        return len(self.train["label_ids"])

    @property
    def eval_pairs(self) -> int:
        """Evaluated examples."""
        return len(self.evaluation["label_ids"])


@dataclass
class Finetuning:
    """What the plain fine-tuning phase did (nothing, trained, or loaded a saved start).

    ``trainer`` is kept so the control arm can train on in the same compiled train step.
    """

    steps: int = 0
    loss_last: float | None = None
    seconds: float | None = None
    loaded_from: str | None = None
    trainer: Any = field(default=None, repr=False, compare=False)


@dataclass
class Evaluation:
    """Accuracy (in [0, 1]) and predictions of one model on the evaluation pairs."""

    accuracy: float
    predictions: np.ndarray
    seconds: float


@dataclass
class Gating:
    """The gated model, its pruner and its planned steps."""

    pruner: LRPHeadPruner
    gated: BertClassifier
    steps: int
    importance: Any = None  # the HeadImportance the gates started from (log_a_init="importance")

    @property
    def target(self) -> int | float | None:
        """The budget in target mode: heads, or head-equivalents of compute with ``target_flops``
        (``None`` in ``l0_penalty`` mode)."""
        budget = self.gated.bert.budget
        return None if budget is None else budget.target

    @property
    def target_heads(self) -> int | None:
        """The head budget (``None`` without ``target_heads``)."""
        budget = self.gated.bert.budget
        return None if budget is None or budget.counts_cost else budget.target


@dataclass
class GateHistory:
    """The gates over the gated phase, every ``gate_log_every`` steps (what the pictures draw).

    Attributes:
        steps: the recorded steps.
        p_closed: P(gate = 0) per step, ``[layers][heads]`` (``None`` for a head the model lacks).
        expected_open: L_C per step.
        loss: training loss per step.
        target_now / lambda_1 / lambda_2: the budget controller's state (``None`` in l0 mode).
        ffn_open: expected open feed-forward units per layer per step (empty without FFN gates).
    """

    steps: list[int] = field(default_factory=list)
    p_closed: list = field(default_factory=list)
    expected_open: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    target_now: list = field(default_factory=list)
    lambda_1: list = field(default_factory=list)
    lambda_2: list = field(default_factory=list)
    ffn_open: list = field(default_factory=list)

    def record(self, step: int, gates: ModelGates, loss: float, state: dict[str, Any]) -> None:
        """Append one snapshot of ``gates`` and the controller ``state``."""
        if gates.gated(FFN):
            self.ffn_open.append([round(float(v), 2) for v in np.nansum(gates.prob_open(FFN), axis=1)])
        p_closed = gates.prob_closed(HEADS)
        self.steps.append(step)
        self.p_closed.append(_grid_json(np.round(p_closed, 5)))
        self.expected_open.append(round(float(np.nansum(1.0 - p_closed)), 4))
        self.loss.append(round(loss, 5))
        for key in ("target_now", "lambda_1", "lambda_2"):
            getattr(self, key).append(None if key not in state else round(state[key], 6))

    def to_dict(self) -> dict[str, list]:
        """Plain-JSON dict."""
        return dataclasses.asdict(self)


@dataclass
class GatedTraining:
    """What the gated phase did."""

    steps: int
    seconds: float
    skipped_steps: int
    final_loss_scale: float
    history: GateHistory
    final_log_a: list
    settle_projection: dict[str, Any] | None = None


@dataclass
class RetrainingFree:
    """What the retraining-free method did (``method="fisher"``)."""

    pruner: Any
    masked: nn.Cell
    result: Any  # a lrp_prune.pruning.fisher.FisherResult
    examples: int
    seconds: float  # sample, importance, search, tuning (convert is timed on its own)


@dataclass
class Control:
    """The equal-budget control: the ungated start trained as many steps as the gated phase."""

    accuracy: float
    predictions: np.ndarray
    steps: int
    seconds: float
    cached: bool = False
    key: str = ""


@dataclass
class Conversion:
    """The pruned model and what ``convert()`` removed."""

    pruned: nn.Cell
    summary: PruningSummary
    gate_values: np.ndarray
    predicted_ratio: float | None = None  # the encoder's time pruned / unpruned from the latency table


@dataclass
class Latency:
    """Forward times of the unpruned and pruned classifiers, interleaved in one run."""

    batch_size: int
    seq_length: int
    unpruned_s: list[float]
    pruned_s: list[float]
    predicted_ratio: float | None = None  # the encoder's, from the layer latency table (target_speedup)

    @property
    def ratio(self) -> float:
        """Median pruned time over median unpruned time."""
        return float(np.median(self.pruned_s) / np.median(self.unpruned_s))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (with ``ratio_pruned_over_unpruned``)."""
        out = {"batch_size": self.batch_size, "seq_length": self.seq_length, "unpruned_s": self.unpruned_s,
               "pruned_s": self.pruned_s, "ratio_pruned_over_unpruned": self.ratio}
        if self.predicted_ratio is not None:
            out["predicted_encoder_ratio"] = self.predicted_ratio
        return out


@dataclass
class RunReport:
    """Everything a run measured; :meth:`to_dict` is report.json.

    On a non-zero rank of a data-parallel run only the training fields are set
    (``complete`` is ``False``): rank 0 evaluates, converts and writes.
    """

    options: PruneOptions
    train_pairs: int
    eval_pairs: int
    eval_split: str
    skipped_rows: dict[str, dict[str, int]]
    total_heads: int
    target_heads: int | None
    finetuning: Finetuning
    training: GatedTraining | None  # None: retraining-free (method "fisher")
    rank: int = 0
    retraining_free: RetrainingFree | None = field(default=None, repr=False, compare=False)
    importance: Any = field(default=None, repr=False, compare=False)  # HeadImportance of log_a_init="importance"
    accuracy_before: float | None = None
    accuracy_gated: float | None = None
    accuracy_pruned: float | None = None
    pruned_equals_gated: bool | None = None
    control: Control | None = None
    drop: float | None = None
    drop_ci95: tuple[float, float] | None = None
    drop_reference: str | None = None
    predictions: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)
    label_names: tuple[str, ...] = NLI_LABELS
    truncated: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)  # arm (start, control, pruned) -> classification metrics
    summary: PruningSummary | None = None
    gate_values: list | None = None
    projection: dict[str, Any] | None = None
    latency: Latency | None = None
    timings: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    pruned_model: nn.Cell | None = field(default=None, repr=False, compare=False)

    @property
    def complete(self) -> bool:
        """Whether this report has the evaluation, conversion and latency (rank 0)."""
        return self.summary is not None

    @property
    def heads_kept(self) -> int | None:
        """Heads the pruned model keeps."""
        return None if self.summary is None else self.summary.heads_kept

    @property
    def accuracy_control(self) -> float | None:
        """The equal-budget control's accuracy (``None``: no control was trained)."""
        return None if self.control is None else self.control.accuracy

    @property
    def save_dir_path(self) -> str | None:
        """Where the pruned model was saved (``None``: not saved)."""
        return self.options.pruned_dir

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON (report.json); the pruned model is left out."""
        out: dict[str, Any] = {"options": options_dict(self.options), "train_pairs": self.train_pairs,
                               "eval_pairs": self.eval_pairs, "eval_split": self.eval_split,
                               "data": {"skipped_rows": self.skipped_rows, "truncated_share": self.truncated,
                                        "label_names": list(self.label_names)},
                               "total_heads": self.total_heads, "target_heads": self.target_heads}
        if self.finetuning.loaded_from is not None:
            out["finetuned_from"] = self.finetuning.loaded_from
        if self.finetuning.loss_last is not None:
            out["finetune_loss_last"] = self.finetuning.loss_last
        training = self.training
        out["method"] = self.options.method
        if self.importance is not None:
            out["importance"] = self.importance.to_dict()
        if training is None:
            out.update(gated_steps=0)
            if self.retraining_free is not None:
                out["retraining_free"] = {**self.retraining_free.result.to_dict(),
                                          "examples": self.retraining_free.examples}
        else:
            if training.settle_projection is not None:
                out["settle_projection"] = training.settle_projection
            out.update(gated_steps=training.steps, skipped_steps=training.skipped_steps,
                       final_loss_scale=training.final_loss_scale, gate_history=training.history.to_dict(),
                       final_log_a=training.final_log_a)
        if not self.complete:
            out["rank"] = self.rank
            return out
        if self.projection is not None:
            out["projection"] = self.projection
        s = self.summary
        control = self.control
        out.update(gate_values=self.gate_values, accuracy_before=self.accuracy_before,
                   accuracy_gated=self.accuracy_gated, accuracy_pruned=self.accuracy_pruned,
                   accuracy_control=None if control is None else control.accuracy,
                   control_steps=None if control is None else control.steps,
                   control_cached=None if control is None else control.cached,
                   drop=self.drop, drop_ci95=None if self.drop_ci95 is None else list(self.drop_ci95),
                   drop_reference=self.drop_reference,
                   pruned_equals_gated=self.pruned_equals_gated, heads_kept=s.heads_kept,
                   heads_kept_per_layer=s.heads_kept_per_layer,
                   heads_removed={str(k): v for k, v in s.heads_removed.items()}, kept_heads=s.kept_heads,
                   params_before=s.params_before, params_after=s.params_after,
                   attention_flops_before=s.attention_flops_before, attention_flops_after=s.attention_flops_after,
                   units_kept_per_layer=s.units_kept_per_layer, units_kept=s.units_kept, units_total=s.units_total,
                   encoder_flops_before=s.encoder_flops_before, encoder_flops_after=s.encoder_flops_after,
                   metrics=self.metrics, warnings=s.warnings, latency=self.latency.to_dict(), timings=self.timings,
                   wall_time_s=self.wall_time_s, save_dir_path=self.save_dir_path)
        return out


def _grid_json(grid: np.ndarray) -> list:
    """A float grid as nested lists, NaN as ``None`` (JSON has no NaN)."""
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(grid, float)]


# ------------------------------------------------------------------------------------ load
def _model_dir(options: PruneOptions) -> Path | None:
    if options.model == MINILM_NAME:
        from lrp_prune.io.assets import fetch_minilm

        return fetch_minilm()
    path = Path(options.model)
    return path if path.is_dir() else None


def load_classifier(options: PruneOptions, is_training: bool,
                    label_names: tuple[str, ...] = NLI_LABELS) -> tuple[BertClassifier, Path | None]:
    """Build the classifier the options describe (one output per class of ``label_names``) and load
    its weights; returns ``(classifier, model_dir)``.

    Raises:
        LRPPruneError: a checkpoint whose classifier head has another number of classes than the
            data (naming both), or whose backbone does not match the model.
    """
    model_dir = _model_dir(options)
    if model_dir is not None:
        base = BertConfig.from_hf_config(model_dir)
    else:
        path = Path(options.model)
        expect(path.suffix == ".json" and path.is_file(), "model",
               f"a HuggingFace BERT directory, {MINILM_NAME!r}, or a BertConfig .json file", options.model)
        expect(options.load_checkpoint_path is not None, "load_checkpoint_path",
               "a checkpoint to pair with the BertConfig JSON given as model", None)
        base = BertConfig.from_json_file(path)
    expect(options.max_seq_length <= base.max_position_embeddings, "max_seq_length",
           f"at most the model's max_position_embeddings ({base.max_position_embeddings})", options.max_seq_length)
    cfg = dataclasses.replace(base, seq_length=options.max_seq_length)
    clf = BertClassifier(cfg, is_training and options.dropout, num_labels=len(label_names),
                         pooling=options.resolved_pooling)
    clf.label_names = tuple(label_names)
    if model_dir is not None:
        from lrp_prune.io.hf import read_hf_state

        load_param_dict(clf.bert, read_hf_state(model_dir), strict=True, source=f"model {str(model_dir)!r}")
    if options.load_checkpoint_path is not None:
        from lrp_prune.io.checkpoint import read_checkpoint

        values = read_checkpoint(options.load_checkpoint_path)
        head = next((v for n, v in values.items() if n.endswith("dense_1.weight")), None)
        if head is not None and head.shape[0] != len(label_names):
            raise LRPPruneError(
                f"checkpoint {options.load_checkpoint_path!r}: expected a classifier head with {len(label_names)} "
                f"classes (the data's: {list(label_names)}), got one with {head.shape[0]} (dense_1.weight "
                f"{list(head.shape)}); use a checkpoint fine-tuned on this task, or leave it out to train a new head")
        report = load_param_dict(clf, values, strict=False, source=f"checkpoint {options.load_checkpoint_path!r}")
        backbone_missing = [n for n in report.missing if not n.startswith("dense_1.")]
        if backbone_missing:
            raise LRPPruneError(f"checkpoint {options.load_checkpoint_path!r}: expected every backbone parameter "
                                f"of the model, got {len(backbone_missing)} missing: {backbone_missing[:6]}")
        if not report.loaded:
            raise LRPPruneError(f"checkpoint {options.load_checkpoint_path!r}: expected ModelZoo BERT names, "
                                "got none that match the model")
    return clf, model_dir


def read_task(options: PruneOptions, runtime: Runtime = Runtime()):
    """Phase 1: the task's training and evaluation examples (subset, held out, sharded) and what was skipped.

    Returns:
        ``(train, evaluation, skipped_rows)``: :class:`~lrp_prune.data.examples.TextExamples` twice,
        and ``{split: {reason: rows}}``.
    """
    if options.task == "file":
        splits = load_task("file", **options.file_task)
    else:
        data_dir = options.data_dir
        if data_dir is None:
            expect(options.task == "snli", "data_dir", f"the {options.task.upper()} directory in GLUE's layout "
                                                       "(train.tsv, dev.tsv)", None)
            from lrp_prune.io.assets import fetch_snli

            data_dir = str(fetch_snli())
        expect(Path(data_dir).is_dir(), "data_dir", "an existing directory", data_dir)
        splits = load_task(options.task, data_dir)
    if options.eval_split_name == "validation":  # for choosing recipes: never the reported test pairs
        splits["train"], splits["validation"] = grouped_split(splits["train"], options.validation_fraction,
                                                              options.validation_seed)
    expect(options.eval_split_name in splits, "eval_split", f"one of {sorted(splits)} or 'validation'",
           options.eval_split_name)
    train, evaluation = splits["train"], splits[options.eval_split_name]
    if options.labels is not None and options.task != "file":  # a head trained with its own class order
        train, evaluation = train.relabel(options.labels), evaluation.relabel(options.labels)
    if options.train_limit is not None and options.train_limit < len(train):
        rng = np.random.default_rng(options.seed)
        train = train.subset(np.sort(rng.permutation(len(train))[: options.train_limit]))
    if options.eval_limit is not None and options.eval_limit < len(evaluation):
        keep = np.sort(np.random.default_rng(0).permutation(len(evaluation))[: options.eval_limit])
        evaluation = evaluation.subset(keep)
    if runtime.group > 1:
        train = shard(train, runtime.group, runtime.rank)
    skipped = {name: dict(examples.skipped) for name, examples in splits.items() if examples.skipped}
    return train, evaluation, skipped


def load_model(options: PruneOptions, label_names: tuple[str, ...] = NLI_LABELS) -> Loaded:
    """Phase 2: the classifier (training mode, one output per class) and its tokenizer."""
    clf, model_dir = load_classifier(options, is_training=True, label_names=label_names)
    if options.freeze_word_embeddings:  # out of every optimizer: no gradient, no Adam state
        clf.bert.bert_embedding_lookup.embedding_table.requires_grad = False
    if options.vocab_file is not None:
        tokenizer = PairTokenizer(options.vocab_file, max_seq_length=options.max_seq_length)
    else:
        expect(model_dir is not None, "vocab_file", "a vocab.txt (required when model is a BertConfig JSON)", None)
        tokenizer = PairTokenizer.from_model_dir(model_dir, max_seq_length=options.max_seq_length)
    return Loaded(clf, model_dir, tokenizer)


def encode(options: PruneOptions, loaded: Loaded, train, evaluation, skipped: dict,
           runtime: Runtime = Runtime()) -> TaskData:
    """Phase 3: tokenize both splits; counts the rows cut at ``max_seq_length`` (and advises when many are)."""
    vocab_size = loaded.config.vocab_size
    stats: dict[str, dict] = {"train": {}, options.eval_split_name: {}}
    data = TaskData(encode_examples(loaded.tokenizer, train, options.max_seq_length, vocab_size, stats["train"]),
                    encode_examples(loaded.tokenizer, evaluation, options.max_seq_length, vocab_size,
                                    stats[options.eval_split_name]),
                    options.eval_split_name, skipped, tuple(train.label_names))
    data.truncated = {split: round(st["truncated"] / max(1, st["examples"]), 4) for split, st in stats.items()}
    for split, share in data.truncated.items():
        if share > 0.05:
            logger.warning("%s: %.1f%% of the examples are longer than max_seq_length=%d and lose their end; "
                           "raise --max_seq_length (reviews and documents are longer than NLI pairs)",
                           split, 100 * share, options.max_seq_length)
    logger.info("data: %d training examples (rank %d/%d), %d %s examples, classes %s", data.train_pairs,
                runtime.rank, runtime.group, data.eval_pairs, data.eval_split, list(data.label_names))
    return data


def load_data(options: PruneOptions, loaded: Loaded, runtime: Runtime = Runtime()) -> TaskData:
    """Phases 1 and 3 for an already loaded model: read and tokenize the splits."""
    train, evaluation, skipped = read_task(options, runtime)
    return encode(options, loaded, train, evaluation, skipped, runtime)


# ------------------------------------------------------------------------------------ training
class Trainer:
    """Runs steps of a with-loss classifier: optimizer, loss scaling, checkpoints, a progress bar.

    The compiled train step is kept between :meth:`run` calls, so a later phase can train on in
    the same graph after :func:`~lrp_prune.training.optim.reset_adamw` (the control arm reuses
    the fine-tuning's step this way).
    """

    def __init__(self, options: PruneOptions, net: nn.Cell, optimizer: nn.Optimizer, runtime: Runtime,
                 tag: str, checkpoints: bool = True) -> None:
        self.options = options
        self.checkpoints = checkpoints  # the control arm is a measurement: it saves no checkpoints
        self.net = net
        self.optimizer = optimizer
        self.step_cell = TrainStep(net, optimizer, clip_norm=1.0, reducer=runtime.reducer(optimizer.parameters))
        self.runtime = runtime
        self.tag = tag
        self.losses: list[float] = []
        self.scale = self._new_scale()

    def _new_scale(self) -> DynamicLossScale:
        return DynamicLossScale(self.options.loss_scale, 2.0, self.options.loss_scale_window,
                                enabled=self.options.enable_lossscale)

    def restart(self, tag: str, rates, checkpoints: bool) -> None:
        """Train on from step 0 with a fresh optimizer state and schedule ``rates``, in the same graph."""
        reset_adamw(self.optimizer, rates)
        self.tag, self.losses, self.scale, self.checkpoints = tag, [], self._new_scale(), checkpoints

    def run(self, stream, steps: int, on_step: Callable[[int, float], None] | None = None,
            teacher: Callable[[int, dict], np.ndarray] | None = None) -> list[float]:
        """Train ``steps`` steps on batches from ``stream``; ``teacher(step, batch)`` gives the teacher's
        logits when the network distils; ``on_step(step, loss)`` after each. Returns the losses."""
        from tqdm.auto import tqdm

        self.net.set_train(True)
        self.step_cell.set_train(True)
        bar = tqdm(total=steps, desc=self.tag, disable=not self.options.progress or not self.runtime.is_main,
                   unit="step", dynamic_ncols=True)
        for step in range(1, steps + 1):
            batch = next(stream)
            inputs = [ms.Tensor(batch[k]) for k in ("input_ids", "token_type_ids", "input_mask", "label_ids")]
            if teacher is not None:
                inputs.append(ms.Tensor(teacher(step, batch)))
            loss, finite = self.step_cell(*inputs, self.scale.tensor())
            self.scale.update(bool(finite.asnumpy()))
            value = float(loss.asnumpy())
            self.losses.append(value)
            bar.update(1)
            if step % 10 == 0 or step == steps:
                bar.set_postfix(loss=f"{np.mean(self.losses[-10:]):.3f}", scale=f"{self.scale.scale:g}")
            if step % 50 == 0 or step == steps:
                logger.info("%s step %d/%d: loss %.4f (mean of last 50)", self.tag, step, steps,
                            float(np.mean(self.losses[-50:])))
            if on_step is not None:
                on_step(step, value)
            self._maybe_checkpoint(step)
        bar.close()
        return self.losses

    def _maybe_checkpoint(self, step: int) -> None:
        opts = self.options
        if (not self.checkpoints or not opts.enable_save_ckpt or not self.runtime.is_main
                or step % opts.save_checkpoint_steps):
            return
        directory = Path(opts.save_checkpoint_path or "./ckpt")
        directory.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.net.bert, directory / f"lrp_{self.tag}-{step}.ckpt")
        kept = sorted(glob.glob(str(directory / f"lrp_{self.tag}-*.ckpt")),
                      key=lambda p: int(Path(p).stem.rsplit("-", 1)[1]))
        for old in kept[: -opts.save_checkpoint_num]:
            os.unlink(old)


def stream(options: PruneOptions, data: TaskData, start: int):
    """The training batches from batch ``start`` of the run's one stream (epochs seeded from ``seed``)."""
    return batch_stream(data.train, options.batch_size, seed=options.seed, shuffle=options.do_shuffle,
                        buckets=options.buckets, start=start)


def _schedule(options: PruneOptions, peak: float, steps: int):
    return linear_schedule(peak, steps, options.warmup_fraction) if options.lr_schedule == "linear" else peak


def _loss_cell(options: PruneOptions, classifier: BertClassifier) -> nn.Cell:
    """The with-loss network of a phase: cross-entropy, or the distillation loss."""
    if options.distill:
        return DistilledClassifierWithLoss(classifier, DistillationLoss(options.distill_alpha,
                                                                        options.distill_temperature))
    return BertClassifierWithLoss(classifier)


def finetune(options: PruneOptions, loaded: Loaded, data: TaskData, runtime: Runtime = Runtime(),
             capacity: int | None = None) -> Finetuning:
    """Phase 3: plain fine-tuning to a converged start (or load it from ``finetuned_checkpoint``).

    It trains on the first ``finetune_steps`` batches of the run's stream. ``capacity`` leaves
    room in its optimizer for a later, longer schedule (the control arm reuses its train step).
    """
    clf = loaded.classifier
    if options.finetuned_checkpoint is not None and Path(options.finetuned_checkpoint).is_file():
        load_checkpoint(options.finetuned_checkpoint, clf, strict=True)
        logger.info("loaded the fine-tuned starting point %s (fine-tuning skipped)", options.finetuned_checkpoint)
        return Finetuning(loaded_from=str(options.finetuned_checkpoint))
    if not options.finetune_steps:
        return Finetuning()
    t0 = time.perf_counter()
    net = BertClassifierWithLoss(clf)
    schedule = linear_schedule(options.finetune_lr, options.finetune_steps, options.warmup_fraction)
    opt = adamw(parameter_groups(net, weight_decay=options.weight_decay), schedule, capacity=capacity)
    trainer = Trainer(options, net, opt, runtime, "finetune")
    trainer.run(stream(options, data, 0), options.finetune_steps)
    result = Finetuning(steps=options.finetune_steps, loss_last=float(np.mean(trainer.losses[-20:])),
                        seconds=time.perf_counter() - t0, trainer=trainer)
    if options.finetuned_checkpoint is not None and runtime.is_main:
        save_checkpoint(clf, options.finetuned_checkpoint)
    return result


def gated_steps(options: PruneOptions, arrays: dict[str, np.ndarray]) -> int:
    """Steps of the gated phase: ``train_steps``, else ``epoch_size`` epochs of the training arrays."""
    if options.train_steps is not None:
        return options.train_steps
    per_epoch = num_batches(arrays, options.batch_size, drop_remainder=True, buckets=options.buckets)
    return per_epoch * options.epoch_size


def gate(options: PruneOptions, classifier: BertClassifier, data: TaskData) -> Gating:
    """Phase 4: ``apply()`` a pruner configured from the options to the classifier.

    With ``log_a_init="importance"`` the heads are scored first (Fisher importance on
    ``importance_examples`` training examples) and each gate starts at
    :func:`~lrp_prune.pruning.importance.importance_log_a` of its head.
    """
    steps = gated_steps(options, data.train)
    warmup = options.budget_warmup_steps if options.budget_warmup_steps is not None else steps // 3
    init, importance = options.log_a_init, None
    if init == "importance":
        from lrp_prune.pruning.importance import head_importance, importance_log_a

        importance = head_importance(classifier, sample_batches(options, importance_sample(options, data.train)))
        init = importance_log_a(importance)
    pruner = LRPHeadPruner(PrunerConfig(
        gate=options.gate_settings(), log_a_init=init, target_heads=options.target_heads, budget_warmup_steps=warmup,
        budget_lr=options.budget_lr, seed=options.seed, structures=options.structures,
        target_flops=options.target_flops, cost_seq_length=options.max_seq_length,
        target_speedup=options.target_speedup, latency_batch_size=options.latency_batch_size))
    return Gating(pruner, pruner.apply(classifier), steps, importance)


def train_gated(options: PruneOptions, gating: Gating, data: TaskData, runtime: Runtime = Runtime(),
                teacher: Callable[[int, dict], np.ndarray] | None = None) -> GatedTraining:
    """Phase 5: train ``L = CE + total_reg`` (or the distillation loss + ``total_reg``) with ``log_a`` in
    its own parameter group, recording the gates, on the stream after the fine-tuning's batches.

    In target mode the controller steps after every optimizer step, and the last
    ``budget_settle_fraction`` of the run trains with exactly ``target_heads`` heads.
    """
    pruner, gated, steps = gating.pruner, gating.gated, gating.steps
    target = gating.target
    gates = ModelGates(gated)
    net = _loss_cell(options, gated)
    opt = adamw(parameter_groups(net, log_a_lr=options.log_a_lr, weight_decay=options.weight_decay),
                _schedule(options, options.learning_rate, steps))
    history = GateHistory()
    settle: dict[str, Any] = {}
    settle_step = steps - int(round(options.budget_settle_fraction * steps)) if target is not None else -1

    def record(step: int, loss: float) -> None:
        state = pruner.update_budget(gated)  # the controller's ascent step (target mode)
        if step == settle_step and 0 < step < steps:  # keep exactly T heads; the rest of the run adapts to them
            projection = pruner.project_to_target(gated)
            settle.update(step=step, open_before=projection["open_before"], closed=projection["closed"],
                          closed_units=len(projection["closed_by_structure"].get("ffn", ())))
            logger.info("step %d: projected to the budget of %g (%g were open); training on with the units kept",
                        step, target, projection["open_before"])
        if step % options.gate_log_every == 0 or step == 1 or step == steps:
            history.record(step, gates, loss, state)
            if target is not None and (step % 50 == 0 or step == steps):
                logger.info("budget step %d: expected open %.2f, target now %.2f, lambda_1 %.4f, lambda_2 %.5f",
                            step, state["expected_open"], state["target_now"], state["lambda_1"], state["lambda_2"])

    t0 = time.perf_counter()
    trainer = Trainer(options, net, opt, runtime, "gated")
    trainer.run(stream(options, data, options.finetune_steps), steps, on_step=record, teacher=teacher)
    log_a = gates.log_a(HEADS)
    logger.info("rank %d final log_a checksum %.8f", runtime.rank, float(np.nansum(log_a)))
    return GatedTraining(steps=steps, seconds=time.perf_counter() - t0, skipped_steps=trainer.scale.skipped,
                         final_loss_scale=trainer.scale.scale, history=history, final_log_a=_grid_json(log_a),
                         settle_projection=settle or None)


#: Mask tuning fits at most 12 scales per layer (MiniLM, BERT-base): the first 512 examples of the importance
#: sample give about 12,000 tokens x hidden equations, and tuning costs a quarter of what 2,048 would.
TUNE_EXAMPLES = 512


def importance_sample(options: PruneOptions, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``importance_examples`` training examples drawn with ``seed`` (all of them when there are fewer)."""
    n = len(arrays["label_ids"])
    idx = np.sort(np.random.default_rng(options.seed).permutation(n)[:min(options.importance_examples, n)])
    return {k: v[idx] for k, v in arrays.items()}


def sample_batches(options: PruneOptions, arrays: dict[str, np.ndarray]):
    """Batches of a sample for importance or tuning: one row count (padding rows marked ``valid``), in buckets."""
    return batches(arrays, options.batch_size, drop_remainder=False, pad_last=True, buckets=options.buckets)


def prune_retraining_free(options: PruneOptions, classifier: BertClassifier, data: TaskData,
                          progress: bool = False) -> RetrainingFree:
    """The ``fisher`` method: mask gates on ``classifier`` (in place), importance on a sample of the
    training data, the mask search to ``target_heads`` and (``mask_tuning``) least-squares scales."""
    from tqdm.auto import tqdm

    from lrp_prune.pruning.fisher import FisherConfig, FisherHeadPruner

    t0 = time.perf_counter()
    sample = importance_sample(options, data.train)
    pruner = FisherHeadPruner(FisherConfig(target_heads=options.target_heads, tune=options.mask_tuning))
    masked = pruner.apply(classifier)
    tune_sample = {k: v[:TUNE_EXAMPLES] for k, v in sample.items()}
    make = lambda arrays: lambda: sample_batches(options, arrays)  # noqa: E731 - prune() passes over them twice
    n_batches = num_batches(sample, options.batch_size, drop_remainder=False, buckets=options.buckets)
    layers = classifier.config.num_hidden_layers
    total = n_batches + (layers if options.mask_tuning else 0)
    with tqdm(total=total, desc="retraining-free", disable=not (options.progress and progress), unit="step",
              dynamic_ncols=True) as bar:
        result = pruner.prune(masked, make(sample), tune_batches=make(tune_sample),
                              progress=lambda _, n: bar.update(n))
    return RetrainingFree(pruner, masked, result, len(sample["label_ids"]), time.perf_counter() - t0)


# ------------------------------------------------------------------------------------ evaluate, convert, measure
def evaluate(options: PruneOptions, model: nn.Cell, arrays: dict[str, np.ndarray], desc: str) -> Evaluation:
    """Accuracy and predictions of ``model`` (eval mode) on ``arrays``, in length buckets.

    Predictions come back in the order of ``arrays`` (example ``i`` at row ``i``), so arms
    evaluated separately can be compared pair by pair.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    arrays = {**arrays, "index": np.arange(len(arrays["label_ids"]))}
    total = num_batches(arrays, options.eval_batch_size, drop_remainder=False, buckets=options.buckets)
    with tqdm(total=total, desc=desc, disable=not options.progress, unit="batch", dynamic_ncols=True) as bar:
        accuracy, preds = evaluate_accuracy(
            model, batches(arrays, options.eval_batch_size, shuffle=False, drop_remainder=False,
                           buckets=options.buckets, pad_last=True), progress=bar.update)
    logger.info("%s accuracy: %.4f on %d pairs", desc, accuracy, len(preds))
    return Evaluation(accuracy, preds, time.perf_counter() - t0)


def convert(options: PruneOptions, gating: Gating) -> Conversion:
    """Phase 7: ``convert()`` (in target mode it keeps exactly the target), saving to ``pruned_dir``."""
    gating.pruner.project_to_target(gating.gated)  # so the gate values read here are the ones folded
    values = ModelGates(gating.gated).values(HEADS)
    pruned = gating.pruner.convert(gating.gated, options.pruned_dir)
    return Conversion(pruned, pruned.prune_summary, values)


class TeacherLogits:
    """The teacher's logits of each gated step's batch, computed once and kept for the control arm.

    The teacher is the ungated model at gating time, in eval mode (no dropout, no gradient).
    """

    def __init__(self, teacher: nn.Cell) -> None:
        self.teacher = teacher
        self.by_step: dict[int, np.ndarray] = {}
        self.seconds = 0.0

    def __call__(self, step: int, batch: dict) -> np.ndarray:
        if step not in self.by_step:
            t0 = time.perf_counter()
            self.teacher.set_train(False)
            features = [ms.Tensor(batch[k]) for k in ("input_ids", "token_type_ids", "input_mask")]
            self.by_step[step] = self.teacher(*features).asnumpy().astype(np.float32)
            self.seconds += time.perf_counter() - t0
        return self.by_step[step]


def train_control(options: PruneOptions, classifier: BertClassifier, data: TaskData, steps: int,
                  runtime: Runtime = Runtime(), finetuning: Finetuning | None = None,
                  teacher: TeacherLogits | None = None) -> float:
    """Phase 6: the equal-budget control arm. ``classifier`` (the ungated start) trains ``steps`` steps on the
    gated phase's batches with its optimizer, schedule, clipping, loss scaling and dropout (and the same
    distillation term from the same teacher); returns the seconds it took.

    Without distillation it trains in the fine-tuning's compiled step (its optimizer reset), so it
    pays no new compile.
    """
    t0 = time.perf_counter()
    schedule = _schedule(options, options.learning_rate, steps)
    reusable = (finetuning is not None and finetuning.trainer is not None and not options.distill
                and finetuning.trainer.net.bert is classifier)
    if reusable:
        trainer = finetuning.trainer
        trainer.restart("control", schedule if isinstance(schedule, list) else [schedule], checkpoints=False)
    else:
        net = _loss_cell(options, classifier)
        opt = adamw(parameter_groups(net, weight_decay=options.weight_decay), schedule)
        trainer = Trainer(options, net, opt, runtime, "control", checkpoints=False)
    trainer.run(stream(options, data, options.finetune_steps), steps, teacher=teacher if options.distill else None)
    logger.info("control: %d steps in %.0f s (%s train step)", steps, time.perf_counter() - t0,
                "the fine-tuning's" if reusable else "a new")
    return time.perf_counter() - t0


def measure_latency(options: PruneOptions, config: BertConfig, head: dict[str, Any], original_params: dict,
                    pruned: nn.Cell) -> Latency:
    """Phase 8: median forward time of the pruned vs the unpruned classifier, interleaved in one run."""
    original = BertClassifier(config, False, **head)
    load_param_dict(original, {k: v for k, v in original_params.items() if not k.endswith("log_a")})
    b, s = options.latency_batch_size, options.max_seq_length
    times = compare_latency(original, pruned, b, s, options.latency_repeats)
    del original
    return Latency(b, s, times["unpruned_s"], times["pruned_s"])


# ------------------------------------------------------------------------------------ the flow
def run_prune(options: PruneOptions, runtime: Runtime | None = None) -> RunReport:
    """Run the whole flow and return its :class:`RunReport` (``.pruned_model`` holds the pruned model).

    MindSpore must be in GRAPH_MODE on ``options.device_target`` (see
    :func:`lrp_prune.app.cli.configure_mindspore`, which also seeds it).

    Raises:
        LRPPruneError: bad options or inputs, or MindSpore not set up for the run.
    """
    from lrp_prune.app.controls import control_key, default_cache_dir, load_control, store_control

    started = time.perf_counter()
    runtime = runtime or current_runtime(options)
    if options.enable_data_sink:
        logger.warning("enable_data_sink: this flow feeds batches of several bucket shapes step by step; "
                       "data sinking is not used on %s (on CPU MindSpore turns it off anyway)", options.device_target)
    train_examples, eval_examples, skipped = read_task(options, runtime)
    loaded = load_model(options, tuple(train_examples.label_names))
    cfg = loaded.config
    data = encode(options, loaded, train_examples, eval_examples, skipped, runtime)
    steps = gated_steps(options, data.train)
    timings: dict[str, float] = {}
    finetuning = finetune(options, loaded, data, runtime, capacity=max(steps, options.finetune_steps))
    if finetuning.seconds is not None:
        timings["finetune_s"] = finetuning.seconds
    start = loaded.classifier  # the ungated start: the teacher, the control's start, the latency baseline
    before = evaluate(options, start, data.evaluation, "eval start")
    timings["eval_unpruned_s"] = before.seconds
    start_params = param_dict(start)

    if options.method == "fisher":
        return _run_retraining_free(options, runtime, started, loaded, data, finetuning, before, start_params,
                                    timings)
    cached, key, cache = None, "", None
    if options.control and not runtime.distributed:  # ranks shard the data: a data-parallel run always trains it
        cache = Path(options.control_cache) if options.control_cache is not None else default_cache_dir()
        key = control_key(options, steps, start_params, data.train, data.evaluation)
        cached = load_control(cache, key)
        if cached is not None:
            logger.info("control: reusing the cached result %s (%.2f%%, %d steps)", key,
                        100 * cached["accuracy"], cached["steps"])
    teacher = TeacherLogits(start) if options.distill else None
    # the gated arm is a copy, so the start stays the teacher and, after, trains on as the control
    t0 = time.perf_counter()
    gating = gate(options, copy_cell(start), data)
    if gating.importance is not None:
        timings["importance_s"] = time.perf_counter() - t0
    training = train_gated(options, gating, data, runtime, teacher)
    timings["gated_train_s"] = training.seconds
    if teacher is not None:
        timings["teacher_s"] = teacher.seconds
    if options.control and cached is None:  # every rank trains it (same batches, averaged gradients)
        timings["control_train_s"] = train_control(options, start, data, steps, runtime, finetuning, teacher)
    report = RunReport(options=options, train_pairs=data.train_pairs, eval_pairs=data.eval_pairs,
                       eval_split=data.eval_split, skipped_rows=data.skipped_rows, label_names=data.label_names,
                       truncated=data.truncated,
                       total_heads=cfg.num_hidden_layers * cfg.num_attention_heads, target_heads=gating.target_heads,
                       finetuning=finetuning, training=training, rank=runtime.rank, timings=timings,
                       importance=gating.importance)
    if not runtime.is_main:  # other ranks only train; rank 0 evaluates, converts and writes
        report.wall_time_s = time.perf_counter() - started
        return report

    projection = None
    if gating.target is not None:  # evaluate the gated model with the heads convert() will keep
        found = gating.pruner.project_to_target(gating.gated)
        projection = {"open_before": found["open_before"], "closed": found["closed"],
                      "closed_units": len(found["closed_by_structure"].get("ffn", ()))}
    gated_eval = evaluate(options, gating.gated, data.evaluation, "eval gated")
    timings["eval_gated_s"] = gated_eval.seconds
    conversion = convert(options, gating)
    if options.target_speedup is not None:  # what the table predicts for the layout convert() kept
        after = find_bert(conversion.pruned)[0][1].config
        conversion.predicted_ratio = 1.0 / gating.gated.bert.budget.table.speedup(
            cfg.heads_per_layer, cfg.units_per_layer, after.heads_per_layer, after.units_per_layer)
    pruned_eval = evaluate(options, conversion.pruned, data.evaluation, "eval pruned")
    timings["eval_pruned_s"] = pruned_eval.seconds
    del gating  # the gated copy's graphs and optimizer state are no longer needed

    control = None
    if options.control:
        if cached is not None:
            control = Control(cached["accuracy"], cached["predictions"], cached["steps"], cached["seconds"],
                              cached=True, key=key)
        else:
            control_eval = evaluate(options, start, data.evaluation, "eval control")
            seconds = timings["control_train_s"] + control_eval.seconds
            control = Control(control_eval.accuracy, control_eval.predictions, steps, seconds, key=key)
            timings["eval_control_s"] = control_eval.seconds
            if key:
                store_control(cache, key, {"accuracy": control.accuracy, "predictions": control.predictions,
                                           "steps": control.steps, "seconds": control.seconds})
    report.projection = projection
    return _complete(report, options, data, start, start_params, before, gated_eval, pruned_eval, conversion,
                     control, started)


def _complete(report: RunReport, options: PruneOptions, data: TaskData, start: BertClassifier, start_params: dict,
              before: Evaluation, gated_eval: Evaluation, pruned_eval: Evaluation, conversion: Conversion,
              control: Control | None, started: float) -> RunReport:
    """The part every method shares: latency, the paired drop, metrics, the report's fields."""
    from lrp_prune.app.controls import paired_drop

    cfg = start.config
    head = {"num_labels": start.num_labels, "pooling": start.pooling}
    latency = measure_latency(options, cfg, head, start_params, conversion.pruned)
    latency.predicted_ratio = conversion.predicted_ratio

    labels = data.evaluation["label_ids"]
    correct = {"start": before.predictions == labels, "pruned": pruned_eval.predictions == labels}
    reference = "start"
    if control is not None:
        correct["control"] = control.predictions == labels
        if control.accuracy > before.accuracy:
            reference = "control"
    report.drop, report.drop_ci95 = paired_drop(correct["pruned"], correct[reference], seed=options.seed)
    report.drop_reference = reference
    report.accuracy_before, report.accuracy_gated = before.accuracy, gated_eval.accuracy
    report.accuracy_pruned = pruned_eval.accuracy
    report.pruned_equals_gated = bool(np.array_equal(gated_eval.predictions, pruned_eval.predictions))
    report.control = control
    report.summary = conversion.summary
    report.gate_values = np.round(conversion.gate_values, 6).tolist()
    report.latency = latency
    report.pruned_model = conversion.pruned
    report.predictions = {"start": before.predictions, "gated": gated_eval.predictions,
                          "pruned": pruned_eval.predictions}
    if control is not None:
        report.predictions["control"] = control.predictions
    report.labels = labels
    from lrp_prune.data.tables import GLUE
    from lrp_prune.training.evaluate import classification_metrics

    metric = GLUE[options.task].metric if options.task in GLUE else "accuracy"
    report.metrics = {arm: classification_metrics(pred, labels, data.label_names, metric)
                      for arm, pred in report.predictions.items() if arm != "gated"}
    report.wall_time_s = time.perf_counter() - started
    return report


def _run_retraining_free(options: PruneOptions, runtime: Runtime, started: float, loaded: Loaded, data: TaskData,
                         finetuning: Finetuning, before: Evaluation, start_params: dict,
                         timings: dict[str, float]) -> RunReport:
    """``method="fisher"``: prune the start with no training, evaluate masked and pruned, convert."""
    start = loaded.classifier
    cfg = start.config
    expect(not runtime.distributed, "method", "'lrp' in a data-parallel run (fisher runs on one device)", "fisher")
    free = prune_retraining_free(options, copy_cell(start), data, progress=True)
    timings.update({k: v for k, v in free.result.timings.items()})
    t0 = time.perf_counter()
    pruned = free.pruner.convert(free.masked, options.pruned_dir)
    timings["convert_s"] = time.perf_counter() - t0
    timings["retraining_free_s"] = free.seconds + timings["convert_s"]
    values = ModelGates(free.masked).values(HEADS)
    conversion = Conversion(pruned, pruned.prune_summary, values)
    gated_eval = evaluate(options, free.masked, data.evaluation, "eval masked")
    timings["eval_gated_s"] = gated_eval.seconds
    pruned_eval = evaluate(options, pruned, data.evaluation, "eval pruned")
    timings["eval_pruned_s"] = pruned_eval.seconds
    report = RunReport(options=options, train_pairs=data.train_pairs, eval_pairs=data.eval_pairs,
                       eval_split=data.eval_split, skipped_rows=data.skipped_rows, label_names=data.label_names,
                       truncated=data.truncated, total_heads=cfg.num_hidden_layers * cfg.num_attention_heads,
                       target_heads=int(free.result.mask.sum()), finetuning=finetuning, training=None,
                       rank=runtime.rank, timings=timings, retraining_free=free)
    del free.masked
    return _complete(report, options, data, start, start_params, before, gated_eval, pruned_eval, conversion,
                     None, started)

"""The end-to-end pruning flow shared by ``samples/run_sample_bert.py`` and the CLI.

load the model -> (optionally fine-tune it: the converged starting point) ->
evaluate -> ``apply()`` -> fine-tune with ``L = CE + total_reg`` (``log_a`` in its
own parameter group) -> evaluate with eval gates -> ``convert()`` -> evaluate the
pruned model (same accuracy as gated) -> save -> report.

Example:
    >>> opts = PruneOptions(task="mnli", data_dir="/data/MNLI", model="bert.json",
    ...                     load_checkpoint_path="bert.ckpt", vocab_file="vocab.txt")
    >>> opts.eval_split_name, opts.resolved_pooling
    ('dev_matched', 'pooler')
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import mindspore as ms
import numpy as np
from mindspore import nn

from lrp_prune.checkpoint import load_checkpoint, load_param_dict, param_dict, save_checkpoint
from lrp_prune.config import BertConfig
from lrp_prune.data import NLI_LABELS, TASKS, batches, grouped_split, load_task, num_batches, shard
from lrp_prune.errors import LRPPruneError, expect
from lrp_prune.gate import GateSettings, prob_closed
from lrp_prune.model import BertClassifier, BertClassifierWithLoss
from lrp_prune.pruner import DEFAULT_LOG_A_INIT, LRPHeadPruner, PrunerConfig, parameter_groups
from lrp_prune.train import DynamicLossScale, TrainStep, adamw, compare_latency, evaluate_accuracy

__all__ = ["PruneOptions", "run_prune", "load_classifier", "MINILM_NAME", "encode_split", "linear_schedule"]

logger = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
_DEFAULT_EVAL_SPLIT = {"snli": "test", "mnli": "dev_matched"}


@dataclass(frozen=True)
class PruneOptions:
    """Every knob of the flow; the sample's and the CLI's flags map onto these fields.

    Non-obvious defaults carry a comment. ``train_steps=None`` trains ``epoch_size``
    epochs of the training split.
    """

    task: str = "snli"
    data_dir: str | None = None  # None with task snli: fetched from the registry cache
    model: str = MINILM_NAME  # HF BERT dir, the cached MiniLM's name, or a BertConfig JSON
    load_checkpoint_path: str | None = None  # ModelZoo-named checkpoint (strictly checked)
    vocab_file: str | None = None  # default: vocab.txt of the model directory
    pooling: str = "auto"  # auto: mean for sentence-transformers MiniLM (untrained pooler), else pooler
    max_seq_length: int = 64  # covers 99.85% of SNLI pairs
    buckets: tuple[int, ...] = (32, 64)  # batch lengths, one compile each; 83% of SNLI fits 32
    batch_size: int = 32
    eval_batch_size: int = 64  # 128 evaluates no faster than 64 on CPU
    finetune_steps: int = 0  # plain fine-tuning before gating; 0 = the loaded model is converged
    finetune_lr: float = 5e-5
    finetuned_checkpoint: str | None = None  # reuse: load it if it exists, else fine-tune and save it there
    warmup_fraction: float = 0.1  # linear warm-up share of each phase's steps
    lr_schedule: str = "linear"  # weights: "linear" (warm-up, then decay to 0) or "constant"; log_a: constant
    train_steps: int | None = None
    epoch_size: int = 1
    learning_rate: float = 2e-5
    log_a_lr: float = 0.1  # the reference's rate for every log_a
    weight_decay: float = 0.01
    l0_penalty: float = 0.01
    target_heads: float | int | None = None  # heads to keep (int) or a fraction; drives a Lagrangian controller
    budget_warmup_steps: int | None = None  # default: a third of the gated steps
    budget_lr: float = 0.001  # 0.01 let the multipliers overshoot on MiniLM (all heads half-open)
    budget_settle_fraction: float = 0.25  # target mode: the last quarter trains with exactly T heads (projected)
    temperature: float = 0.33
    stretch_limits: tuple[float, float] = (-0.1, 1.1)
    log_a_init: float | str = DEFAULT_LOG_A_INIT
    train_limit: int | None = None  # use the first N shuffled training pairs
    eval_limit: int | None = None  # evaluate on a fixed, seeded subset of N pairs
    eval_split: str | None = None  # default: snli test, mnli dev_matched
    dropout: bool = True  # dropout during training (off is ~5% faster on CPU)
    seed: int = 1
    do_shuffle: bool = True
    enable_lossscale: bool = False
    loss_scale: float = 2.0 ** 16
    loss_scale_window: int = 1000
    enable_data_sink: bool = False
    data_sink_steps: int = 1
    enable_save_ckpt: bool = False
    save_checkpoint_path: str | None = None
    save_checkpoint_steps: int = 1000
    save_checkpoint_num: int = 1
    save_dir_path: str | None = None  # what convert() writes (DESIGN §4)
    distribute: bool = False
    device_target: str = "CPU"
    latency_batch_size: int = 32
    latency_repeats: int = 5
    gate_log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        expect(self.task in TASKS, "task", f"one of {TASKS}", self.task)
        expect(self.pooling in ("auto", "pooler", "cls", "mean"), "pooling", "auto, pooler, cls or mean",
               self.pooling)
        for name in ("max_seq_length", "batch_size", "eval_batch_size", "epoch_size", "save_checkpoint_steps",
                     "save_checkpoint_num", "data_sink_steps", "latency_batch_size", "latency_repeats",
                     "gate_log_every"):
            value = getattr(self, name)
            expect(isinstance(value, int) and not isinstance(value, bool) and value > 0, name,
                   "a positive integer", value)
        for name in ("finetune_steps",):
            value = getattr(self, name)
            expect(isinstance(value, int) and value >= 0, name, "an integer >= 0", value)
        for name in ("train_steps", "train_limit", "eval_limit"):
            value = getattr(self, name)
            expect(value is None or (isinstance(value, int) and value > 0), name, "a positive integer or None",
                   value)
        for name in ("learning_rate", "finetune_lr", "log_a_lr"):
            value = getattr(self, name)
            expect(isinstance(value, (int, float)) and value > 0 and math.isfinite(value), name,
                   "a positive number", value)
        buckets = tuple(b for b in self.buckets if b < self.max_seq_length) + (self.max_seq_length,)
        object.__setattr__(self, "buckets", buckets)
        expect(self.device_target in ("CPU", "GPU", "Ascend"), "device_target", "CPU, GPU or Ascend",
               self.device_target)
        expect(self.lr_schedule in ("linear", "constant"), "lr_schedule", "'linear' or 'constant'", self.lr_schedule)
        expect(isinstance(self.warmup_fraction, (int, float)) and 0 <= self.warmup_fraction < 1, "warmup_fraction",
               "a number in [0, 1)", self.warmup_fraction)

    @property
    def resolved_pooling(self) -> str:
        """The pooling used: ``auto`` resolves to ``mean`` for MiniLM and ``pooler`` otherwise."""
        if self.pooling != "auto":
            return self.pooling
        return "mean" if self.model == MINILM_NAME else "pooler"

    @property
    def eval_split_name(self) -> str:
        """The split evaluated: ``eval_split``, or the task's default."""
        return self.eval_split or _DEFAULT_EVAL_SPLIT[self.task]


# ------------------------------------------------------------------------------------ model
def _model_dir(options: PruneOptions) -> Path | None:
    if options.model == MINILM_NAME:
        from lrp_prune.assets import fetch_minilm

        return fetch_minilm()
    path = Path(options.model)
    if path.is_dir():
        return path
    return None


def load_classifier(options: PruneOptions, is_training: bool) -> tuple[BertClassifier, Path | None]:
    """Build the classifier the options describe and load its weights; returns ``(classifier, model_dir)``."""
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
    clf = BertClassifier(cfg, is_training and options.dropout, num_labels=len(NLI_LABELS),
                         pooling=options.resolved_pooling)
    if model_dir is not None:
        from lrp_prune.hf import read_hf_state

        load_param_dict(clf.bert, read_hf_state(model_dir), strict=True, source=f"model {str(model_dir)!r}")
    if options.load_checkpoint_path is not None:
        report = load_checkpoint(options.load_checkpoint_path, clf, strict=False)
        backbone_missing = [n for n in report.missing if not n.startswith("dense_1.")]
        if backbone_missing:
            raise LRPPruneError(f"checkpoint {options.load_checkpoint_path!r}: expected every backbone parameter "
                                f"of the model, got {len(backbone_missing)} missing: {backbone_missing[:6]}")
        if not report.loaded:
            raise LRPPruneError(f"checkpoint {options.load_checkpoint_path!r}: expected ModelZoo BERT names, "
                                "got none that match the model")
    return clf, model_dir


def _tokenizer(options: PruneOptions, model_dir: Path | None):
    from lrp_prune.tokenization import PairTokenizer

    if options.vocab_file is not None:
        return PairTokenizer(options.vocab_file, max_seq_length=options.max_seq_length)
    expect(model_dir is not None, "vocab_file", "a vocab.txt (required when model is a BertConfig JSON)", None)
    return PairTokenizer.from_model_dir(model_dir, max_seq_length=options.max_seq_length)


# ------------------------------------------------------------------------------------ data
def encode_split(tokenizer, examples, max_seq_length: int, vocab_size: int) -> dict[str, np.ndarray]:
    """Tokenize NLI examples into fixed-length arrays plus ``label_ids``."""
    arrays = tokenizer.encode(list(examples.premises), list(examples.hypotheses), max_seq_length)
    top = int(arrays["input_ids"].max()) if len(arrays["input_ids"]) else 0
    expect(top < vocab_size, "vocab_file", f"token ids below the model's vocab_size ({vocab_size})", top)
    labels = np.asarray(examples.labels)
    n = len(arrays["input_ids"])
    expect(labels.shape == (n,) and (n == 0 or np.issubdtype(labels.dtype, np.integer)), "labels",
           f"{n} integer class ids (one per example)", f"{labels.dtype} array of shape {labels.shape}")
    bad = sorted(set(labels[(labels < 0) | (labels >= len(NLI_LABELS))].tolist()))
    expect(not bad, "labels", f"class ids in [0, {len(NLI_LABELS)}) ({', '.join(NLI_LABELS)})", bad[:5])
    arrays["label_ids"] = labels.astype(np.int32)
    return arrays


def _load_splits(options: PruneOptions, rank: int, group: int) -> tuple[Any, Any]:
    data_dir = options.data_dir
    if data_dir is None:
        expect(options.task == "snli", "data_dir", "a GLUE MNLI directory (train.tsv, dev_matched.tsv)", None)
        from lrp_prune.assets import fetch_snli

        data_dir = str(fetch_snli())
    expect(Path(data_dir).is_dir(), "data_dir", "an existing directory", data_dir)
    splits = load_task(options.task, data_dir)
    expect(options.eval_split_name in splits, "eval_split", f"one of {sorted(splits)}", options.eval_split_name)
    train, evaluation = splits["train"], splits[options.eval_split_name]
    rng = np.random.default_rng(options.seed)
    if options.train_limit is not None and options.train_limit < len(train):
        train = train.subset(np.sort(rng.permutation(len(train))[: options.train_limit]))
    if options.eval_limit is not None and options.eval_limit < len(evaluation):
        evaluation = evaluation.subset(np.sort(np.random.default_rng(0).permutation(len(evaluation))[: options.eval_limit]))
    if group > 1:
        train = shard(train, group, rank)
    return train, evaluation


# ------------------------------------------------------------------------------------ training
class _Trainer:
    """Runs steps of a with-loss classifier with an optimizer, loss scaling, checkpoints and a history."""

    def __init__(self, options: PruneOptions, net: BertClassifierWithLoss, optimizer: nn.Optimizer,
                 arrays: dict[str, np.ndarray], reducer: nn.Cell | None, rank: int, tag: str) -> None:
        self.options = options
        self.net = net
        self.step_cell = TrainStep(net, optimizer, clip_norm=1.0, reducer=reducer)
        self.scale = DynamicLossScale(options.loss_scale, 2.0, options.loss_scale_window,
                                      enabled=options.enable_lossscale)
        self.arrays = arrays
        self.rank = rank
        self.tag = tag
        self.losses: list[float] = []
        self.epoch = 0

    def _batches(self):
        while True:
            yield from batches(self.arrays, self.options.batch_size, shuffle=self.options.do_shuffle,
                               seed=self.options.seed + self.epoch, drop_remainder=True,
                               buckets=self.options.buckets)
            self.epoch += 1

    def run(self, steps: int, on_step: Callable[[int, float], None] | None = None) -> list[float]:
        from tqdm.auto import tqdm

        self.net.set_train(True)
        self.step_cell.set_train(True)
        bar = tqdm(total=steps, desc=self.tag, disable=not self.options.progress or self.rank != 0,
                   unit="step", dynamic_ncols=True)
        stream = self._batches()
        for step in range(1, steps + 1):
            batch = next(stream)
            inputs = [ms.Tensor(batch[k]) for k in ("input_ids", "token_type_ids", "input_mask", "label_ids")]
            loss, finite = self.step_cell(*inputs, self.scale.tensor())
            finite = bool(finite.asnumpy())
            self.scale.update(finite)
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
        if not opts.enable_save_ckpt or self.rank != 0 or step % opts.save_checkpoint_steps:
            return
        directory = Path(opts.save_checkpoint_path or "./ckpt")
        directory.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.net.bert, directory / f"lrp_{self.tag}-{step}.ckpt")
        kept = sorted(glob.glob(str(directory / f"lrp_{self.tag}-*.ckpt")),
                      key=lambda p: int(Path(p).stem.rsplit("-", 1)[1]))
        for old in kept[: -opts.save_checkpoint_num]:
            os.unlink(old)


def linear_schedule(peak: float, steps: int, warmup_fraction: float = 0.1) -> list[float]:
    """Per-step learning rates: linear warm-up to ``peak`` over ``warmup_fraction`` of the steps,
    then linear decay towards 0 (the usual BERT fine-tuning schedule).

    Example:
        >>> [round(x, 3) for x in linear_schedule(1.0, 5, 0.2)]
        [1.0, 0.8, 0.6, 0.4, 0.2]
    """
    warm = max(1, int(round(steps * warmup_fraction)))
    out = []
    for step in range(steps):
        if step < warm:
            out.append(peak * (step + 1) / warm)
        else:
            out.append(peak * (steps - step) / max(1, steps - warm + 1) if steps > warm else peak)
    return out


def _steps_for(options: PruneOptions, arrays: dict[str, np.ndarray]) -> int:
    if options.train_steps is not None:
        return options.train_steps
    per_epoch = num_batches(arrays, options.batch_size, drop_remainder=True, buckets=options.buckets)
    return per_epoch * options.epoch_size


def _init_distributed(options: PruneOptions) -> tuple[int, int, Any]:
    if not options.distribute:
        return 0, 1, None
    from mindspore import communication
    from mindspore.context import ParallelMode

    communication.init()
    rank, group = communication.get_rank(), communication.get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=group)
    logger.info("data parallel: rank %d of %d", rank, group)
    return rank, group, lambda params: nn.DistributedGradReducer(params, mean=True, degree=group)


def _eval_batches(options: PruneOptions, arrays: dict[str, np.ndarray]):
    return batches(arrays, options.eval_batch_size, shuffle=False, drop_remainder=False, buckets=options.buckets,
                   pad_last=True)


def _evaluate(options: PruneOptions, model: nn.Cell, arrays: dict[str, np.ndarray], desc: str) -> tuple[float, np.ndarray]:
    from tqdm.auto import tqdm

    total = num_batches(arrays, options.eval_batch_size, drop_remainder=False, buckets=options.buckets)
    with tqdm(total=total, desc=desc, disable=not options.progress, unit="batch", dynamic_ncols=True) as bar:
        accuracy, preds = evaluate_accuracy(model, _eval_batches(options, arrays), progress=bar.update)
    logger.info("%s accuracy: %.4f on %d pairs", desc, accuracy, len(preds))
    return accuracy, preds


def _gate_snapshot(clf: BertClassifier, settings: GateSettings) -> tuple[np.ndarray, float]:
    """P(gate = 0) per head ([L, H], NaN for heads the model lacks) and the expected open count."""
    cfg = clf.bert.config
    p_closed = np.full((cfg.num_hidden_layers, cfg.num_attention_heads), np.nan)
    for i, attention in clf.bert.gate_cells():
        p_closed[i, list(attention.heads)] = prob_closed(attention.gate.log_a.asnumpy(), settings)
    return p_closed, float(np.nansum(1.0 - p_closed))


# ------------------------------------------------------------------------------------ the flow
def run_prune(options: PruneOptions) -> dict[str, Any]:
    """Run the whole flow and return the report (also written as ``report.json`` when saving).

    Returns:
        A dict with accuracies (``accuracy_before``, ``accuracy_gated``, ``accuracy_pruned``),
        ``heads_kept_per_layer``, ``heads_removed``, parameters before/after, the
        latency ratio pruned/unpruned, the gate history and timings.
    """
    started = time.perf_counter()
    ms.set_context(mode=ms.GRAPH_MODE, device_target=options.device_target)
    ms.set_seed(options.seed)
    np.random.seed(options.seed)
    rank, group, make_reducer = _init_distributed(options)
    if options.enable_data_sink:
        logger.warning("enable_data_sink: this flow feeds batches of several bucket shapes step by step; "
                       "data sinking is not used on %s (on CPU MindSpore turns it off anyway)", options.device_target)

    clf, model_dir = load_classifier(options, is_training=True)
    cfg = clf.bert.config
    tokenizer = _tokenizer(options, model_dir)
    train_examples, eval_examples = _load_splits(options, rank, group)
    train_arrays = encode_split(tokenizer, train_examples, options.max_seq_length, cfg.vocab_size)
    eval_arrays = encode_split(tokenizer, eval_examples, options.max_seq_length, cfg.vocab_size)
    logger.info("data: %d training pairs (rank %d/%d), %d %s pairs", len(train_examples), rank, group,
                len(eval_examples), options.eval_split_name)
    report: dict[str, Any] = {"options": _options_dict(options), "train_pairs": len(train_examples),
                              "eval_pairs": len(eval_examples), "eval_split": options.eval_split_name,
                              "total_heads": cfg.num_hidden_layers * cfg.num_attention_heads}
    timings: dict[str, float] = {}

    reuse = options.finetuned_checkpoint is not None and Path(options.finetuned_checkpoint).is_file()
    if reuse:
        load_checkpoint(options.finetuned_checkpoint, clf, strict=True)
        logger.info("loaded the fine-tuned starting point %s (fine-tuning skipped)", options.finetuned_checkpoint)
        report["finetuned_from"] = str(options.finetuned_checkpoint)
    if options.finetune_steps and not reuse:
        t0 = time.perf_counter()
        net = BertClassifierWithLoss(clf)
        schedule = linear_schedule(options.finetune_lr, options.finetune_steps, options.warmup_fraction)
        opt = adamw(parameter_groups(net, weight_decay=options.weight_decay), schedule)
        reducer = make_reducer(opt.parameters) if make_reducer else None
        trainer = _Trainer(options, net, opt, train_arrays, reducer, rank, "finetune")
        trainer.run(options.finetune_steps)
        report["finetune_loss_last"] = float(np.mean(trainer.losses[-20:]))
        timings["finetune_s"] = time.perf_counter() - t0
        del trainer, opt, net
        if options.finetuned_checkpoint is not None and rank == 0:
            save_checkpoint(clf, options.finetuned_checkpoint)

    t0 = time.perf_counter()
    accuracy_before, _ = _evaluate(options, clf, eval_arrays, "eval unpruned")
    timings["eval_unpruned_s"] = time.perf_counter() - t0
    original_params = param_dict(clf)

    steps = _steps_for(options, train_arrays)
    warmup = options.budget_warmup_steps if options.budget_warmup_steps is not None else steps // 3
    pruner = LRPHeadPruner(PrunerConfig(
        gate=GateSettings(options.temperature, tuple(options.stretch_limits), 1e-6, options.l0_penalty),
        log_a_init=options.log_a_init, target_heads=options.target_heads, budget_warmup_steps=warmup,
        budget_lr=options.budget_lr))
    gated = pruner.apply(clf)
    target = gated.bert.budget.target if gated.bert.budget is not None else None
    report["target_heads"] = target
    settings = pruner.config.gate
    net = BertClassifierWithLoss(gated)
    schedule = linear_schedule(options.learning_rate, steps, options.warmup_fraction) \
        if options.lr_schedule == "linear" else options.learning_rate
    opt = adamw(parameter_groups(net, log_a_lr=options.log_a_lr, weight_decay=options.weight_decay), schedule)
    reducer = make_reducer(opt.parameters) if make_reducer else None
    history: dict[str, list] = {"steps": [], "p_closed": [], "expected_open": [], "loss": [], "target_now": [],
                                "lambda_1": [], "lambda_2": []}

    settle_step = steps - int(round(options.budget_settle_fraction * steps)) if target is not None else -1

    def record(step: int, loss: float) -> None:
        state = pruner.update_budget(gated)  # the controller's ascent step (target mode)
        if step == settle_step and 0 < step < steps:  # keep exactly T heads; the rest of the run adapts to them
            projection = pruner.project_to_target(gated)
            report["settle_projection"] = {"step": step, "open_before": projection["open_before"],
                                           "closed": projection["closed"]}
            logger.info("step %d: projected to the %d heads with the highest P(open) (%d were open); "
                        "training on with them", step, target, projection["open_before"])
        if step % options.gate_log_every == 0 or step == 1 or step == steps:
            p_closed, expected = _gate_snapshot(gated, settings)
            history["steps"].append(step)
            history["p_closed"].append(np.round(p_closed, 5).tolist())
            history["expected_open"].append(round(expected, 4))
            history["loss"].append(round(loss, 5))
            for key in ("target_now", "lambda_1", "lambda_2"):
                history[key].append(None if key not in state else round(state[key], 6))
            if target is not None and (step % 50 == 0 or step == steps):
                logger.info("budget step %d: expected open %.2f, target now %.2f, lambda_1 %.4f, lambda_2 %.5f",
                            step, state["expected_open"], state["target_now"], state["lambda_1"], state["lambda_2"])

    t0 = time.perf_counter()
    trainer = _Trainer(options, net, opt, train_arrays, reducer, rank, "gated")
    trainer.run(steps, on_step=record)
    timings["gated_train_s"] = time.perf_counter() - t0
    report.update(gated_steps=steps, skipped_steps=trainer.scale.skipped, final_loss_scale=trainer.scale.scale,
                  gate_history=history)
    final_log_a = {i: att.gate.log_a.asnumpy().tolist() for i, att in gated.bert.gate_cells()}
    logger.info("rank %d final log_a checksum %.8f", rank, float(sum(np.sum(v) for v in final_log_a.values())))
    report["final_log_a"] = {str(k): v for k, v in final_log_a.items()}
    del trainer, opt, net

    if rank != 0:  # other ranks only train; rank 0 evaluates, converts and writes
        report["rank"] = rank
        return report
    if target is not None:  # make the gated model keep exactly the target first (see convert())
        projection = pruner.project_to_target(gated)
        report["projection"] = {"open_before": projection["open_before"], "closed": projection["closed"]}
    t0 = time.perf_counter()
    accuracy_gated, preds_gated = _evaluate(options, gated, eval_arrays, "eval gated")
    report["gate_values"] = np.round(gated.get_gate_values(), 6).tolist()
    timings["eval_gated_s"] = time.perf_counter() - t0

    pruned = pruner.convert(gated, options.save_dir_path)
    summary = pruner.last_summary
    t0 = time.perf_counter()
    accuracy_pruned, preds_pruned = _evaluate(options, pruned, eval_arrays, "eval pruned")
    timings["eval_pruned_s"] = time.perf_counter() - t0

    latency = _latency_ratio(options, cfg, clf_kwargs=dict(num_labels=clf.num_labels, pooling=clf.pooling),
                             original_params=original_params, pruned=pruned)
    report.update(
        accuracy_before=accuracy_before, accuracy_gated=accuracy_gated, accuracy_pruned=accuracy_pruned,
        pruned_equals_gated=bool(np.array_equal(preds_gated, preds_pruned)),
        heads_kept=summary.heads_kept, heads_kept_per_layer=summary.heads_kept_per_layer,
        heads_removed={str(k): v for k, v in summary.heads_removed.items()},
        kept_heads=summary.kept_heads, params_before=summary.params_before, params_after=summary.params_after,
        attention_flops_before=summary.attention_flops_before, attention_flops_after=summary.attention_flops_after,
        latency=latency, timings=timings, wall_time_s=time.perf_counter() - started,
        save_dir_path=options.save_dir_path)
    report["_pruned_model"] = pruned
    return report


def _latency_ratio(options: PruneOptions, cfg: BertConfig, clf_kwargs: dict, original_params: dict,
                   pruned: nn.Cell) -> dict[str, Any]:
    """Median forward time of the pruned vs the unpruned classifier, interleaved in one run."""
    original = BertClassifier(cfg, False, **clf_kwargs)
    load_param_dict(original, {k: v for k, v in original_params.items() if not k.endswith("log_a")})
    b, s = options.latency_batch_size, options.max_seq_length
    times = compare_latency(original, pruned, b, s, options.latency_repeats)
    del original
    ratio = float(np.median(times["pruned_s"]) / np.median(times["unpruned_s"]))
    return {"batch_size": b, "seq_length": s, **times, "ratio_pruned_over_unpruned": ratio}


def _options_dict(options: PruneOptions) -> dict[str, Any]:
    out = dataclasses.asdict(options)
    out["buckets"] = list(options.buckets)
    out["stretch_limits"] = list(options.stretch_limits)
    return out

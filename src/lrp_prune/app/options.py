"""``PruneOptions``: every knob of a pruning run, each field carrying its own command-line flag.

A field's metadata (:func:`option`) holds its help text, its parser (how a flag's text
becomes a value), its argument group and the commands that offer it; the CLI and
the sample build their flags from it (:func:`add_option_flags`), so a new option is
one new field here. Values are checked once, in ``PruneOptions.__post_init__``, with
the library's validators; named recipes (:mod:`lrp_prune.app.recipes`) are sets of
field values on top of these defaults, which are the original sample's.

Example:
    >>> opts = PruneOptions(task="mnli", data_dir="/data/MNLI", model="bert.json",
    ...                     load_checkpoint_path="bert.ckpt", vocab_file="vocab.txt")
    >>> opts.eval_split_name, opts.resolved_pooling, opts.buckets
    ('dev_matched', 'pooler', (32, 64))
    >>> parse_target("0.5"), parse_target("36"), parse_pair("-0.1,1.1")
    (0.5, 36, (-0.1, 1.1))
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from lrp_prune.data.readers import TASKS
from lrp_prune.errors import (LRPPruneError, check_bool, check_choice, check_fraction, check_int, check_number,
                              expect, is_int)
from lrp_prune.network.bert import POOLINGS
from lrp_prune.network.hard_concrete import GateSettings, initial_log_a
from lrp_prune.pruning.budget import check_targets
from lrp_prune.pruning.lrp import DEFAULT_LOG_A_INIT

__all__ = ["PruneOptions", "MINILM_NAME", "COMMANDS", "option", "add_option_flags", "given_options", "flag_of",
           "parse_bool", "parse_target", "parse_pair", "parse_ints", "parse_log_a_init", "parse_path", "parse_positive_int",
           "parse_names",
           "options_dict"]

MINILM_NAME = "all-MiniLM-L6-v2"
_DEFAULT_EVAL_SPLIT = {"snli": "test", "mnli": "dev_matched", "file": "eval"}  # the other GLUE tasks: dev

#: The commands whose flags come from these fields ("sample" is samples/run_sample_bert.py).
COMMANDS = ("sample", "prune", "demo")
_ALL = COMMANDS
_NOT_DEMO = ("sample", "prune")


# ------------------------------------------------------------------------------------ flag parsers
def parse_bool(text: str) -> bool:
    """The original sample's string booleans: ``true``/``false`` (also 1/0, yes/no)."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected 'true' or 'false', got {text!r}")


def parse_target(text: str) -> float | int:
    """A head budget: an int >= 1 (heads) or a fraction in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1 or a fraction in (0, 1), got {text!r}") from None
    return int(value) if value.is_integer() and value >= 1 else value


def parse_pair(text: str) -> tuple[float, float]:
    """Two comma-separated numbers, e.g. ``-0.1,1.1``."""
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers separated by a comma, got {text!r}") from None
    return a, b


def parse_ints(text: str) -> tuple[int, ...]:
    """Comma-separated integers, e.g. ``32,48,64``."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_names(text: str) -> tuple[str, ...]:
    """Comma-separated names, e.g. ``premise,hypothesis``."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def parse_log_a_init(text: str) -> float | str:
    """A number, ``xavier_uniform`` or ``importance``."""
    if text.strip() in ("xavier_uniform", "importance"):
        return text.strip()
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'xavier_uniform' or 'importance', got {text!r}") from None


def parse_positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, lengths, repeats)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_path(text: str) -> str | None:
    """A path; the empty string means "not given" (the original's scripts pass ``""`` that way).

    Every path flag says in its help what "not given" does.
    """
    return text if text.strip() else None


# ------------------------------------------------------------------------------------ the fields
def option(default: Any, help: str, *, group: str = "recipe", parser: Callable[[str], Any] | None = None,
           commands: Sequence[str] = _ALL, flag: str | None = None, action: str | None = None,
           choices: Sequence[Any] | None = None, extra: Sequence[dict] = (), metavar: str | None = None) -> Any:
    """A ``PruneOptions`` field with its flag's metadata.

    Args:
        default: the field's default (the original sample's value).
        help: the flag's help (the default is appended per command).
        group: the ``--help`` section: ``original``, ``model``, ``recipe`` or ``output``.
        parser: text -> value for the flag (``str`` when omitted).
        commands: the commands offering the flag.
        flag: the flag's name when it is not ``--<field>`` (e.g. ``--no_progress``, ``--out``).
        action: an argparse action instead of a parser (``store_false`` for ``--no_progress``).
        choices: allowed values, shown in ``--help``.
        extra: more flags setting the same field, each a dict with ``flag``, ``help``,
            ``action``, ``const`` and ``commands`` (the demo's ``--full``).
        metavar: the value's name in ``--help``.
    """
    return field(default=default, metadata={
        "help": help, "group": group, "parser": parser, "commands": tuple(commands), "flag": flag,
        "action": action, "choices": choices, "extra": tuple(extra), "metavar": metavar})


@dataclass(frozen=True)
class PruneOptions:
    """Every knob of the flow; the sample's and the CLI's flags are generated from these fields.

    The defaults are the original sample's (MNLI, a converged model, ``l0_penalty``
    0.01); the demo's values are the ``"demo"`` recipe (:mod:`lrp_prune.app.recipes`).
    ``train_steps=None`` trains ``epoch_size`` epochs of the training split.
    """

    # ---- the original sample's flags
    device_target: str = option("CPU", "device to run on", group="original", choices=("CPU", "GPU", "Ascend"),
                                commands=_NOT_DEMO)
    distribute: bool = option(False, "true: MindSpore data parallelism (launch with msrun); each rank trains "
                                     "on its shard", group="original", parser=parse_bool, commands=_NOT_DEMO)
    epoch_size: int = option(1, "epochs of gated fine-tuning when --train_steps is not given", group="original",
                             parser=int, commands=_NOT_DEMO)
    enable_save_ckpt: bool = option(False, "save the model every --save_checkpoint_steps steps of fine-tuning "
                                           "(lrp_finetune-N.ckpt) and gated training (lrp_gated-N.ckpt)",
                                    group="original", parser=parse_bool, commands=_NOT_DEMO)
    enable_lossscale: bool = option(False, "dynamic loss scaling (works on CPU: overflowed steps are skipped, "
                                           "scale halved)", group="original", parser=parse_bool, commands=_NOT_DEMO)
    do_shuffle: bool = option(True, "shuffle the training data each epoch", group="original", parser=parse_bool,
                              commands=_NOT_DEMO)
    enable_data_sink: bool = option(False, "accepted for compatibility; this flow feeds batches step by step and "
                                           "says so in the log", group="original", parser=parse_bool,
                                    commands=_NOT_DEMO)
    data_sink_steps: int = option(1, "steps per sink (with --enable_data_sink)", group="original", parser=int,
                                  commands=_NOT_DEMO)
    load_checkpoint_path: str | None = option(
        None, "ModelZoo-named MindSpore checkpoint to start from (BertCLS, BertCLSModel or BertModel); not "
              "given: the weights of --model (required with a BertConfig JSON)",
        group="original", parser=parse_path)
    save_checkpoint_path: str | None = option(None, "directory of the periodic checkpoints (not given: ./ckpt)",
                                              group="original", parser=parse_path, commands=_NOT_DEMO)
    save_checkpoint_steps: int = option(1000, "steps between periodic checkpoints", group="original", parser=int,
                                        commands=_NOT_DEMO)
    save_checkpoint_num: int = option(1, "how many periodic checkpoints to keep", group="original", parser=int,
                                      commands=_NOT_DEMO)
    data_dir: str | None = option(None, "the task's directory: a GLUE task in GLUE's layout (train.tsv, dev.tsv; "
                                        "MNLI: dev_matched.tsv) or SNLI's jsonl files; not given: --task snli "
                                        "fetches SNLI from the registry, other GLUE tasks are an error",
                                  group="original",
                                  parser=parse_path)
    # ---- model and data
    task: str = option("mnli", "the task: snli, a GLUE classification task in its standard layout under "
                               "--data_dir, or file (your own CSV/TSV/JSONL: --train_file, --eval_file, "
                               "--text_columns, --label_column)", group="model", choices=TASKS)
    train_file: str | None = option(None, "--task file: the training file (.csv, .tsv or .jsonl)", group="model",
                                    parser=parse_path)
    eval_file: str | None = option(None, "--task file: the evaluation file", group="model", parser=parse_path)
    test_file: str | None = option(None, "--task file: an optional test file (evaluate it with --eval_split test)",
                                   group="model", parser=parse_path)
    text_columns: tuple[str, ...] = option(("text",), "--task file: one or two text columns, e.g. review or "
                                                      "premise,hypothesis", group="model", parser=parse_names,
                                           metavar="A[,B]")
    label_column: str = option("label", "--task file: the label column", group="model")
    group_column: str | None = option(None, "--task file: examples sharing it stay on one side of a held-out "
                                            "split (not given: the first text column)", group="model",
                                      parser=parse_path)
    labels: tuple[str, ...] | None = option(None, "the class names in id order, for a head trained with its own "
                                                  "order (not given: integer labels by value, names sorted)",
                                            group="model", parser=parse_names, metavar="A,B,...")
    model: str = option(MINILM_NAME, f"a HuggingFace BERT directory, {MINILM_NAME!r} (cached from the registry), "
                                     "or a BertConfig JSON paired with --load_checkpoint_path", group="model")
    vocab_file: str | None = option(None, "WordPiece vocab.txt (not given: the model directory's)", group="model",
                                    parser=parse_path)
    pooling: str = option("auto", "sentence-pair features: pooler, [CLS] or masked mean (auto: mean for the "
                                  "sentence-transformers MiniLM, whose pooler was never trained, else pooler)",
                          group="model", choices=("auto",) + POOLINGS)
    max_seq_length: int = option(64, "longest tokenized pair (64 covers 99.85%% of SNLI pairs)", group="model",
                                 parser=int)
    buckets: tuple[int, ...] = option((32, 64), "batch lengths, one compile each (83%% of SNLI fits 32); "
                                                "max_seq_length is always the last", group="model",
                                      parser=parse_ints, metavar="N,N,...")
    train_limit: int | None = option(None, "use only the first N shuffled training pairs", group="model",
                                     parser=int)
    eval_limit: int | None = option(None, "evaluate on a fixed, seeded subset of N pairs", group="model",
                                    parser=int)
    eval_split: str | None = option(None, "split to evaluate (not given: snli test, mnli dev_matched); "
                                          "'validation' carves a premise-grouped validation split out of the "
                                          "training data (left out of training) to choose recipes on",
                                    group="model", parser=parse_path)
    validation_fraction: float = option(0.05, "with --eval_split validation: the share of the training premises "
                                              "held out", group="model", parser=float)
    validation_seed: int = option(0, "with --eval_split validation: the seed of the held-out premises",
                                  group="model", parser=int)
    # ---- the training recipe
    method: str = option("lrp", "lrp: Hard Concrete gates trained with an L0 penalty (the original's method); "
                                "fisher: retraining-free (Fisher importance on --importance_examples training "
                                "examples, a mask search to --target_heads, least-squares mask tuning; minutes, "
                                "no training)", choices=("lrp", "fisher"))
    importance_examples: int = option(2048, "--method fisher: training examples the importance and the mask "
                                            "tuning use (drawn with --seed, never the evaluated pairs)", parser=int)
    mask_tuning: bool = option(True, "--method fisher: least-squares tuning of the kept heads' scales, layer by "
                                     "layer (--no_mask_tuning skips it)", flag="--no_mask_tuning",
                               action="store_false")
    finetune_steps: int = option(0, "plain fine-tuning steps before gating (0: the loaded model is already "
                                    "converged)", parser=int)
    finetune_lr: float = option(5e-5, "peak learning rate of the fine-tuning", parser=float)
    finetuned_checkpoint: str | None = option(
        None, "reuse the fine-tuned starting point: load this checkpoint if it exists (fine-tuning skipped), "
              "else fine-tune and save it here; not given: fine-tune every run, save nothing", parser=parse_path)
    train_steps: int | None = option(None, "gated fine-tuning steps (overrides --epoch_size)", parser=int)
    learning_rate: float = option(2e-5, "peak learning rate of the weights in the gated phase", parser=float)
    log_a_lr: float = option(0.1, "learning rate of every log_a (the reference's 0.1)", parser=float)
    weight_decay: float = option(0.01, "decoupled weight decay of the weight matrices", parser=float)
    warmup_fraction: float = option(0.1, "linear warm-up share of each phase's steps", parser=float)
    lr_schedule: str = option("linear", "weights' schedule: linear warm-up then decay to 0, or constant; log_a's "
                                        "rate is constant", choices=("linear", "constant"))
    l0_penalty: float = option(0.01, "lambda of the L0 penalty (a target replaces the recipe's lambda unless "
                                     "both are given)", parser=float)
    target_heads: float | int | None = option(None, "heads to keep (an int, or a fraction in (0, 1)) instead "
                                                    "of guessing --l0_penalty", parser=parse_target)
    structures: tuple[str, ...] = option(("heads",), "what to gate and prune: heads (the original's), "
                                                     "heads,ffn (also every feed-forward unit) or ffn",
                                         parser=parse_names, metavar="heads[,ffn]")
    target_flops: float | None = option(None, "fraction in (0, 1) of the encoder's multiply-adds (attention and "
                                              "feed-forward at --max_seq_length) to keep, instead of "
                                              "--target_heads", parser=float)
    target_speedup: float | None = option(None, "encoder speed-up (> 1) to reach at --latency_batch_size and "
                                                "--max_seq_length, predicted from a latency table of one layer "
                                                "timed on this machine (cached), instead of the other targets",
                                          parser=float)
    budget_warmup_steps: int | None = option(None, "target mode: steps over which the target moves from all "
                                                   "heads to target_heads (not given: a third of the gated steps)",
                                             parser=int)
    budget_lr: float = option(0.001, "target mode: step size of the multipliers (0.01 overshot on MiniLM: every "
                                     "head half-open)", parser=float)
    budget_settle_fraction: float = option(0.25, "target mode: the last share of the gated steps trains with "
                                                 "exactly target_heads heads (projected)", parser=float)
    temperature: float = option(0.33, "Hard Concrete temperature beta", parser=float)
    stretch_limits: tuple[float, float] = option((-0.1, 1.1), "Hard Concrete stretch (gamma, zeta)",
                                                 parser=parse_pair, metavar="GAMMA,ZETA")
    log_a_init: float | str = option(DEFAULT_LOG_A_INIT, "initial log_a of every gate (3: open), xavier_uniform "
                                                         "(the original's), or importance (3 + standardised log "
                                                         "Fisher importance, clipped to [1, 5]; scored on "
                                                         "--importance_examples training examples)",
                                     parser=parse_log_a_init)
    dropout: bool = option(True, "dropout during training (off is 11-16%% faster on CPU)", parser=parse_bool)
    freeze_word_embeddings: bool = option(False, "keep the word-embedding table fixed in every phase (a MiniLM "
                                                 "step is 16%% faster on CPU: the table is half of its parameters)",
                                          parser=parse_bool)
    batch_size: int = option(32, "training batch size", parser=int)
    eval_batch_size: int = option(64, "evaluation batch size (128 evaluates no faster than 64 on CPU)", parser=int)
    seed: int = option(1, "seed of shuffling, gate noise, dropout and init", parser=int)
    distill: bool = option(False, "distil the gated phase (and the control) from a frozen copy of the ungated "
                                  "model at gating time: (1 - alpha) CE + alpha T^2 KL(teacher || student)",
                           parser=parse_bool, flag="--distill", action="store_true",
                           extra=({"flag": "--no_distill", "action": "store_const", "const": False,
                                   "commands": COMMANDS, "help": "no distillation"},))
    distill_alpha: float = option(0.5, "weight of the teacher's soft labels in [0, 1] (0: plain CE)", parser=float)
    distill_temperature: float = option(2.0, "temperature of the distillation softmaxes", parser=float)
    loss_scale: float = option(2.0 ** 16, "initial dynamic loss scale (with --enable_lossscale)", parser=float,
                               commands=_NOT_DEMO)
    loss_scale_window: int = option(1000, "finite steps before the loss scale doubles", parser=int,
                                    commands=_NOT_DEMO)
    # ---- the honest comparison
    control: bool = option(True, "train an equal-budget control: the ungated start, trained exactly as many steps "
                                 "as the gated phase on the same batches (the drop is pruned - max(start, control))",
                           group="output", flag="--no_control", action="store_false")
    control_cache: str | None = option(None, "directory of cached control results (not given: the cache "
                                             "directory's controls/; the control depends only on the start, "
                                             "recipe, seed and pairs, so a lambda sweep pays for it once)",
                                       group="output", parser=parse_path)
    # ---- output
    save_dir_path: str | None = option(None, "where convert() writes the pruned model (docs/design.md §4); not "
                                             "given: OUT/pruned_model with --out, else nothing is saved",
                                       group="output", parser=parse_path)
    out_dir: str | None = option(None, "directory of report.md, report.json and the pictures (not given: "
                                       "--save_dir_path)", group="output", parser=parse_path, flag="--out")
    recipe: str | None = option(None, "the named recipe these options start from (see lrp_prune.app.recipes)",
                                group="output", extra=({"flag": "--full", "action": "store_const",
                                                        "const": "demo-full", "commands": ("demo",),
                                                        "help": "the longer demo recipe: better numbers, all "
                                                                "9,824 test pairs (= --recipe demo-full)"},))
    latency_batch_size: int = option(32, "batch size of the latency probe", group="output", parser=int)
    latency_repeats: int = option(5, "timed repeats of each model in the latency probe", group="output",
                                  parser=int)
    gate_log_every: int = option(10, "record the gates every N gated steps (pictures, report)", group="output",
                                 parser=int)
    progress: bool = option(True, "progress bars", group="output", flag="--no_progress", action="store_false")

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        check_choice(self.task, "task", TASKS)
        check_choice(self.pooling, "pooling", ("auto",) + POOLINGS, expected="auto, pooler, cls or mean")
        check_choice(self.device_target, "device_target", ("CPU", "GPU", "Ascend"), expected="CPU, GPU or Ascend")
        check_choice(self.lr_schedule, "lr_schedule", ("linear", "constant"), expected="'linear' or 'constant'")
        check_choice(self.method, "method", ("lrp", "fisher"), expected="'lrp' or 'fisher'")
        if self.method == "fisher":
            expect(self.target_heads is not None, "target_heads", "a head budget with --method fisher (e.g. 36)",
                   None)
        for name in ("max_seq_length", "batch_size", "eval_batch_size", "epoch_size", "save_checkpoint_steps",
                     "save_checkpoint_num", "data_sink_steps", "latency_batch_size", "latency_repeats",
                     "gate_log_every", "loss_scale_window", "importance_examples"):
            set_(name, check_int(getattr(self, name), name, minimum=1))
        set_("finetune_steps", check_int(self.finetune_steps, "finetune_steps", minimum=0))
        set_("seed", check_int(self.seed, "seed", minimum=0))
        for name in ("train_steps", "train_limit", "eval_limit", "budget_warmup_steps"):
            minimum = 0 if name == "budget_warmup_steps" else 1
            set_(name, check_int(getattr(self, name), name, minimum=minimum, optional=True))
        for name in ("learning_rate", "finetune_lr", "log_a_lr", "budget_lr"):
            set_(name, check_number(getattr(self, name), name, minimum=0, strict=True, expected="a positive number"))
        set_("weight_decay", check_number(self.weight_decay, "weight_decay", minimum=0))
        set_("loss_scale", check_number(self.loss_scale, "loss_scale", minimum=1))
        set_("warmup_fraction", check_number(self.warmup_fraction, "warmup_fraction", minimum=0, maximum=1,
                                             strict_max=True, expected="a number in [0, 1)"))
        set_("budget_settle_fraction", check_fraction(self.budget_settle_fraction, "budget_settle_fraction",
                                                      closed_low=True, expected="a number in [0, 1)"))
        set_("validation_fraction", check_fraction(self.validation_fraction, "validation_fraction",
                                                   expected="a number in (0, 1)"))
        set_("validation_seed", check_int(self.validation_seed, "validation_seed", minimum=0))
        set_("distill_alpha", check_fraction(self.distill_alpha, "distill_alpha", closed_low=True, closed_high=True,
                                             expected="a number in [0, 1]"))
        set_("distill_temperature", check_number(self.distill_temperature, "distill_temperature", minimum=0,
                                                 strict=True, expected="a positive number"))
        for name in ("distribute", "enable_save_ckpt", "enable_lossscale", "do_shuffle", "enable_data_sink",
                     "dropout", "progress", "distill", "control", "freeze_word_embeddings", "mask_tuning"):
            set_(name, check_bool(getattr(self, name), name))
        heads, flops, speedup = check_targets(self.target_heads, self.target_flops, self.target_speedup, "--")
        set_("target_heads", heads)
        set_("target_flops", flops)
        set_("target_speedup", speedup)
        structures = self.structures
        expect(isinstance(structures, (tuple, list)) and len(structures) > 0
               and all(n in ("heads", "ffn") for n in structures) and len(set(structures)) == len(structures),
               "structures", "heads, ffn or heads,ffn", structures)
        set_("structures", tuple(n for n in ("heads", "ffn") if n in structures))
        if self.target_heads is not None:
            expect("heads" in self.structures, "target_heads", "heads among --structures", ",".join(self.structures))
        if self.method == "fisher":
            expect(self.structures == ("heads",), "structures", "heads with --method fisher (it prunes heads only)",
                   ",".join(self.structures))
        gate = self.gate_settings()  # the gate's own rules: temperature, stretch_limits, l0_penalty
        set_("temperature", gate.temperature)
        set_("stretch_limits", gate.stretch_limits)
        set_("l0_penalty", gate.l0_penalty)
        if self.log_a_init != "importance":
            initial_log_a(1, self.log_a_init)  # a finite number or "xavier_uniform"
        if not isinstance(self.log_a_init, str):
            set_("log_a_init", float(self.log_a_init))
        buckets = self.buckets
        expect(isinstance(buckets, (tuple, list)) and all(is_int(b) and b >= 1 for b in buckets), "buckets",
               "a sequence of positive integers", buckets)
        set_("buckets", tuple(sorted({int(b) for b in buckets if b < self.max_seq_length})) + (self.max_seq_length,))
        expect(isinstance(self.text_columns, (tuple, list)) and 1 <= len(self.text_columns) <= 2
               and all(isinstance(c, str) and c for c in self.text_columns), "text_columns",
               "one or two column names", self.text_columns)
        set_("text_columns", tuple(self.text_columns))
        if self.labels is not None:
            expect(isinstance(self.labels, (tuple, list)) and len(set(self.labels)) == len(self.labels) >= 2,
                   "labels", "two or more distinct class names", self.labels)
            set_("labels", tuple(str(v) for v in self.labels))
        if self.task == "file":
            for name in ("train_file", "eval_file"):
                expect(getattr(self, name) is not None, name, "a file with --task file", None)
        if self.recipe is not None:
            from lrp_prune.app.recipes import RECIPES

            check_choice(self.recipe, "recipe", tuple(RECIPES))

    # ------------------------------------------------------------------ derived
    def gate_settings(self) -> GateSettings:
        """The :class:`~lrp_prune.network.hard_concrete.GateSettings` of these options."""
        return GateSettings(temperature=self.temperature, stretch_limits=self.stretch_limits, eps=1e-6,
                            l0_penalty=self.l0_penalty)

    @property
    def resolved_pooling(self) -> str:
        """The pooling used: ``auto`` resolves to ``mean`` for MiniLM and ``pooler`` otherwise."""
        if self.pooling != "auto":
            return self.pooling
        return "mean" if self.model == MINILM_NAME else "pooler"

    @property
    def eval_split_name(self) -> str:
        """The split evaluated: ``eval_split``, or the task's default (snli test, mnli dev_matched, the other
        GLUE tasks dev, file eval)."""
        return self.eval_split or _DEFAULT_EVAL_SPLIT.get(self.task, "dev")

    @property
    def file_task(self) -> dict:
        """The keyword arguments of :func:`~lrp_prune.data.tables.load_files` (``task="file"``)."""
        return {"train_file": self.train_file, "eval_file": self.eval_file, "test_file": self.test_file,
                "text_columns": self.text_columns, "label_column": self.label_column,
                "group_column": self.group_column, "labels": self.labels}

    @property
    def pruned_dir(self) -> str | None:
        """Where the pruned model goes: ``save_dir_path``, else ``out_dir/pruned_model``, else nowhere."""
        if self.save_dir_path is not None:
            return self.save_dir_path
        return str(Path(self.out_dir) / "pruned_model") if self.out_dir is not None else None

    @property
    def report_dir(self) -> str | None:
        """Where report.md, report.json and the pictures go: ``out_dir``, else ``save_dir_path``."""
        return self.out_dir if self.out_dir is not None else self.save_dir_path

    @classmethod
    def from_recipe(cls, name: str | None, **overrides: Any) -> "PruneOptions":
        """The options of a named recipe with ``overrides`` on top (see :mod:`lrp_prune.app.recipes`)."""
        from lrp_prune.app.recipes import recipe

        return recipe(name or "sample").options(**overrides)


def options_dict(options: PruneOptions) -> dict[str, Any]:
    """Plain-JSON dict of every field (tuples as lists)."""
    out = dataclasses.asdict(options)
    for key, value in out.items():
        if isinstance(value, tuple):
            out[key] = list(value)
    return out


# ------------------------------------------------------------------------------------ flags
_GROUP_TITLES = {"original": "flags of the original sample", "model": "model and data",
                 "recipe": "the training recipe", "output": "output"}


def add_option_flags(parser: argparse.ArgumentParser, command: str, defaults: PruneOptions | None = None) -> None:
    """Add the flag of every ``PruneOptions`` field that ``command`` offers.

    Flags default to ``argparse.SUPPRESS``, so :func:`given_options` sees only what the
    user typed; ``--help`` shows each flag's default from ``defaults`` (the command's recipe).
    """
    expect(command in COMMANDS, "command", f"one of {COMMANDS}", command)
    defaults = defaults or PruneOptions()
    groups = {key: parser.add_argument_group(title) for key, title in _GROUP_TITLES.items()}
    for f in fields(PruneOptions):
        meta = f.metadata
        if command in meta["commands"]:
            default = getattr(defaults, f.name)
            shown = "" if meta["action"] or default is None else f" (default: {_shown(default)})"
            kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": meta["help"] + shown}
            if meta["action"]:
                kwargs["action"] = meta["action"]
            else:
                kwargs["type"] = meta["parser"] or str
                if meta["choices"]:
                    kwargs["choices"] = meta["choices"]
                if meta["metavar"]:
                    kwargs["metavar"] = meta["metavar"]
            groups[meta["group"]].add_argument(meta["flag"] or f"--{f.name}", **kwargs)
        for extra in meta["extra"]:
            if command in extra["commands"]:
                groups[meta["group"]].add_argument(extra["flag"], dest=f.name, action=extra["action"],
                                                   const=extra["const"], default=argparse.SUPPRESS,
                                                   help=extra["help"])


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``PruneOptions`` fields the user set on the command line (nothing else)."""
    names = {f.name for f in fields(PruneOptions)}
    return {k: v for k, v in vars(args).items() if k in names}


def flag_of(field_name: str) -> str:
    """The flag that sets ``field_name`` (``--no_progress`` for ``progress``, ``--out`` for ``out_dir``)."""
    for f in fields(PruneOptions):
        if f.name == field_name:
            return f.metadata["flag"] or f"--{f.name}"
    raise LRPPruneError(f"flag_of: expected a PruneOptions field, got {field_name!r}")

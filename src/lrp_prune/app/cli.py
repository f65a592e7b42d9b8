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

__all__ = ["main", "run_sample", "sample_parser", "build_options", "configure_mindspore", "COMMAND_RECIPES"]

logger = logging.getLogger("lrp_prune")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage stays available with --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


#: The recipe each command starts from (``--recipe`` or the demo's ``--full`` choose another).
COMMAND_RECIPES = {"sample": "sample", "prune": "sample", "demo": "demo"}
#: What a command changes on top of its recipe: ``prune`` always writes its report and the model
#: (into ``--save_dir_path`` when that is given, else here).
COMMAND_DEFAULTS: dict[str, dict[str, Any]] = {"prune": {"out_dir": "./lrp_prune_out"}}


def build_options(command: str, args: argparse.Namespace):
    """The ``PruneOptions`` of a command: its recipe, then every flag the user gave.

    Raises:
        LRPPruneError: a value out of range, named by its flag as typed (``--batch_size: ...``).
    """
    from lrp_prune.app.options import flag_of, given_options
    from lrp_prune.app.recipes import recipe

    given = given_options(args)
    name = given.pop("recipe", None) or COMMAND_RECIPES[command]
    try:
        defaults = {} if given.get("save_dir_path") is not None else COMMAND_DEFAULTS.get(command, {})
        return recipe(name).options(**{**defaults, **given})
    except LRPPruneError as err:
        field, sep, rest = str(err).partition(": ")
        if sep and field in given or field == "recipe":
            raise LRPPruneError(f"{flag_of(field)}: {rest}") from None
        raise


def _add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    from lrp_prune.app.options import add_option_flags
    from lrp_prune.app.recipes import recipe

    add_option_flags(parser, command, recipe(COMMAND_RECIPES[command]).options(**COMMAND_DEFAULTS.get(command, {})))


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _guard(fn: Callable[[], int], verbose: bool = False) -> int:
    """Run ``fn``; any failure becomes one ``error: ...`` line on stderr and exit status 2.

    The traceback is printed only with ``--verbose``: bad input is the library's error (its
    message names the flag, what was expected and what was received), a file-system failure
    names the path, anything else is reported as an internal error.
    """
    import traceback

    try:
        return fn()
    except LRPPruneError as err:
        message, trace = str(err), traceback.format_exc()
    except OSError as err:  # a full disk, a missing or unreadable file, a permission
        path = err.filename or ""
        message = f"{path}: {err.strerror or err}" if path else f"{type(err).__name__}: {err.strerror or err}"
        trace = traceback.format_exc()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI's contract: one line, no traceback
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        message = f"internal error: {type(err).__name__}: {first} (run with --verbose for the traceback)"
        trace = traceback.format_exc()
    if verbose:
        print(trace, file=sys.stderr, end="")
    print(f"error: {message}", file=sys.stderr)
    return 2


def configure_mindspore(options):
    """Set the process-wide MindSpore state a run needs; returns its :class:`~lrp_prune.app.runtime.Runtime`.

    GRAPH_MODE on ``options.device_target``, ``ms.set_seed(options.seed)`` (gate noise,
    dropout, init), and with ``options.distribute`` MindSpore's communication and data
    parallel context. Entry points (this CLI, the sample, the benchmarks, your script) call it
    once per run; library functions never do.
    """
    import mindspore as ms

    from lrp_prune.app.runtime import current_runtime

    ms.set_context(mode=ms.GRAPH_MODE, device_target=options.device_target)
    ms.set_seed(options.seed)
    if options.device_target == "CPU":
        _cpu_threads()
    if options.distribute:
        from mindspore import communication
        from mindspore.context import ParallelMode

        communication.init()
        group = communication.get_group_size()
        ms.set_auto_parallel_context(parallel_mode=ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=group)
    return current_runtime(options)


def _cpu_threads() -> None:
    """One CPU kernel thread per core this process may use (MindSpore's default is 25 threads: on
    2 cores a train step measured 6% slower). MindSpore allows setting it once per process."""
    import mindspore as ms

    from lrp_prune.network.compat import cpu_threads_configured

    if cpu_threads_configured():
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ms.device_context.cpu.op_tuning.threads_num(max(1, cores))
    logger.debug("MindSpore CPU kernels: %d threads", cores)


def _run_flow(command: str, args: argparse.Namespace) -> int:
    """Configure MindSpore, run the flow, print the summary, write the report (rank 0)."""
    from lrp_prune.app.pipeline import run_prune
    from lrp_prune.app.report import format_summary, write_report
    options = build_options(command, args)
    if command == "demo":
        logger.info("demo: %s on %s, recipe %s, output in %s", options.model, options.task, options.recipe,
                    options.report_dir)
    report = run_prune(options, configure_mindspore(options))
    if not report.complete:  # a non-zero rank of a distributed run
        return 0
    data = report.to_dict()
    print(format_summary(data))
    if options.report_dir is not None:
        files = write_report(data, options.report_dir)
        print(f"wall time {report.wall_time_s:.0f} s; report: {files['md']}")
    return 0


def sample_parser() -> argparse.ArgumentParser:
    """The sample's parser: every flag of Golden Stick's run_sample_bert.py, plus what a user needs."""
    parser = _Parser(
        prog="run_sample_bert.py",
        description="Prune BERT attention heads on MNLI/SNLI (LRP: Hard Concrete gates + L0 penalty), "
                    "then physically remove the closed heads.")
    _add_flags(parser, "sample")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks of failures")
    return parser


def run_sample(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``samples/run_sample_bert.py``."""
    args = sample_parser().parse_args(argv)
    _setup_logging(args.verbose)
    return _guard(lambda: _run_flow("sample", args), args.verbose)


# ------------------------------------------------------------------------------------ lrp-prune
def _cmd_hello(args: argparse.Namespace) -> int:
    """Fetch all-MiniLM-L6-v2, embed two sentences, print their similarity and the model's size."""
    import mindspore as ms
    import numpy as np

    from lrp_prune.data.tokenization import PairTokenizer
    from lrp_prune.io.assets import fetch_minilm
    from lrp_prune.io.hf import load_hf_bert

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
    return _run_flow("prune", args)


def _cmd_demo(args: argparse.Namespace) -> int:
    return _run_flow("demo", args)


def _cmd_inspect(args: argparse.Namespace) -> int:
    import numpy as np

    from lrp_prune.app.report import gate_table, plot_gate_heatmap
    from lrp_prune.app.tools import inspect_saved

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
    from lrp_prune.io.saved import load_pruned

    model = load_pruned(args.dir)
    if args.format == "onnx":
        from lrp_prune.io.onnx_export import check_onnx, export_onnx

        path = export_onnx(model, args.output or Path(args.dir) / "pruned_model.onnx", opset=args.opset)
        print(f"exported {path} (opset {args.opset}; inputs (batch, sequence), both dynamic)")
        if args.check:
            seq = min(16, model_seq(model))
            print(f"onnxruntime vs MindSpore on random inputs: max |diff| {check_onnx(model, path, ((2, seq),)):.2e}")
        return 0
    from lrp_prune.io.export import export_mindir

    path = export_mindir(model, args.output or Path(args.dir) / "pruned_model.mindir", args.batch_size,
                         args.seq_length)
    print(f"exported {path} for inputs ({args.batch_size}, {args.seq_length or model_seq(model)})")
    return 0


def model_seq(model) -> int:
    from lrp_prune.network.bert import the_bert

    return the_bert(model, "export").config.seq_length


def _cmd_bench(args: argparse.Namespace) -> int:
    from lrp_prune.app.tools import bench_saved

    result = bench_saved(args.dir, batch_size=args.batch_size, seq_length=args.seq_length, repeats=args.repeats)
    print(json.dumps(result, indent=2) if args.json else
          f"batch {result['batch_size']} seq {result['seq_length']}: unpruned {result['unpruned_median_s'] * 1e3:.1f} ms, "
          f"pruned {result['pruned_median_s'] * 1e3:.1f} ms, ratio pruned/unpruned {result['ratio']:.3f} "
          f"(heads {result['heads_kept']}/{result['heads_total']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from lrp_prune.app.options import parse_path, parse_positive_int

    parser = _Parser(prog="lrp-prune", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    hello = sub.add_parser("hello", help="smoke test: fetch all-MiniLM-L6-v2, embed two sentences, print similarity")
    hello.add_argument("first", nargs="?", default="A man is playing a guitar.")
    hello.add_argument("second", nargs="?", default="A person plays the guitar.")
    hello.set_defaults(func=_cmd_hello)
    demo = sub.add_parser("demo", help="prune all-MiniLM-L6-v2 on SNLI end to end (the main job)")
    _add_flags(demo, "demo")
    demo.set_defaults(func=_cmd_demo)
    inspect = sub.add_parser("inspect", help="gates or heads per layer of a gated checkpoint or pruned directory")
    inspect.add_argument("path", help="a pruned directory, or a gated .ckpt")
    inspect.add_argument("--png", default=None, type=parse_path,
                         help="where to write the picture (not given or \"\": inspect.png beside the input)")
    inspect.set_defaults(func=_cmd_inspect)
    export = sub.add_parser("export", help="export a pruned directory to MindIR or ONNX")
    export.add_argument("dir", help="a pruned directory")
    export.add_argument("--format", choices=("mindir", "onnx"), default="mindir",
                        help="mindir (fixed shapes, MindSpore's exporter) or onnx (dynamic batch and sequence; "
                             "needs pip install \"lrp_prune[onnx]\")")
    export.add_argument("--output", default=None, type=parse_path,
                        help="the file (not given or \"\": DIR/pruned_model.mindir or DIR/pruned_model.onnx)")
    export.add_argument("--batch_size", type=parse_positive_int, default=1,
                        help="batch size of the exported MindIR graph (ONNX: dynamic)")
    export.add_argument("--seq_length", type=parse_positive_int, default=None,
                        help="sequence length of the MindIR graph (default: the config's; ONNX: dynamic)")
    export.add_argument("--opset", type=parse_positive_int, default=17, help="ONNX opset (13 or later)")
    export.add_argument("--check", action="store_true",
                        help="ONNX: run the file in onnxruntime and print its largest difference from MindSpore")
    export.set_defaults(func=_cmd_export)
    bench = sub.add_parser("bench", help="latency of a pruned model vs its original")
    bench.add_argument("dir", help="a pruned directory")
    bench.add_argument("--batch_size", type=parse_positive_int, default=32, help="batch size")
    bench.add_argument("--seq_length", type=parse_positive_int, default=64, help="sequence length")
    bench.add_argument("--repeats", type=parse_positive_int, default=10, help="timed repeats of each model")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=_cmd_bench)
    prune = sub.add_parser("prune", help="the sample's flow on your model and data (same flags)")
    _add_flags(prune, "prune")
    prune.set_defaults(func=_cmd_prune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lrp-prune`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    _setup_logging(verbose)
    return _guard(lambda: args.func(args), verbose)

#!/usr/bin/env python
"""The lrp_prune benchmark harness: one entry point, JSON + a short markdown table.

    python benchmarks/run.py            # full: BERT-base shapes, batches 1/8/32, accuracy curve (hours)
    python benchmarks/run.py --quick    # fewer layers/batches/repeats, no accuracy curve (minutes)
    python benchmarks/run.py --smoke    # tiny models, 1 repeat: checks the harness itself (~2 min)
    python benchmarks/run.py --sections exactness,speedup --out r.json --md r.md

Sections: exactness, speedup, peer (PyTorch/HF, skipped with a reason without torch),
train_overhead, convert_time, accuracy_curve (full mode only; --smoke runs it on tiny data).
Every timed figure is reported as min/median/max over repeats; the headline figures are ratios
of two things measured in alternation within this run. The JSON is rewritten (atomically)
after every section, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("GLOG_v", "3")
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from common import (REPO, atomic_write_json, atomic_write_text, load_average, machine_info, rss_gb,  # noqa: E402
                    tests_on_path, utc_now, versions)

SCHEMA = "lrp_prune-bench/1"
SECTIONS = ("exactness", "speedup", "peer", "train_overhead", "convert_time", "accuracy_curve")
MODES = ("smoke", "quick", "full")

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, seq_length=128)
MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536, seq_length=64)
TINY = dict(vocab_size=512, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
            seq_length=16, max_position_embeddings=64)


# ============================================================================= plans
def make_plans(mode: str) -> dict[str, dict[str, Any]]:
    """Sizes and repeats of every section for ``mode``."""
    from sections import bert_config

    levels = (0.25, 0.5, 0.75, 0.9)
    if mode == "smoke":
        tiny = bert_config(**TINY)
        return {
            "exactness": {"config": bert_config(**dict(TINY, num_hidden_layers=3)), "batch_size": 2, "seq_length": 16},
            "latency": {"config": tiny, "seq_length": 16, "batch_sizes": (1, 2), "repeats": {1: 1, 2: 1},
                        "levels": levels},
            "train_overhead": {"config": tiny, "batch_size": 4, "seq_length": 16, "repeats": 1, "warmup": 0},
            "convert_time": {"config": tiny, "repeats": 1, "with_save": True},
            "accuracy_curve": {"tiny": True},
        }
    if mode == "quick":
        return {
            "exactness": {"config": bert_config(**dict(BERT_BASE, num_hidden_layers=4)), "batch_size": 2,
                          "seq_length": 128},
            "latency": {"config": bert_config(**dict(BERT_BASE, num_hidden_layers=6)), "seq_length": 128,
                        "batch_sizes": (1, 8), "repeats": {1: 10, 8: 5}, "levels": levels},
            "train_overhead": {"config": bert_config(**MINILM), "batch_size": 16, "seq_length": 64, "repeats": 6,
                               "warmup": 1},
            "convert_time": {"config": bert_config(**BERT_BASE), "repeats": 3},
            "accuracy_curve": {"skip": "full mode only (about 10-15 minutes a point)"},
        }
    return {
        "exactness": {"config": bert_config(**BERT_BASE), "batch_size": 2, "seq_length": 128},
        "latency": {"config": bert_config(**BERT_BASE), "seq_length": 128, "batch_sizes": (1, 8, 32),
                    "repeats": {1: 30, 8: 12, 32: 6}, "levels": levels},
        "train_overhead": {"config": bert_config(**MINILM), "batch_size": 32, "seq_length": 64, "repeats": 12,
                           "warmup": 1},
        "convert_time": {"config": bert_config(**BERT_BASE), "repeats": 5, "with_save": True},
        "accuracy_curve": {},
    }


# ============================================================================= context
class Context:
    """What sections share: the result document, where it goes, progress lines, partial saves."""

    def __init__(self, doc: dict[str, Any], out: Path, md: Path, quiet: bool = False) -> None:
        self.doc = doc
        self.out = out
        self.md = md
        self.quiet = quiet
        self.torch_threads: int | None = None
        self.current: str | None = None
        self.started = time.perf_counter()

    def progress(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:7.1f}s] {message}", flush=True)

    def save(self) -> None:
        self.doc["finished_at"] = utc_now()
        self.doc["wall_time_s"] = round(time.perf_counter() - self.started, 1)
        self.doc["machine"]["load_average_end"] = load_average()
        self.doc["headline"] = headline(self.doc)
        atomic_write_json(self.out, self.doc)
        atomic_write_text(self.md, render_markdown(self.doc))

    def save_partial(self, data: dict[str, Any]) -> None:
        """Record what the running section has so far (status ``running``) and write the files."""
        if self.current is not None:
            self.doc["sections"][self.current] = dict(data, status="running", seconds=None)
            self.save()


def run_section(ctx: Context, name: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one section; record ok / error (with the traceback's tail) and its seconds; save."""
    ctx.current = name
    ctx.progress(f"section {name} ...")
    t0 = time.perf_counter()
    try:
        result = fn()
        entry = dict(result, status="ok")
    except Exception as err:  # one failing section must not cost the others
        entry = {"status": "error", "error": f"{type(err).__name__}: {err}"[:2000],
                 "traceback": traceback.format_exc()[-4000:]}
        ctx.progress(f"section {name} FAILED: {entry['error']}")
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    entry["rss_gb_after"] = rss_gb()
    ctx.doc["sections"][name] = entry
    ctx.current = None
    ctx.save()
    ctx.progress(f"section {name}: {entry['status']} in {entry['seconds']:.1f}s")


def skip(ctx: Context, name: str, reason: str) -> None:
    ctx.doc["sections"][name] = {"status": "skipped", "reason": reason, "seconds": 0.0}
    ctx.save()
    ctx.progress(f"section {name}: skipped ({reason})")


# ============================================================================= the accuracy curve
def curve_section(args: argparse.Namespace, ctx: Context, mode: str, png: Path) -> dict[str, Any]:
    import curve

    points = curve.parse_points(args.curve_points) if args.curve_points else list(curve.DEFAULT_POINTS)
    base = dict(curve.DEFAULT_BASE)
    title = "all-MiniLM-L6-v2 on SNLI test"
    tmp = None
    if mode == "smoke":  # tiny MNLI-layout data and a tiny ModelZoo checkpoint (tests/helpers.py)
        import tempfile

        tests_on_path()
        from helpers import write_tiny_nli

        tmp = tempfile.TemporaryDirectory(prefix="lrp_bench_curve_")
        tiny = write_tiny_nli(tmp.name, n_train=96, n_dev=40)
        base = dict(recipe="sample", task="mnli", data_dir=tiny["data_dir"], model=tiny["config_json"],
                    load_checkpoint_path=tiny["checkpoint"], vocab_file=tiny["vocab_file"], max_seq_length=16,
                    buckets=(16,), batch_size=8, eval_batch_size=16, finetune_steps=4, finetune_lr=1e-3,
                    train_steps=12, learning_rate=1e-3, dropout=False, latency_batch_size=4, latency_repeats=1,
                    progress=False, seed=1, control_cache=str(Path(tmp.name) / "controls"))
        if not args.curve_points:
            points = [("l0", 0.05), ("target", 6)]
        title = "smoke: tiny random BERT on tiny synthetic NLI"
    if args.curve_options:
        base.update(json.loads(args.curve_options))
    try:
        return curve.accuracy_curve(base, points, png, ctx, title=title)
    finally:
        if tmp is not None:
            tmp.cleanup()


# ============================================================================= headline and markdown
def headline(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The few figures to read first: each a ratio or difference measured within this run."""
    out: list[dict[str, Any]] = []
    sec = doc.get("sections", {})

    def ok(name: str) -> dict[str, Any] | None:
        s = sec.get(name)
        return s if s and s.get("status") == "ok" else None

    if (s := ok("exactness")):
        out.append({"name": "max abs(pruned - gated), eval, after convert", "value": s["max_abs_diff"]["pruned_vs_gated"],
                    "goal": "<= 1e-5"})
        out.append({"name": "max abs(BertModel - numpy reference)", "value": s["max_abs_diff"]["model_vs_reference"],
                    "goal": "float32 round-off"})
    if (s := ok("speedup")):
        for row in s["rows"]:
            if row["fraction_removed"] == 0.5:
                out.append({"name": f"speed-up, 50% heads removed, batch {row['batch_size']}",
                            "value": row["measured_speedup"], "goal": f"ideal {row['ideal_speedup']}"})
        real = sorted(r["realisation"] for r in s["rows"])
        out.append({"name": "realisation (measured / ideal), median over rows", "value": real[len(real) // 2],
                    "goal": "1.0 = time proportional to FLOPs"})
    if (s := ok("peer")):
        for b in sorted({r["batch_size"] for r in s["rows"]}):
            vals = sorted(r["ms_over_torch_unpruned"] for r in s["rows"] if r["batch_size"] == b)
            out.append({"name": f"MindSpore / PyTorch latency, unpruned, batch {b} (median over levels)",
                        "value": vals[len(vals) // 2], "goal": None})
    if (s := ok("train_overhead")):
        out.append({"name": "gated / ungated train step", "value": s["ratio_gated_over_ungated"], "goal": "<= 1.05"})
        if s.get("ms_over_torch_train_step") is not None:
            out.append({"name": "MindSpore / PyTorch train step, ungated", "value": s["ms_over_torch_train_step"],
                        "goal": None})
    if (s := ok("convert_time")):
        out.append({"name": "convert() seconds (median)", "value": s["convert_s"]["median"], "goal": "<= 2"})
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def _mmm(st: dict[str, Any] | None, scale: float = 1.0, digits: int = 3) -> str:
    """``median [min-max]`` of a stats dict."""
    if not st:
        return "-"
    return (f"{st['median'] * scale:.{digits}f} [{st['min'] * scale:.{digits}f}-{st['max'] * scale:.{digits}f}]")


def render_markdown(doc: dict[str, Any]) -> str:
    m, v = doc["machine"], doc["versions"]
    lines = [f"# lrp_prune benchmarks ({doc['mode']} mode)", "",
             f"- date: {doc['started_at']} to {doc.get('finished_at', '-')} (wall {doc.get('wall_time_s', '-')} s)"
             f"{'' if doc.get('complete') else ' - INCOMPLETE'}",
             f"- machine: {m['cpu_model']}, {m['logical_cores']} logical cores, {m['memory_gb']} GB; "
             f"load average at start {m.get('load_average_start')}, at end {m.get('load_average_end')}",
             f"- versions: python {v['python']}, mindspore {v['mindspore']}, numpy {v['numpy']}, "
             f"lrp_prune {v['lrp_prune']} (git {v.get('git_commit')}{' dirty' if v.get('git_dirty') else ''}), "
             f"torch {v['torch'] or 'absent'}, transformers {v['transformers'] or 'absent'}",
             f"- threads: {doc['settings']['threads_note']}",
             "- figures: median [min-max] over repeats; ratios are of medians measured in alternation in this run", ""]
    if doc.get("headline"):
        lines += ["## Headline", "", "| figure | value | goal |", "|---|---|---|"]
        lines += [f"| {h['name']} | {_fmt(h['value'], 4)} | {h.get('goal') or ''} |" for h in doc["headline"]]
        lines.append("")
    sec = doc["sections"]
    for name in SECTIONS:
        s = sec.get(name)
        if s is None:
            continue
        lines.append(f"## {name}")
        lines.append("")
        if s["status"] == "skipped":
            lines += [f"skipped: {s['reason']}", ""]
            continue
        if s["status"] == "error":
            lines += [f"ERROR: `{s['error'][:300]}`", ""]
            continue
        if s["status"] == "running":
            lines += ["(running; partial)", ""]
        lines += _render_section(name, s)
        lines.append("")
    return "\n".join(lines) + "\n"


def _shape_line(sh: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sh.items())


def _render_section(name: str, s: dict[str, Any]) -> list[str]:
    out = []
    if "shapes" in s:
        out += [f"shapes: {_shape_line(s['shapes'])}", ""]
    if name == "exactness":
        out += ["| check | max abs diff sequence | max abs diff pooled |", "|---|---|---|"]
        for key, label in (("pruned_vs_gated", "pruned vs gated (eval) after convert"),
                           ("model_vs_reference", "BertModel vs numpy reference (float64)"),
                           ("pruned_vs_reference_gated", "pruned vs reference with gates")):
            if key in s:
                out.append(f"| {label} | {_fmt(s[key]['sequence_output'])} | {_fmt(s[key]['pooled_output'])} |")
        g = s.get("gates", {})
        out += ["", f"gate pattern: {g.get('closed')} closed, {g.get('open')} open, {g.get('fractional')} fractional; "
                    f"heads kept per layer {g.get('heads_kept_per_layer')}"]
    elif name == "speedup":
        out += ["| batch | removed | heads kept | ideal | measured | paired min-max | realisation | unpruned ms | pruned ms |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            p = r["paired_speedup"]
            out.append(f"| {r['batch_size']} | {r['fraction_removed']:.0%} | {r['heads_kept']} | {r['ideal_speedup']:.2f} | "
                       f"{r['measured_speedup']:.2f} | {p['min']:.2f}-{p['max']:.2f} | {r['realisation']:.2f} | "
                       f"{_mmm(r['unpruned_s'], 1e3, 1)} | {_mmm(r['pruned_s'], 1e3, 1)} |")
        out += ["", "heads kept per layer: " + "; ".join(
            f"{p['fraction_removed']:.0%}: {p['heads_kept_per_layer']}" for p in s.get("patterns", []))]
    elif name == "peer":
        out += [f"PyTorch: {s.get('torch_threads')} threads, attention {s.get('attn_implementation')}, "
                f"heads removed by {', '.join(s.get('prune_method', []))}", "",
                "| batch | removed | MS/PT unpruned | MS/PT pruned | PT speed-up | MS speed-up | PT unpruned ms | PT pruned ms | max diff MS vs PT |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            d = r["max_abs_diff_vs_mindspore"]
            out.append(f"| {r['batch_size']} | {r['fraction_removed']:.0%} | {r['ms_over_torch_unpruned']:.2f} | "
                       f"{r['ms_over_torch_pruned']:.2f} | {r['torch_measured_speedup']:.2f} | {r['ms_measured_speedup']:.2f} | "
                       f"{_mmm(r['torch_unpruned_s'], 1e3, 1)} | {_mmm(r['torch_pruned_s'], 1e3, 1)} | "
                       f"{_fmt(max(d['unpruned'], d['pruned']))} |")
    elif name == "train_overhead":
        out += ["| gated / ungated | paired min-max | gated step s | ungated step s | goal |", "|---|---|---|---|---|",
                f"| {s['ratio_gated_over_ungated']:.3f} | {s['paired_ratio']['min']:.3f}-{s['paired_ratio']['max']:.3f} | "
                f"{_mmm(s['gated_step_s'])} | {_mmm(s['ungated_step_s'])} | <= {s['goal']} |"]
        if s.get("input_check"):
            c = s["input_check"]
            out += ["", f"Input check of a top-level call (host, numpy): {_mmm(c['check_s'], 1e6, 1)} us, "
                        f"{100 * c['fraction_of_forward']:.3f}% of the eval forward ({_mmm(c['forward_s'], 1e3, 1)} ms) "
                        f"at the same batch (goal < 1%)"]
        if s.get("torch_step_s"):
            pr = s["paired_ms_over_torch"]
            out += ["", f"PyTorch peer ({s['torch_peer']['optimizer']}, {s['torch_peer']['torch_threads']} threads): "
                        f"step {_mmm(s['torch_step_s'])} s; MindSpore (ungated) / PyTorch "
                        f"{s['ms_over_torch_train_step']:.3f} (paired {pr['min']:.3f}-{pr['max']:.3f})"]
    elif name == "convert_time":
        peak = s.get("peak_extra_mb", {})
        out += ["| convert s (BertModel, rebuilt) | convert s (own Cell, copied) | apply s | heads kept | with save s "
                "| peak extra MiB (rebuilt / copied; parameters) | goal |", "|---|---|---|---|---|---|---|",
                f"| {_mmm(s['convert_s'])} | {_mmm(s.get('convert_copy_s'))} | {_mmm(s['apply_s'])} | "
                f"{s['heads_kept']}/{s['heads_total']} | {_fmt(s.get('convert_with_save_s'))} | "
                f"{_mmm(peak.get('rebuild'), 1, 0)} / {_mmm(peak.get('copy'), 1, 0)}; {s.get('params_mb')} | "
                f"<= {s['goal_s']} s |"]
    elif name == "accuracy_curve":
        out += [f"picture: `{s.get('png')}`; start accuracy {_mmm(s.get('unpruned_accuracy'), 100, 2)} %; "
                f"equal-budget control {_mmm(s.get('control_accuracy'), 100, 2)} %", "",
                "| point | heads kept | accuracy pruned | accuracy gated | start | control | drop vs max(start, control) "
                "[95% interval] | pruned == gated | s |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in s.get("rows", []):
            control = "-" if r.get("accuracy_control") is None else f"{100 * r['accuracy_control']:.2f}"
            drop = "-" if r.get("drop") is None else \
                f"{100 * r['drop']:+.2f} [{100 * r['drop_ci95'][0]:+.2f}, {100 * r['drop_ci95'][1]:+.2f}]"
            out.append(f"| {r['label']} | {r['heads_kept']}/{r['total_heads']} | {100 * r['accuracy_pruned']:.2f} | "
                       f"{100 * r['accuracy_gated']:.2f} | {100 * r['accuracy_before']:.2f} | {control} | {drop} | "
                       f"{r['pruned_equals_gated']} | {r['seconds']:.0f} |")
    return out


# ============================================================================= schema check
_STATS_KEYS = ("min", "median", "max", "n", "values")
_SECTION_KEYS = {
    "exactness": ("shapes", "model_vs_reference", "pruned_vs_gated", "pruned_vs_reference_gated", "max_abs_diff"),
    "speedup": ("shapes", "levels", "patterns", "rows"),
    "peer": ("shapes", "rows", "torch_threads", "prune_method"),
    "train_overhead": ("shapes", "ratio_gated_over_ungated", "gated_step_s", "ungated_step_s", "paired_ratio"),
    "convert_time": ("shapes", "convert_s", "apply_s", "heads_kept"),
    "accuracy_curve": ("rows", "unpruned_accuracy", "png", "base_options"),
}
_ROW_KEYS = {
    "speedup": ("batch_size", "seq_length", "fraction_removed", "heads_kept", "ideal_speedup", "measured_speedup",
                "realisation", "paired_speedup", "unpruned_s", "pruned_s"),
    "peer": ("batch_size", "fraction_removed", "ms_over_torch_unpruned", "ms_over_torch_pruned", "torch_unpruned_s",
             "torch_pruned_s", "ms_unpruned_s", "ms_pruned_s", "max_abs_diff_vs_mindspore"),
    "accuracy_curve": ("kind", "value", "heads_kept", "accuracy_pruned", "accuracy_gated", "accuracy_before"),
}


def check_stats(st: Any, where: str) -> list[str]:
    if not isinstance(st, dict) or any(k not in st for k in _STATS_KEYS):
        return [f"{where}: expected a stats object with {_STATS_KEYS}, got {st!r:.100}"]
    if not (st["min"] <= st["median"] <= st["max"]) or st["n"] != len(st["values"]) or st["n"] < 1:
        return [f"{where}: inconsistent stats {st}"]
    return []


def validate(doc: dict[str, Any]) -> list[str]:
    """Problems with a result document (empty when it follows the schema)."""
    problems = []
    for key in ("schema", "mode", "started_at", "finished_at", "complete", "machine", "versions", "settings",
                "sections", "headline"):
        if key not in doc:
            problems.append(f"missing top-level key {key!r}")
    if problems:
        return problems
    if doc["schema"] != SCHEMA or doc["mode"] not in MODES:
        problems.append(f"schema/mode: got {doc['schema']!r}/{doc['mode']!r}")
    for key in ("cpu_model", "logical_cores", "memory_gb"):
        if key not in doc["machine"]:
            problems.append(f"machine: missing {key!r}")
    for key in ("python", "mindspore", "numpy", "torch", "transformers"):
        if key not in doc["versions"]:
            problems.append(f"versions: missing {key!r}")
    for name, s in doc["sections"].items():
        if name not in SECTIONS:
            problems.append(f"unknown section {name!r}")
            continue
        status = s.get("status")
        if status not in ("ok", "skipped", "error"):
            problems.append(f"{name}: status {status!r}")
            continue
        if not isinstance(s.get("seconds"), (int, float)):
            problems.append(f"{name}: seconds missing")
        if status == "skipped" and not isinstance(s.get("reason"), str):
            problems.append(f"{name}: skipped without a reason")
        if status == "error" and not isinstance(s.get("error"), str):
            problems.append(f"{name}: error without a message")
        if status != "ok":
            continue
        for key in _SECTION_KEYS[name]:
            if key not in s:
                problems.append(f"{name}: missing {key!r}")
        for i, row in enumerate(s.get("rows", [])):
            for key in _ROW_KEYS.get(name, ()):
                if key not in row:
                    problems.append(f"{name}.rows[{i}]: missing {key!r}")
            for key, value in row.items():
                if key.endswith("_s") and isinstance(value, dict) or key.startswith("paired"):
                    problems += check_stats(value, f"{name}.rows[{i}].{key}")
        for key in ("gated_step_s", "ungated_step_s", "paired_ratio", "convert_s", "apply_s", "unpruned_accuracy"):
            if key in s:
                problems += check_stats(s[key], f"{name}.{key}")
    for h in doc["headline"]:
        if not isinstance(h, dict) or "name" not in h or "value" not in h:
            problems.append(f"headline entry {h!r:.100}")
    return problems


# ============================================================================= main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller models, batches 1 and 8, fewer repeats, no curve")
    size.add_argument("--smoke", action="store_true",
                      help="tiny models and 1 repeat: checks the harness (default output under results/smoke/)")
    p.add_argument("--out", default=None, help="JSON output (default benchmarks/results/latest.json)")
    p.add_argument("--md", default=None, help="markdown output (default benchmarks/RESULTS.md)")
    p.add_argument("--png", default=None, help="accuracy curve picture (default: accuracy_vs_heads.png beside --out)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="PyTorch intra-op threads (default: as many as MindSpore's CPU kernels use)")
    p.add_argument("--ms-threads", type=int, default=None,
                   help="MindSpore CPU kernel threads (default: MindSpore's own choice, left unset)")
    p.add_argument("--curve-points", default=None,
                   help="accuracy-curve points, e.g. 'l0:0.005,l0:0.01,l0:0.02,l0:0.05,target:36,target:18'")
    p.add_argument("--curve-options", default=None,
                   help="JSON object of PruneOptions fields overriding the curve's base options, "
                        "e.g. '{\"finetune_steps\": 600, \"eval_limit\": 2000}'")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        p.error(f"--sections: expected names from {','.join(SECTIONS)}, got {unknown or 'none'}")
    args.chosen = [s for s in SECTIONS if s in chosen]
    results = REPO / "benchmarks" / "results"
    if args.out is None:
        args.out = str(results / "smoke" / "latest.json") if args.smoke else str(results / "latest.json")
    if args.md is None:
        args.md = str(results / "smoke" / "RESULTS.md") if args.smoke else str(REPO / "benchmarks" / "RESULTS.md")
    if args.png is None:
        args.png = str(Path(args.out).parent / "accuracy_vs_heads.png")
    return args


def _mindspore_threads() -> int | None:
    """The CPU kernel threads MindSpore chose (its deprecated ``runtime_num_threads`` context key)."""
    import warnings

    import mindspore as ms

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ms.get_context("runtime_num_threads")
        return int(value) if value else None
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import mindspore as ms

    cpus = os.cpu_count() or 1
    if args.ms_threads:
        ms.device_context.cpu.op_tuning.threads_num(args.ms_threads)
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    ms_threads = args.ms_threads or _mindspore_threads() or cpus
    import sections as S
    import hf_peer

    doc: dict[str, Any] = {
        "schema": SCHEMA, "mode": args.mode, "argv": sys.argv[1:] if argv is None else list(argv),
        "started_at": utc_now(), "finished_at": None, "wall_time_s": None, "complete": False,
        "machine": machine_info(), "versions": versions(),
        "settings": {"sections": args.chosen, "graph_mode": True, "device_target": "CPU",
                     "mindspore_threads": ms_threads, "mindspore_threads_set_by_harness": bool(args.ms_threads),
                     "torch_threads": None, "threads_note": ""},
        "sections": {}, "headline": [],
    }
    ctx = Context(doc, Path(args.out), Path(args.md), quiet=args.quiet)
    plans = make_plans(args.mode)
    wants_torch = "peer" in args.chosen or "train_overhead" in args.chosen  # both time a PyTorch peer
    peer_reason = hf_peer.available() if wants_torch else None
    if wants_torch and peer_reason is None:
        info = hf_peer.set_threads(args.torch_threads or ms_threads)
        ctx.torch_threads = info["torch_threads"]
        doc["settings"].update(info)
    doc["settings"]["threads_note"] = (
        f"MindSpore CPU kernels: {ms_threads} ({'--ms-threads' if args.ms_threads else 'its default'}); "
        + (f"PyTorch: {ctx.torch_threads} intra-op, 1 inter-op; " if ctx.torch_threads else "PyTorch: not used; ")
        + f"{cpus} CPUs")
    ctx.progress(f"mode {args.mode}; sections {','.join(args.chosen)}; writing {args.out} and {args.md}")
    ctx.save()

    if "exactness" in args.chosen:
        run_section(ctx, "exactness", lambda: S.exactness(plans["exactness"], ctx))
    want_speed, want_peer = "speedup" in args.chosen, "peer" in args.chosen and peer_reason is None
    if "peer" in args.chosen and peer_reason is not None:
        skip(ctx, "peer", peer_reason)
    if want_speed or want_peer:
        holder: dict[str, Any] = {}
        name = "speedup" if want_speed else "peer"

        def measure() -> dict[str, Any]:
            holder.update(S.latency(plans["latency"], ctx, peer=want_peer))
            return holder[name]

        run_section(ctx, name, measure)
        if want_speed and want_peer:  # measured in the same loop; record the peer's half beside it
            entry = ctx.doc["sections"]["speedup"]
            if holder.get("peer") is not None:
                ctx.doc["sections"]["peer"] = dict(holder["peer"], status="ok", seconds=0.0,
                                                   note="measured in the speedup section's interleaved loop")
            else:
                ctx.doc["sections"]["peer"] = {k: entry[k] for k in ("status", "error", "traceback", "seconds") if k in entry}
            ctx.save()
    if "train_overhead" in args.chosen:
        run_section(ctx, "train_overhead", lambda: S.train_overhead(plans["train_overhead"], ctx))
    if "convert_time" in args.chosen:
        run_section(ctx, "convert_time", lambda: S.convert_time(plans["convert_time"], ctx))
    if "accuracy_curve" in args.chosen:
        if "skip" in plans["accuracy_curve"]:
            skip(ctx, "accuracy_curve", plans["accuracy_curve"]["skip"])
        else:
            run_section(ctx, "accuracy_curve", lambda: curve_section(args, ctx, args.mode, Path(args.png)))

    doc["complete"] = True
    ctx.save()
    problems = validate(doc)
    for problem in problems:
        print(f"schema problem: {problem}", file=sys.stderr)
    errors = [n for n, s in doc["sections"].items() if s["status"] == "error"]
    ctx.progress(f"done in {doc['wall_time_s']} s; {args.out}, {args.md}"
                 + (f"; sections with errors: {errors}" if errors else ""))
    return 1 if errors or problems else 0


if __name__ == "__main__":
    sys.exit(main())

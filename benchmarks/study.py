#!/usr/bin/env python
"""Recipe studies: every run recorded, recipes chosen on a validation split, reported on test pairs.

    python benchmarks/study.py select [--recipes a,b] [--budgets 36,18] [--seeds 1]
    python benchmarks/study.py final --recipes NAME [--seeds 1,2,3] [--budgets 36,18]
    python benchmarks/study.py render

``select`` evaluates on a premise-grouped validation split carved out of SNLI's training data
(``eval_split="validation"``: 5% of the premises, seed 0, left out of training; 2,000 of its
pairs), never on the test pairs the README reports. ``final`` runs a chosen recipe on all 9,824
SNLI test pairs and also scores the demo's fixed 2,000-pair subset from the same predictions
(``--set '{"eval_limit": 2000}'``: the demo's 2,000 pairs only).
Every run appends one JSON line to ``benchmarks/results/study.jsonl`` (recipe, seed, heads,
start / control / gated / pruned accuracy, the drop against max(start, control) with its paired
95% interval, seconds) and ``benchmarks/STUDIES.md`` is regenerated from it; ``run.py`` never
touches either. A budget is a head count: ``36`` runs the recipe as it is (its lambda keeps
about 36 heads); another count uses the recipe's lambda for it from ``LAMBDA_FOR`` or, without
one, ``target_heads`` (the target lands exactly, but see ``LAMBDA_FOR``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GLOG_v", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
JSONL = HERE / "results" / "study.jsonl"
STUDIES = HERE / "STUDIES.md"

#: Candidate recipes: overrides on top of the demo's recipe (lrp_prune.app.recipes.DEMO).
CANDIDATES: dict[str, dict[str, Any]] = {
    "demo-0.1": {},  # the demo as it was before this study (230 + 190 steps, l0 0.012)
    "distill": dict(distill=True, distill_alpha=0.5, distill_temperature=2.0),
    "distill-a0.9": dict(distill=True, distill_alpha=0.9, distill_temperature=2.0),
    "gated-longer": dict(finetune_steps=150, train_steps=270),
    "gated-longer-distill": dict(finetune_steps=150, train_steps=270, distill=True, distill_alpha=0.5),
    "lr2e-4": dict(finetune_lr=2e-4, learning_rate=2e-4),
    # word embeddings (half of MiniLM's parameters) out of the optimizer: ~16% less per step here
    "frozen-emb": dict(freeze_word_embeddings=True),
    "frozen-emb-distill": dict(freeze_word_embeddings=True, distill=True, distill_alpha=0.5,
                               distill_temperature=2.0),
    # to fit 600 s with the control arm: frozen word embeddings, 180 + 150 steps, lambda scaled
    # so that lambda x gated steps stays about the demo's (0.012 x 190 ~ 0.015 x 150)
    "fast": dict(freeze_word_embeddings=True, finetune_steps=180, train_steps=150, l0_penalty=0.015),
    "fast-distill": dict(freeze_word_embeddings=True, finetune_steps=180, train_steps=150, l0_penalty=0.015,
                         distill=True, distill_alpha=0.5, distill_temperature=2.0),
    # retraining-free (Kwon et al.): no training after the fine-tuning; the budget is target_heads
    "fisher": dict(method="fisher"),
    "fisher-notune": dict(method="fisher", mask_tuning=False),
    # LRP with its gates started from the Fisher importance (compare with the same recipe, open init)
    "fast-importance": dict(freeze_word_embeddings=True, finetune_steps=180, train_steps=150, l0_penalty=0.015,
                            log_a_init="importance"),
    # heads and FFN units under one time budget (issue: FFN pruning): the fast recipe's steps, an encoder
    # speed-up of 2.0 at batch 32 and 64 tokens predicted from this machine's layer latency table
    "ffn-2x": dict(freeze_word_embeddings=True, finetune_steps=180, train_steps=150, l0_penalty=0.0,
                   structures=("heads", "ffn"), target_speedup=2.0),
    "ffn-2x-importance": dict(freeze_word_embeddings=True, finetune_steps=180, train_steps=150, l0_penalty=0.0,
                              structures=("heads", "ffn"), target_speedup=2.0, log_a_init="importance"),
}
#: Lambda of a recipe for a budget other than its own (about 36 heads): (recipe, budget) -> lambda.
#: Without an entry a budget runs with ``target_heads``; on 150-190 gated steps the controller
#: closes gates too late and the last-step projection closes the rest at once (demo-0.1 at 18:
#: -9.45 points), so a fixed lambda is the fairer comparison at 18 heads.
LAMBDA_FOR: dict[tuple[str, int], float] = {
    ("fast", 18): 0.03,
    ("fast-distill", 18): 0.03,
}


def _options(name: str, budget: int, seed: int, final: bool, overrides: dict[str, Any]):
    from lrp_prune.app.recipes import DEMO

    fields = dict(CANDIDATES.get(name, {}))
    fields.update(overrides)
    fields.update(seed=seed, progress=False, out_dir=None, latency_repeats=3)
    if final:
        fields.update(eval_split="test", eval_limit=overrides.get("eval_limit"))
    else:
        fields.update(eval_split="validation", eval_limit=2000)
    if fields.get("method") == "fisher":
        fields.update(target_heads=budget)
    elif (name, budget) in LAMBDA_FOR:
        fields.update(l0_penalty=LAMBDA_FOR[name, budget])
    elif budget != 36:
        fields.update(target_heads=budget)
    return DEMO.options(**fields)


def _accuracy(pred: np.ndarray, labels: np.ndarray, idx: np.ndarray | None = None) -> float:
    if idx is not None:
        pred, labels = pred[idx], labels[idx]
    return float((pred == labels).mean())


def run_one(name: str, budget: int, seed: int, final: bool, overrides: dict[str, Any]) -> dict[str, Any]:
    """One run of the pipeline; the row recorded for it."""
    from lrp_prune.app.cli import configure_mindspore
    from lrp_prune.app.controls import paired_drop
    from lrp_prune.app.pipeline import run_prune

    options = _options(name, budget, seed, final, overrides)
    t0 = time.perf_counter()
    result = run_prune(options, configure_mindspore(options))
    seconds = time.perf_counter() - t0
    r = result.to_dict()
    row = {"recipe": name, "overrides": overrides, "budget": budget, "seed": seed,
           "split": r["eval_split"], "pairs": r["eval_pairs"], "heads_kept": r["heads_kept"],
           "start": r["accuracy_before"], "control": r.get("accuracy_control"), "gated": r["accuracy_gated"],
           "pruned": r["accuracy_pruned"], "drop": r["drop"], "drop_ci95": r["drop_ci95"],
           "drop_reference": r["drop_reference"], "pruned_equals_gated": r["pruned_equals_gated"],
           "control_cached": r.get("control_cached"), "seconds": round(seconds, 1), "method": r["method"],
           "timings": {k: round(v, 1) for k, v in r["timings"].items()},
           "latency_ratio": r["latency"]["ratio_pruned_over_unpruned"],
           "predicted_encoder_ratio": r["latency"].get("predicted_encoder_ratio"),
           "units_kept": r.get("units_kept"), "units_kept_per_layer": r.get("units_kept_per_layer"),
           "heads_kept_per_layer": r.get("heads_kept_per_layer"),
           "encoder_flops_ratio": r["encoder_flops_after"] / r["encoder_flops_before"],
           "options": {k: r["options"][k] for k in ("finetune_steps", "train_steps", "l0_penalty", "target_heads",
                                                     "learning_rate", "finetune_lr", "distill", "distill_alpha",
                                                     "distill_temperature", "buckets", "dropout", "log_a_init",
                                                     "importance_examples", "mask_tuning", "structures",
                                                     "target_flops", "target_speedup")},
           "when": time.strftime("%Y-%m-%d %H:%M")}
    if final and r["eval_pairs"] == 2000:  # eval_limit 2000 on test: these are the demo's pairs
        row["demo_2000"] = {"start": row["start"], "control": row["control"], "pruned": row["pruned"],
                            "drop": row["drop"], "drop_ci95": row["drop_ci95"], "drop_reference": row["drop_reference"]}
    if final and r["eval_pairs"] == 9824:  # the demo's 2,000 pairs: np.sort(default_rng(0).permutation(N)[:2000])
        idx = np.sort(np.random.default_rng(0).permutation(9824)[:2000])
        labels, preds = result.labels, result.predictions
        sub = {arm: _accuracy(preds[arm], labels, idx) for arm in preds}
        reference = "control" if sub.get("control", -1) > sub["start"] else "start"
        drop, ci = paired_drop(preds["pruned"][idx] == labels[idx], preds[reference][idx] == labels[idx], seed=seed)
        row["demo_2000"] = {"start": sub["start"], "control": sub.get("control"), "pruned": sub["pruned"],
                            "drop": drop, "drop_ci95": list(ci), "drop_reference": reference}
    del result
    return row


def run_in_subprocess(name: str, budget: int, seed: int, final: bool, overrides: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_one` in a process of its own: MindSpore keeps compiled graphs and their buffers
    per process, and three runs in one process grew past 24 GB here (the machine's memory)."""
    import subprocess

    args = [sys.executable, str(Path(__file__).resolve()), "one", "--recipes", name, "--budgets", str(budget),
            "--seeds", str(seed), "--set", json.dumps(overrides)] + (["--final"] if final else [])
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run {name} budget {budget} seed {seed} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def append(row: dict[str, Any]) -> None:
    JSONL.parent.mkdir(parents=True, exist_ok=True)
    with open(JSONL, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def load_rows() -> list[dict[str, Any]]:
    if not JSONL.is_file():
        return []
    return [json.loads(line) for line in JSONL.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


#: What the runs below showed, and what is still open (rendered into STUDIES.md).
NOTES = [
    "The demo's recipe (230 + 190 steps, lambda 0.012) on validation: 36 heads kept at 74.20%, 1.95 points "
    "below its equal-budget control (76.15%; interval -3.45 to -0.40), while 'against the start' (74.35%) it "
    "looked like -0.15. The control is the honest reference: 190 more steps are worth +1.8 points unpruned.",
    "At 18 heads with `target_heads=18` the same recipe falls to 66.70% (-9.45): after 190 gated steps the "
    "budget controller still had all 72 gates open, so the projection closed 54 heads at once. A short run "
    "needs lambda (about 0.02-0.03 for 14-11 heads on the curve) or a longer gated phase, not the target mode.",
    "Runs before the evaluation-order fix (2026-12-03) are not listed: their paired drops compared different "
    "pairs. A distillation run was stopped when three runs in one process had grown to 24 GB; each run now "
    "gets its own process.",
    "Distillation (alpha 0.5, T 2; its control distilled from the same teacher) on the same fine-tuning: 30 "
    "heads kept (6 more removed at the same lambda) at 74.10%, -1.75 against its control (75.85%; interval "
    "-3.20 to -0.40). The teacher cost 47 s of the gated phase's 279 s; the process peaked near 16 GB.",
    "The 'fast' recipe (frozen word embeddings, 180 + 150 steps, lambda 0.015) runs in 599 s *with* its "
    "fine-tuning and control (fine-tune 178 s, gated 185 s, control 129 s): the first recipe that fits the "
    "demo's 600 s. 34 heads at 73.60%, only -0.30 against its control (73.90%; interval -1.75 to +1.25), "
    "but its start (72.35%) and control are 2 points below the demo recipe's: it prunes more cheaply a "
    "weaker classifier.",
    "At about 18 heads the fast recipe with lambda 0.03 kept 20 heads at 71.95%, -1.95 against its control "
    "(interval -3.50 to -0.30): a fixed lambda, where the target mode had collapsed (-9.45). Its 944 s were "
    "measured beside another run (the machine was shared), not alone.",
    "Distillation on the fast recipe was not measured: its process grew past 18 GB beside a second job and "
    "was killed for memory. Distillation also costs a teacher forward per step (47 s on 190 steps), so with "
    "its control it cannot fit 600 s here.",
    "**Choice (2026-12-03): the demo's default became the fast recipe.** On validation it is the only recipe "
    "measured that fits 600 s with its control and the one with the smallest drop against it (-0.30 at 34 "
    "heads; -1.95 at 20 heads with lambda 0.03), at the price of a weaker start (-2 points: 180 steps with "
    "frozen word embeddings instead of 230). The test runs below are its three seeds; the demo's seed (1) "
    "was not chosen by its outcome. `--full` keeps its own recipe (1,000 + 400 steps).",
    "Retraining-free (fisher) settings, chosen on the same validation split from the demo-0.1 fine-tuning "
    "(74.35% start; one importance pass on 2,048 training examples, 36 heads kept unless said): no tuning "
    "72.65%; without the within-layer rearrangement 69.35% (so rearranging is on); Michel's score instead of "
    "Fisher 71.95%; tuning against the unpruned model with damping 0.01 72.40%, 1.0 72.55%; against the "
    "layer's own full output, damping 0.01 72.15%, 1.0 72.70%. At 18 heads: no tuning 49.90%, unpruned "
    "reference damping 0.01 51.85%, 1.0 49.55%, own reference 1.0 50.95%. Tuning is within noise at 36 and "
    "worth 2 points at 18, so the default is Kwon et al.'s (unpruned reference, damping 0.01, clip [0, 2]). "
    "Two samples of 2,048 examples gave 71.35% and 72.65% without tuning: the sample moves the result by "
    "about a point.",
    "On test, seed 1 of the new default: 29 heads (lambda 0.015 removed more than on validation), -2.89 on "
    "all 9,824 pairs and -4.40 on the demo's 2,000 (its control gained 2.8 points there). One validation "
    "seed (-0.30) did not predict this: the next choice should rest on three validation seeds per recipe. "
    "Seeds 2 and 3 on test were not run this session.",
    "Retraining-free from that seed's fine-tuning (demo's 2,000 test pairs, start 76.05%): 36 heads at "
    "73.05% with mask tuning (-3.00) in 86 s, 72.45% without (-3.60) in 52 s; 18 heads 55.85% / 56.25%. "
    "The 120 s goal is met, the 2-point goal at 36 heads is not; at 18 heads only training keeps a usable "
    "model.",
    "LRP from the same fine-tuning, `target_heads=36` with lambda 0.015, 150 gated steps, same batches: the "
    "open init 73.25% / 74.30% / 73.80% (gated seeds 1 / 2 / 3; -5.60 / -3.95 / -4.50 against the controls); "
    "its controller had closed nothing before the projection), the importance init (`--log_a_init "
    "importance`) 77.40% / 76.60% / 76.70% (-1.45 / -1.65 / -1.60). The best LRP numbers on these pairs, on test: the lead "
    "for the next recipe choice, to be made on validation. Runs beside `make test` were killed for memory (12 GB each beside 14 GB) and are "
    "not listed.",
    "**Choice on validation, three gated seeds each (2026-12-03, session 6)**, all from one fine-tuning of "
    "the fast recipe on the training split without the validation premises (start 72.35%; controls "
    "73.90 / 74.85 / 75.75% at seeds 1 / 2 / 3): the default (lambda 0.015) kept 34 / 34 / 38 heads at "
    "73.60 / 73.35 / 74.00% (drops -0.30 / -1.50 / -1.75, mean -1.18); `target_heads=36` from the importance "
    "init 72.65 / 72.00 / 73.00% (-1.25 / -2.85 / -2.75, mean -2.28); `target_heads=36` from the open init "
    "71.70 / 70.75 / 71.45% (-2.20 / -4.10 / -4.30, mean -3.53). So the default stays: lambda beats both "
    "target modes at about the same number of heads at every seed; within the target mode the importance "
    "init is better at every seed (+1.25 on average, as on test), so it is the recipe to use when a head "
    "count must be exact. The test pairs had suggested the opposite (lambda removed 43 heads at test seed "
    "1): a reminder of why the choice is made here.",
    "Test seed 2 of the default (its own fine-tuning, the demo's 2,000 pairs): 37 heads at 77.55% against a "
    "control of 77.95% (start 76.70%): -0.40. Seed 1 had been -4.40 at 29 heads: the same lambda removes 35 "
    "or 43 heads depending on the seed, and the drop follows. Seed 3 and the 9,824-pair runs of seed 2 and 3 "
    "were not run this session.",
    "Heads and FFN units under a 2.0x time budget (`ffn-2x-importance`: the fast recipe's 150 gated steps, "
    "lambda 0, `target_speedup` 2.0 from this machine's layer latency table, importance init for the heads), "
    "one run on test from the demo's fine-tuning, not tuned on validation: 20 heads and 5,016 of 9,216 FFN "
    "units kept, predicted encoder time 0.500, measured classifier latency 0.522 (1.91x), 73.20% against the "
    "control's 78.85% (-5.65).",
]


def render(rows: list[dict[str, Any]]) -> str:
    """STUDIES.md: every run, then means and spreads of the final runs."""
    out = ["# Recipe studies", "",
           "Generated by `python benchmarks/study.py render` from `benchmarks/results/study.jsonl` (every run, "
           "appended as it finishes); `benchmarks/run.py` never writes either. Accuracies in %; drop = pruned - "
           "max(start, control), with its paired 95% bootstrap interval over the same pairs. `select` runs are "
           "on a premise-grouped validation split of SNLI train (5% of premises, seed 0, excluded from training; "
           "2,000 pairs); `final` runs on SNLI test (all 9,824 pairs, and the demo's 2,000-pair subset).", "",
           "## What they show", "", *[f"- {note}" for note in NOTES], ""]
    for split in ("validation", "test"):
        chosen = [r for r in rows if r["split"] == split]
        if not chosen:
            continue
        out += [f"## Runs on {split}", "",
                "| recipe | overrides | budget | seed | heads kept | start | control | gated | pruned | drop [95%] "
                "| pruned == gated | s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
        for r in chosen:
            lo, hi = r["drop_ci95"]
            out.append(f"| {r['recipe']} | `{json.dumps(r['overrides'])}` | {r['budget']} | {r['seed']} | "
                       f"{r['heads_kept']} | {_pct(r['start'])} | {_pct(r['control'])} | {_pct(r['gated'])} | "
                       f"{_pct(r['pruned'])} | {100 * r['drop']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] | "
                       f"{r['pruned_equals_gated']} | {r['seconds']:.0f} |")
        out.append("")
    finals = [r for r in rows if r["split"] == "test" and "demo_2000" in r]
    if finals:
        out += ["## Final: mean and spread over seeds", "",
                "| recipe | budget | seeds | heads kept | pairs | start | control | pruned | drop |",
                "|---|---:|---:|---|---|---|---|---|---|"]
        groups: dict[tuple, list] = {}
        for r in finals:  # runs that differ only in where the fine-tuning comes from or how many pairs pool
            same = {k: v for k, v in r["overrides"].items() if k not in ("finetuned_checkpoint", "eval_limit")}
            groups.setdefault((r["recipe"], json.dumps(same, sort_keys=True), r["budget"]), []).append(r)
        for (recipe, _, budget), rs in groups.items():
            for label, get in (("9,824", lambda x: x), ("2,000 (demo)", lambda x: x["demo_2000"])):
                rs_here = [x for x in rs if label != "9,824" or x["pairs"] == 9824]
                if not rs_here:
                    continue
                vals = {k: [get(x)[k] for x in rs_here if get(x).get(k) is not None]
                        for k in ("start", "control", "pruned", "drop")}
                cell = {k: (f"{100 * np.mean(v):.2f} ± {100 * np.std(v):.2f}" if v else "-") for k, v in vals.items()}
                heads = ", ".join(str(x["heads_kept"]) for x in rs_here)
                out.append(f"| {recipe} | {budget} | {len(rs_here)} | {heads} | {label} | {cell['start']} | "
                           f"{cell['control']} | {cell['pruned']} | {cell['drop']} |")
        out.append("")
    return "\n".join(out + _after_finetuning(rows) + _ffn(rows))


def _seconds_after_finetuning(r: dict[str, Any]) -> float:
    """What a method cost once the fine-tuned model exists: retraining-free = importance + search +
    tuning + convert; LRP = its importance (if any) + the gated phase."""
    t = r.get("timings", {})
    if r.get("method") == "fisher":
        return t.get("retraining_free_s", 0.0)
    return t.get("importance_s", 0.0) + t.get("gated_train_s", 0.0)


def _after_finetuning(rows: list[dict[str, Any]]) -> list[str]:
    """The retraining-free / LRP-initialisation table: runs on test from one saved fine-tuning."""
    picked = [r for r in rows if r["split"] == "test" and "finetuned_checkpoint" in r["overrides"]]
    if not picked:
        return []
    out = ["", "## Retraining-free and LRP from the same fine-tuned model (test)", "",
           "Every row starts from the same saved fine-tuning; seconds count what the method costs after it "
           "(retraining-free: importance + mask search + tuning + convert; LRP: importance if used + the gated "
           "phase), not the evaluations. Drop = pruned - max(start, control); retraining-free trains nothing, so "
           "its reference is the start.", "",
           "| method | budget | seed | pairs | heads kept | start | control | pruned | drop [95%] | s after fine-tuning |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in picked:
        lo, hi = r["drop_ci95"]
        out.append(f"| {r['recipe']} | {r['budget']} | {r['seed']} | {r['pairs']} | {r['heads_kept']} | "
                   f"{_pct(r['start'])} | {_pct(r['control'])} | {_pct(r['pruned'])} | "
                   f"{100 * r['drop']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] | {_seconds_after_finetuning(r):.0f} |")
    return out + [""]


def _ffn(rows: list[dict[str, Any]]) -> list[str]:
    """Runs that pruned FFN units too: where the time went and what it cost."""
    picked = [r for r in rows if "ffn" in (r.get("options", {}).get("structures") or ())]
    if not picked:
        return []
    out = ["", "## Heads and FFN units together", "",
           "Latency: pruned / unpruned classifier, batch 32, 64 tokens, median of interleaved repeats in the same "
           "run; predicted: the encoder's ratio from the layer latency table the budget used.", "",
           "| recipe | split | seed | heads kept | FFN units kept | encoder MACs kept | predicted | measured latency "
           "| start | control | pruned | drop [95%] | s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in picked:
        lo, hi = r["drop_ci95"]
        predicted = r.get("predicted_encoder_ratio")
        out.append(f"| {r['recipe']} | {r['split']} | {r['seed']} | {r['heads_kept']} | {r['units_kept']} | "
                   f"{r['encoder_flops_ratio']:.3f} | {'-' if predicted is None else f'{predicted:.3f}'} | "
                   f"{r['latency_ratio']:.3f} | {_pct(r['start'])} | {_pct(r['control'])} | {_pct(r['pruned'])} | "
                   f"{100 * r['drop']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] | {r['seconds']:.0f} |")
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan", choices=("select", "final", "render", "one"))
    parser.add_argument("--recipes", default=",".join(CANDIDATES), help="comma-separated CANDIDATES names")
    parser.add_argument("--budgets", default="36,18", help="heads kept: 36 (the recipe's lambda) or a target")
    parser.add_argument("--seeds", default=None, help="default: 1 for select, 1,2,3 for final")
    parser.add_argument("--set", default="{}", help="JSON of PruneOptions overrides for every run")
    parser.add_argument("--final", action="store_true", help=argparse.SUPPRESS)  # for 'one': a final run
    args = parser.parse_args(argv)
    if args.plan == "one":  # one run, its row printed as the last line (run_in_subprocess reads it)
        sys.path.insert(0, str(HERE.parent / "src"))
        row = run_one(args.recipes, int(args.budgets), int(args.seeds), args.final, json.loads(args.set))
        print(json.dumps(row), flush=True)
        return 0
    if args.plan != "render":
        sys.path.insert(0, str(HERE.parent / "src"))
        seeds = [int(s) for s in (args.seeds or ("1" if args.plan == "select" else "1,2,3")).split(",")]
        overrides = json.loads(args.set)
        for name in args.recipes.split(","):
            for seed in seeds:
                for budget in (int(b) for b in args.budgets.split(",")):
                    row = run_in_subprocess(name, budget, seed, args.plan == "final", overrides)
                    append(row)
                    print(json.dumps({k: row[k] for k in ("recipe", "budget", "seed", "heads_kept", "start", "control",
                                                          "pruned", "drop", "seconds")}), flush=True)
                    STUDIES.write_text(render(load_rows()), encoding="utf-8")
    STUDIES.write_text(render(load_rows()), encoding="utf-8")
    print(f"wrote {STUDIES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Accuracy vs heads kept: all-MiniLM-L6-v2 on SNLI test, one ``run_prune`` per point.

A point is ``("l0", lambda)`` (plain L0 penalty) or ``("target", heads)`` (the target budget,
``l0_penalty=0``). Every point runs the flow of ``lrp_prune.app.pipeline.run_prune``, with its
equal-budget control (trained once: it is cached on a key that does not include the budget): evaluate unpruned,
gate, train, convert, evaluate pruned. All points start from one fine-tuned classifier: the
first point fine-tunes (``finetune_steps``) and saves it (``finetuned_checkpoint``, a temporary
file unless the base options name one), the others load it; so the unpruned accuracy is the
same for every point (min/max recorded).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from common import free, stats

#: Default base: the demo's recipe (lrp_prune.app.recipes.DEMO) on its fixed 2,000-pair subset of the
#: SNLI test split, with a cheap latency probe and no report directory. "recipe" names the recipe;
#: every other key overrides a PruneOptions field. Override any with --curve-options (e.g.
#: '{"eval_limit": null}' for all 9,824 pairs).
DEFAULT_BASE: dict[str, Any] = dict(recipe="demo", out_dir=None, latency_batch_size=8, latency_repeats=2,
                                    progress=False, seed=1)

DEFAULT_POINTS: tuple[tuple[str, float], ...] = (
    ("l0", 0.005), ("l0", 0.01), ("l0", 0.02), ("l0", 0.05), ("target", 36), ("target", 18))

POINT_KINDS = {"l0": "l0_penalty", "target": "target_heads"}


def parse_points(text: str) -> list[tuple[str, float]]:
    """``"l0:0.01,target:18"`` -> ``[("l0", 0.01), ("target", 18)]``.

    Example:
        >>> parse_points("l0:0.005, target:36")
        [('l0', 0.005), ('target', 36)]
    """
    points = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        kind, _, value = item.partition(":")
        kind = kind.strip().lower()
        if kind not in POINT_KINDS or not value.strip():
            raise ValueError(f"curve point {item!r}: expected 'l0:LAMBDA' or 'target:HEADS'")
        number = float(value)
        points.append((kind, int(number) if kind == "target" and number >= 1 and number.is_integer() else number))
    if not points:
        raise ValueError("curve points: expected at least one point")
    return points


def point_label(kind: str, value: float) -> str:
    return f"lambda={value:g}" if kind == "l0" else f"target={value:g}"


def options_for(base: dict[str, Any], kind: str, value: float):
    """The ``PruneOptions`` of one point: the base's recipe, its overrides, then the point's budget."""
    from lrp_prune.app.recipes import recipe

    fields = dict(base)
    name = fields.pop("recipe", "demo")
    if "buckets" in fields:
        fields["buckets"] = tuple(fields["buckets"])
    if kind == "l0":
        fields.update(l0_penalty=float(value), target_heads=None)
    else:
        fields.update(l0_penalty=0.0, target_heads=value)
    return recipe(name).options(**fields)


def accuracy_curve(base: dict[str, Any], points: Sequence[tuple[str, float]], png: str | Path, ctx: Any,
                   title: str = "all-MiniLM-L6-v2 on SNLI test") -> dict[str, Any]:
    """Run every point, plot ``png``, return the section dict (written after each point)."""

    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"base_options": _jsonable_options(base), "points": [list(p) for p in points],
                           "rows": rows, "png": _display_path(png)}
    shared = None
    if base.get("finetune_steps") and not base.get("finetuned_checkpoint"):  # fine-tune once for all points
        shared = tempfile.TemporaryDirectory(prefix="lrp_curve_")
        base = dict(base, finetuned_checkpoint=str(Path(shared.name) / "finetuned.ckpt"))
    try:
        _run_points(base, points, rows, out, ctx)
    finally:
        if shared is not None:
            shared.cleanup()
    control = out.get("control_accuracy")
    plot_curve(rows, out["unpruned_accuracy"]["median"], png, title, None if control is None else control["median"])
    return out


def _run_points(base: dict[str, Any], points: Sequence[tuple[str, float]], rows: list[dict[str, Any]],
                out: dict[str, Any], ctx: Any) -> None:
    from lrp_prune.app.pipeline import run_prune
    from lrp_prune.app.cli import configure_mindspore

    for kind, value in points:
        options = options_for(base, kind, value)
        t0 = time.perf_counter()
        result = run_prune(options, configure_mindspore(options))  # GRAPH_MODE and the point's seed
        report = result.to_dict()
        del result
        free()
        rows.append({"kind": kind, "value": value, "label": point_label(kind, value),
                     "accuracy_before": report["accuracy_before"], "accuracy_gated": report["accuracy_gated"],
                     "accuracy_control": report.get("accuracy_control"), "control_cached": report.get("control_cached"),
                     "drop": report.get("drop"), "drop_ci95": report.get("drop_ci95"),
                     "drop_reference": report.get("drop_reference"),
                     "accuracy_pruned": report["accuracy_pruned"], "heads_kept": report["heads_kept"],
                     "total_heads": report["total_heads"], "heads_kept_per_layer": report["heads_kept_per_layer"],
                     "pruned_equals_gated": report["pruned_equals_gated"], "eval_pairs": report["eval_pairs"],
                     "eval_split": report["eval_split"], "gated_steps": report["gated_steps"],
                     "latency_ratio_pruned_over_unpruned": report["latency"]["ratio_pruned_over_unpruned"],
                     "attention_flops_before": report["attention_flops_before"],
                     "attention_flops_after": report["attention_flops_after"],
                     "timings": report["timings"], "seconds": round(time.perf_counter() - t0, 1),
                     "finetuned_from_checkpoint": "finetuned_from" in report})
        ctx.progress(f"curve {point_label(kind, value)}: {report['heads_kept']} heads, "
                     f"accuracy {report['accuracy_pruned']:.4f} (unpruned {report['accuracy_before']:.4f})")
        out["unpruned_accuracy"] = stats([r["accuracy_before"] for r in rows], 5)
        controls = [r["accuracy_control"] for r in rows if r.get("accuracy_control") is not None]
        if controls:  # one control for every point: it depends on the recipe, not on the budget (cached)
            out["control_accuracy"] = stats(controls, 5)
        ctx.save_partial(out)


def plot_curve(rows: Sequence[dict[str, Any]], unpruned: float, png: str | Path, title: str,
               control: float | None = None) -> Path:
    """Accuracy (pruned) against heads kept; the start's and the equal-budget control's accuracies as
    horizontal lines (the control is the honest reference: as many steps, no pruning); atomic PNG."""
    from matplotlib.figure import Figure

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    ax = fig.subplots()
    total = rows[0]["total_heads"] if rows else None
    for kind, marker, colour, name in (("l0", "o", "tab:blue", "L0 penalty"), ("target", "s", "tab:orange", "target budget")):
        sel = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["heads_kept"])
        if not sel:
            continue
        xs = [r["heads_kept"] for r in sel]
        ys = [100 * r["accuracy_pruned"] for r in sel]
        ax.plot(xs, ys, marker=marker, color=colour, linestyle="-", label=name)
        for r, x, y in zip(sel, xs, ys):
            ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.axhline(100 * unpruned, color="gray", linestyle="--", label=f"start, unpruned ({100 * unpruned:.1f}%)")
    if control is not None:
        ax.axhline(100 * control, color="black", linestyle=":",
                   label=f"control: unpruned, as many steps ({100 * control:.1f}%)")
    ax.set_xlabel(f"heads kept{f' (of {total})' if total else ''}")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    if total:
        ax.set_xlim(-0.5, total + 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = png.with_name(f".{png.stem}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(png)
    return png


def _display_path(path: str | Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    from common import REPO

    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _jsonable_options(base: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in base.items()}))

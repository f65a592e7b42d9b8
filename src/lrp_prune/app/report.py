"""The one renderer of a run: pictures, report.md, report.json and the summary printed at the end.

Everything here reads plain numbers (lists, numpy arrays, the dict of
:meth:`lrp_prune.app.pipeline.RunReport.to_dict`) and writes files atomically. Plots use
matplotlib's object-oriented ``Figure`` API: nothing here touches pyplot's global state
or the backend of the calling process (a notebook keeps its figures).
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lrp_prune.io.checkpoint import atomic_write_bytes, atomic_write_text

__all__ = ["plot_gate_heatmap", "plot_gate_history", "plot_ffn_widths", "animate_gate_history", "write_report",
           "gate_table", "render_markdown", "format_summary"]

logger = logging.getLogger(__name__)


def _figure(**kwargs: Any):
    """A detached matplotlib Figure (no pyplot, no global backend)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _png_bytes(fig, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **kwargs)
    return buffer.getvalue()


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_gate_heatmap(values: np.ndarray, path: str | Path, title: str = "deterministic gates",
                      label: str = "gate", vmax: float = 1.0) -> Path:
    """Heatmap of ``[layers, heads]`` values in [0, ``vmax``] (NaN cells are heads the model lacks).

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = plot_gate_heatmap(np.array([[1.0, 0.0], [0.5, np.nan]]), os.path.join(tempfile.mkdtemp(), "g.png"))
        >>> p.read_bytes()[:4] == b"\\x89PNG"
        True
    """
    values = np.asarray(values, dtype=float)
    layers, heads = values.shape
    fig = _figure(figsize=(max(4.0, 0.5 * heads + 1.5), max(2.5, 0.45 * layers + 1.2)), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=vmax, cmap="viridis", aspect="auto")
    ax.set_xticks(range(heads))
    ax.set_yticks(range(layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    for i in range(layers):
        for j in range(heads):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}".rstrip("0").rstrip(".") if values[i, j] not in (0, 1)
                        else str(int(values[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] < 0.5 * vmax else "black")
    fig.colorbar(image, ax=ax, label=label)
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_gate_history(steps: Sequence[int], p_closed: Sequence, path: str | Path,
                      expected_open: Sequence[float] | None = None, target: float | None = None) -> Path:
    """P(gate = 0) of every head over training steps, one panel per layer, plus the expected open count."""
    p = np.asarray(p_closed, dtype=float)  # (T, L, H)
    layers = p.shape[1]
    cols = min(3, layers)
    rows = int(np.ceil(layers / cols)) + (1 if expected_open is not None else 0)
    fig = _figure(figsize=(4.2 * cols, 2.6 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(layers):
        ax = axes[i // cols][i % cols]
        for h in range(p.shape[2]):
            if np.isfinite(p[:, i, h]).any():
                ax.plot(steps, p[:, i, h], lw=1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"layer {i}", fontsize=9)
        ax.set_ylabel("P(gate = 0)", fontsize=8)
    for k in range(layers, (rows - (1 if expected_open is not None else 0)) * cols):
        axes[k // cols][k % cols].axis("off")
    if expected_open is not None:
        for k in range(cols):
            axes[-1][k].axis("off")
        ax = fig.add_subplot(rows, 1, rows)
        ax.plot(steps, expected_open, color="black", lw=1.5, label="expected open heads (L_C)")
        if target is not None:
            ax.axhline(target, color="red", ls="--", lw=1, label=f"target {target:g}")
        ax.set_xlabel("gated training step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_ffn_widths(path: str | Path, width: int, kept: Sequence[int], steps: Sequence[int] | None = None,
                    ffn_open: Sequence | None = None) -> Path:
    """Where the model got thinner: each layer's feed-forward width over training (expected open
    units, when recorded) beside the units each layer kept after ``convert()``.

    Example:
        >>> import tempfile, os
        >>> p = plot_ffn_widths(os.path.join(tempfile.mkdtemp(), "f.png"), 37, [30, 0, 12], [1, 10], [[37, 37, 37],
        ...                     [31.5, 2.0, 14.2]])
        >>> p.read_bytes()[:4] == b"\\x89PNG"
        True
    """
    kept = np.asarray(kept, dtype=float)
    has_history = steps is not None and ffn_open is not None and len(steps) > 0
    fig = _figure(figsize=(9.0 if has_history else 4.5, 3.2), dpi=100)
    axes = fig.subplots(1, 2 if has_history else 1, squeeze=False)[0]
    if has_history:
        history = np.asarray(ffn_open, dtype=float)  # (T, L)
        for i in range(history.shape[1]):
            axes[0].plot(steps, 100 * history[:, i] / width, lw=1.2, label=f"layer {i}")
        axes[0].set_ylim(-2, 102)
        axes[0].set_xlabel("gated training step")
        axes[0].set_ylabel("expected open units (% of width)", fontsize=8)
        axes[0].legend(fontsize=7, ncol=2)
    ax = axes[-1]
    ax.bar(range(len(kept)), 100 * kept / width, color="tab:green")
    for i, n in enumerate(kept):
        ax.text(i, 100 * n / width + 1, str(int(n)), ha="center", fontsize=7)
    ax.set_ylim(0, 110)
    ax.set_xticks(range(len(kept)))
    ax.set_xlabel("layer")
    ax.set_ylabel(f"units kept (% of {width})", fontsize=8)
    ax.set_title("feed-forward width after convert", fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path))


def animate_gate_history(steps: Sequence[int], p_closed: Sequence, path: str | Path, max_frames: int = 40) -> Path:
    """An animated GIF of the P(gate = 0) heatmap over training (the original docs' animation)."""
    from PIL import Image

    p = np.asarray(p_closed, dtype=float)
    picks = np.unique(np.linspace(0, len(steps) - 1, min(max_frames, len(steps))).astype(int))
    frames = []
    for t in picks:
        fig = _figure(figsize=(0.4 * p.shape[2] + 1.5, 0.4 * p.shape[1] + 1.0), dpi=80)
        ax = fig.subplots()
        ax.imshow(np.ma.masked_invalid(p[t]), vmin=0, vmax=1, cmap="magma_r", aspect="auto")
        ax.set_title(f"P(gate = 0), step {steps[t]}", fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        fig.tight_layout()
        frames.append(Image.open(io.BytesIO(_png_bytes(fig))).convert("P", palette=Image.ADAPTIVE))
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=250, loop=0)
    atomic_write_bytes(Path(path), out.getvalue())
    return Path(path)


def gate_table(values: np.ndarray) -> str:
    """A text table of ``[layers, heads]`` gates ('.' for a head the model lacks)."""
    values = np.asarray(values, dtype=float)
    header = "layer | " + " ".join(f"{h:>4}" for h in range(values.shape[1])) + " | kept"
    lines = [header, "-" * len(header)]
    for i, row in enumerate(values):
        cells = " ".join("   ." if not np.isfinite(v) else f"{v:4.2f}" for v in row)
        lines.append(f"{i:>5} | {cells} | {int(np.sum(np.nan_to_num(row) > 0)):>4}")
    return "\n".join(lines)


def write_report(report: Any, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and the pictures of a run into ``out_dir``.

    Args:
        report: a :class:`~lrp_prune.app.pipeline.RunReport` (or its ``to_dict()``).
        out_dir: the directory (created if needed).

    Returns:
        ``{"json", "md", "gates_png", "history_png", "history_gif"}`` -> paths written.
    """
    from lrp_prune.io.checkpoint import check_writable_dir

    data = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    out = check_writable_dir(out_dir, "report directory")
    files: dict[str, Path] = {}
    free = data.get("retraining_free")
    if data.get("gate_values") is not None:
        gates = np.asarray(data["gate_values"], dtype=float)
        if free is None:
            files["gates_png"] = plot_gate_heatmap(gates, out / "gates.png",
                                                   title="final deterministic gates (0 = pruned)")
        else:
            files["gates_png"] = plot_gate_heatmap(gates, out / "gates.png", label="scale",
                                                   title="mask x tuned scale (0 = pruned)",
                                                   vmax=max(1.0, float(np.nanmax(gates))))
    importance = free["importance"] if free is not None else data.get("importance")
    if importance is not None:
        fisher = np.array([[np.nan if v is None else v for v in row] for row in importance["fisher"]])
        top = np.nanmax(fisher)
        files["importance_png"] = plot_gate_heatmap(fisher / (top if top > 0 else 1.0), out / "importance.png",
                                                    title="head importance (empirical Fisher / max)",
                                                    label="importance")
    history = data.get("gate_history") or {}
    if history.get("steps"):
        p_closed = np.array([[[np.nan if v is None else v for v in row] for row in step]
                             for step in history["p_closed"]], dtype=float)
        files["history_png"] = plot_gate_history(history["steps"], p_closed, out / "p_gate_closed.png",
                                                 history.get("expected_open"), data.get("target_heads"))
        files["history_gif"] = animate_gate_history(history["steps"], p_closed, out / "p_gate_closed.gif")
    if _ffn_pruned(data):
        width = data["units_total"] // max(1, len(data["units_kept_per_layer"]))
        files["ffn_png"] = plot_ffn_widths(out / "ffn_width.png", width, data["units_kept_per_layer"],
                                           history.get("steps"), history.get("ffn_open") or None)
    data["files"] = {k: p.name for k, p in files.items()}
    atomic_write_text(out / "report.json", json.dumps(data, indent=2))
    files["json"] = out / "report.json"
    atomic_write_text(out / "report.md", render_markdown(data))
    files["md"] = out / "report.md"
    return files


def _ffn_pruned(r: dict[str, Any]) -> bool:
    """Whether the run gated or removed feed-forward units (then the reports show them)."""
    structures = (r.get("options") or {}).get("structures") or ()
    return bool(r.get("units_total")) and ("ffn" in structures or r["units_kept"] < r["units_total"])


def _ffn_lines(r: dict[str, Any]) -> list[str]:
    if not _ffn_pruned(r):
        return []
    ratio = r["encoder_flops_after"] / max(1, r["encoder_flops_before"])
    return [f"feed-forward units kept per layer: {' '.join(str(n) for n in r['units_kept_per_layer'])} "
            f"({r['units_kept']} of {r['units_total']})",
            f"encoder multiply-adds per sequence: {r['encoder_flops_before']:,} -> {r['encoder_flops_after']:,} "
            f"(x{ratio:.3f})"]


def _drop_line(r: dict[str, Any]) -> str:
    """The headline: pruned minus the better of start and control, with its paired 95% interval."""
    if r.get("drop") is None:
        return "drop: -"
    low, high = r["drop_ci95"]
    if r.get("method") == "fisher":
        against = "start (retraining-free: no step trained, the start is the equal-budget reference)"
    elif r.get("accuracy_control") is not None:
        against = "max(start, control)"
    else:
        against = "start (no control: --no_control)"
    return (f"drop vs {against} = {r['drop_reference']}: {100 * r['drop']:+.2f} points "
            f"(paired 95% interval {100 * low:+.2f} to {100 * high:+.2f}, {r['eval_pairs']} examples)")


def format_summary(r: dict[str, Any]) -> str:
    """The short table printed at the end of a run (from ``RunReport.to_dict()``)."""
    target = r.get("target_heads")
    lines = ["", "heads kept per layer: " + " ".join(str(n) for n in r["heads_kept_per_layer"]),
             f"heads kept: {r['heads_kept']} of {r['total_heads']}" + ("" if target is None else f" (target {target})")]
    split = r.get("eval_split", "eval")
    rows = [("start", "accuracy_before")]
    if r.get("accuracy_control") is not None:
        rows.append((f"control ({r['control_steps']} more steps)", "accuracy_control"))
    rows += [("masked" if r.get("method") == "fisher" else "gated", "accuracy_gated"), ("pruned", "accuracy_pruned")]
    width = max(len(name) for name, _ in rows)
    lines.append(f"{'model':<{width}} {'accuracy (' + split + ')':>22}")
    for name, key in rows:
        lines.append(f"{name:<{width}} {100 * r[key]:>21.2f}%")
    if r.get("method") == "fisher":
        timings = r.get("timings", {})
        lines.append(f"retraining-free: {r['retraining_free']['examples']} training examples, "
                     f"{timings.get('retraining_free_s', 0):.0f} s (importance {timings.get('importance_s', 0):.0f} s, "
                     f"tuning {timings.get('tune_s', 0):.0f} s, convert {timings.get('convert_s', 0):.0f} s)")
    elif r.get("accuracy_control") is None:
        lines.append("control: none (--no_control): the drop below is against the start only")
    lines.append(_drop_line(r))
    lines.append(f"pruned predictions equal {'masked' if r.get('method') == 'fisher' else 'gated'}: "
                 f"{r['pruned_equals_gated']}")
    lines += _ffn_lines(r)
    lines.append(f"parameters: {r['params_before']:,} -> {r['params_after']:,}")
    lat = r["latency"]
    lines.append(f"latency pruned/unpruned (batch {lat['batch_size']}, seq {lat['seq_length']}): "
                 f"{lat['ratio_pruned_over_unpruned']:.3f}"
                 + (f" (the latency table predicted {lat['predicted_encoder_ratio']:.3f} for the encoder)"
                    if lat.get("predicted_encoder_ratio") is not None else ""))
    if r.get("save_dir_path"):
        lines.append(f"pruned model: {r['save_dir_path']}")
    return "\n".join(lines)


def _class_tables(r: dict[str, Any]) -> list[str]:
    """Accuracy per class (which class pruning hurt), the task's metric and the pruned model's confusion."""
    metrics = r.get("metrics") or {}
    if "pruned" not in metrics:
        return []
    names = (r.get("data") or {}).get("label_names") or list(metrics["pruned"]["per_class_accuracy"])
    arms = [arm for arm in ("start", "control", "pruned") if arm in metrics]
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    out = ["", f"Accuracy per class on the {r['eval_pairs']} {r['eval_split']} examples:", "",
           "| class | examples | " + " | ".join(arms) + " |", "|---|---:|" + "---:|" * len(arms)]
    for name in names:
        out.append(f"| {name} | {metrics['pruned']['support'][name]} | "
                   + " | ".join(pct(metrics[a]["per_class_accuracy"][name]) for a in arms) + " |")
    for key, label in (("f1", "F1 (class 1)"), ("mcc", "Matthews correlation")):
        if key in metrics["pruned"]:
            out.append(f"| **{label}** | | " + " | ".join(f"{metrics[a][key]:.4f}" for a in arms) + " |")
    confusion = metrics["pruned"]["confusion"]
    out += ["", "Confusion of the pruned model (rows: true class, columns: predicted):", "",
            "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    out += [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(names, confusion)]
    truncated = (r.get("data") or {}).get("truncated_share") or {}
    if any(v > 0 for v in truncated.values()):
        out += ["", "Examples cut at max_seq_length: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in truncated.items())
                + (" (over 5%: raise --max_seq_length)" if any(v > 0.05 for v in truncated.values()) else "")]
    return out


def _retraining_free_line(r: dict[str, Any]) -> str:
    t = r.get("timings", {})
    steps = ", ".join(f"{name} {t[key]:.1f} s" for key, name in (("importance_s", "importance"),
                      ("search_s", "mask search"), ("tune_s", "mask tuning"), ("convert_s", "convert")) if key in t)
    return (f"- retraining-free (fisher): importance on {r['retraining_free']['examples']} training examples; "
            f"{t.get('retraining_free_s', 0):.1f} s from the fine-tuned model to the converted one ({steps}); "
            "no step trained, so the start is the equal-budget reference")


def render_markdown(r: dict[str, Any]) -> str:
    """report.md of a run (from ``RunReport.to_dict()``)."""
    lat = r["latency"]
    options = r["options"]
    lines = [
        "# lrp_prune report", "",
        f"Task {options['task']}, model `{options['model']}`"
        + (f", recipe `{options['recipe']}`" if options.get("recipe") else "")
        + f", evaluated on {r['eval_pairs']} {r['eval_split']} examples; "
        + (f"retraining-free (fisher, {r['retraining_free']['examples']} training examples, no step trained)"
           if r.get("method") == "fisher" else f"{r['gated_steps']} gated steps")
        + (f" after {options['finetune_steps']} fine-tuning steps" if options.get("finetune_steps") else "")
        + ".", "",
        "| model | accuracy | heads | parameters |", "|---|---:|---:|---:|",
        f"| start (unpruned, at gating time) | {100 * r['accuracy_before']:.2f}% | {r['total_heads']} | "
        f"{r['params_before']:,} |",
        *([f"| control (unpruned, {r['control_steps']} more steps on the same batches) | "
           f"{100 * r['accuracy_control']:.2f}% | {r['total_heads']} | {r['params_before']:,} |"]
          if r.get("accuracy_control") is not None else []),
        f"| {'masked (mask x tuned scales)' if r.get('method') == 'fisher' else 'gated (eval gates)'} | "
        f"{100 * r['accuracy_gated']:.2f}% | {r['total_heads']} | {r['params_before']:,} |",
        f"| pruned | {100 * r['accuracy_pruned']:.2f}% | {r['heads_kept']} | {r['params_after']:,} |", "",
        f"- **{_drop_line(r)}**",
        *(["- no equal-budget control was trained (`--no_control`): the start is not trained as long as the "
           "pruned model, so this drop flatters pruning"]
          if r.get("accuracy_control") is None and r.get("method") != "fisher" else []),
        *([_retraining_free_line(r)] if r.get("method") == "fisher" else []),
        *([f"- distillation in the gated phase and the control: alpha {options['distill_alpha']}, temperature "
           f"{options['distill_temperature']}"] if options.get("distill") else []),
        f"- heads kept per layer: {r['heads_kept_per_layer']}",
        f"- pruned predictions identical to the gated model's: {r['pruned_equals_gated']}",
        f"- attention FLOPs per sequence: {r['attention_flops_before']:,} -> {r['attention_flops_after']:,}",
        *[f"- {line}" for line in _ffn_lines(r)],
        f"- latency pruned / unpruned at batch {lat['batch_size']}, seq {lat['seq_length']} (median of "
        f"{len(lat['pruned_s'])}, same run): **{lat['ratio_pruned_over_unpruned']:.3f}**"
        + (f" (predicted for the encoder by the layer latency table: {lat['predicted_encoder_ratio']:.3f})"
           if lat.get("predicted_encoder_ratio") is not None else ""),
        f"- wall time: {r['wall_time_s']:.0f} s",
    ]
    if r.get("target_heads") is not None:
        lines.append(f"- target heads: {r['target_heads']}")
    if options.get("target_speedup") is not None:
        lines.append(f"- target: an encoder speed-up of {options['target_speedup']:g}x (latency table of this machine)")
    if options.get("target_flops") is not None:
        lines.append(f"- target: keep {100 * options['target_flops']:.0f}% of the encoder's multiply-adds")
    lines += _class_tables(r)
    files = r.get("files", {})
    if "importance_png" in files:
        lines += ["", f"![head importance]({files['importance_png']})"]
    if "gates_png" in files:
        lines += ["", f"![final gates]({files['gates_png']})"]
    if "history_png" in files:
        lines += ["", f"![P(gate = 0) over training]({files['history_png']})"]
    if "ffn_png" in files:
        lines += ["", f"![feed-forward width per layer]({files['ffn_png']})"]
    return "\n".join(lines) + "\n"

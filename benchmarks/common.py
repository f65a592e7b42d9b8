"""Helpers of the benchmark harness: statistics, the machine, versions, head patterns, timing, files.

Nothing here imports MindSpore or torch at module level.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"

__all__ = [
    "REPO",
    "stats",
    "ratio_of_medians",
    "paired_ratios",
    "machine_info",
    "versions",
    "uneven_pattern",
    "pattern_summary",
    "interleaved",
    "rss_gb",
    "free",
    "atomic_write_text",
    "atomic_write_json",
    "utc_now",
]


# ----------------------------------------------------------------------------- statistics
def stats(values: Sequence[float], digits: int = 6) -> dict[str, Any]:
    """``{"min", "median", "max", "n", "values"}`` of a non-empty list of numbers."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("stats: expected at least one value, got none")
    return {"min": round(min(vals), digits), "median": round(statistics.median(vals), digits),
            "max": round(max(vals), digits), "n": len(vals), "values": [round(v, digits) for v in vals]}


def ratio_of_medians(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """``median(numerator) / median(denominator)`` (the headline form of a within-run ratio)."""
    return float(statistics.median(numerator) / statistics.median(denominator))


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per-repeat ratios of two series measured in alternation (repeat r of each)."""
    return [float(a) / float(b) for a, b in zip(numerator, denominator)]


# ----------------------------------------------------------------------------- machine and versions
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def _physical_cores() -> int | None:
    try:
        pairs = set()
        physical = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines() + [""]:
            if line.startswith("physical id"):
                physical = line.split(":")[1].strip()
            elif line.startswith("core id"):
                core = line.split(":")[1].strip()
            elif not line.strip() and core is not None:
                pairs.add((physical, core))
                physical = core = None
        return len(pairs) or None
    except OSError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS, and the load average now (a noise indicator)."""
    return {"cpu_model": _cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": _physical_cores(),
            "memory_gb": _memory_gb(), "platform": platform.platform(),
            "load_average_start": load_average()}


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, Any]:
    """Python and package versions (``None`` when a package is absent), and the git commit."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"python": platform.python_version(), "mindspore": _version("mindspore"), "numpy": _version("numpy"),
            "lrp_prune": _version("lrp_prune"), "torch": _version("torch"), "transformers": _version("transformers"),
            "matplotlib": _version("matplotlib"), "git_commit": _git("rev-parse", "--short=12", "HEAD"),
            "git_dirty": None if status is None else bool(status)}


# ----------------------------------------------------------------------------- head patterns
def uneven_pattern(num_layers: int, num_heads: int, fraction_removed: float, seed: int = 0) -> dict[int, list[int]]:
    """A fixed, seeded ``{layer: [heads removed]}`` that removes ``round(fraction * L * H)`` heads unevenly.

    Heads kept are allotted to layers in proportion to ``exp(-a * layer)`` (``a = 4.2 / L``, so the
    first layer weighs ~60x the last whatever the depth), capped at ``num_heads``, with
    largest-remainder rounding: lower layers keep many heads, upper layers few, and at high
    fractions the top layers keep none. The seed picks *which* heads of a layer go.

    Example:
        >>> p = uneven_pattern(12, 12, 0.9)
        >>> kept = [12 - len(p[i]) for i in range(12)]
        >>> sum(kept), kept[0] >= 4, kept[-1]
        (14, True, 0)
    """
    if not 0 <= fraction_removed < 1:
        raise ValueError(f"fraction_removed: expected a number in [0, 1), got {fraction_removed}")
    total = num_layers * num_heads
    keep_total = total - int(round(fraction_removed * total))
    weights = np.exp(-(4.2 / max(1, num_layers)) * np.arange(num_layers))
    keep = np.zeros(num_layers, dtype=np.int64)
    active = list(range(num_layers))
    remaining = keep_total
    shares = np.zeros(num_layers)
    while active:  # water-filling: cap full layers, share the rest among the others
        w = weights[active]
        alloc = remaining * w / w.sum()
        full = [layer for layer, a in zip(active, alloc) if a >= num_heads]
        if not full:
            shares[active] = alloc
            break
        for layer in full:
            keep[layer] = num_heads
            remaining -= num_heads
            active.remove(layer)
    floors = np.floor(shares[active]).astype(np.int64) if active else np.zeros(0, np.int64)
    for layer, f in zip(active, floors):
        keep[layer] = f
    leftover = keep_total - int(keep.sum())
    order = sorted(active, key=lambda layer: (-(shares[layer] - math.floor(shares[layer])), layer))
    for layer in order[:leftover]:
        keep[layer] += 1
    assert int(keep.sum()) == keep_total and keep.max() <= num_heads
    rng = np.random.default_rng(seed)
    pattern = {}
    for layer in range(num_layers):
        removed = rng.choice(num_heads, size=num_heads - int(keep[layer]), replace=False)
        pattern[layer] = sorted(int(h) for h in removed)
    return pattern


def pattern_summary(pattern: Mapping[int, Sequence[int]], num_heads: int) -> dict[str, Any]:
    kept = [num_heads - len(pattern[i]) for i in sorted(pattern)]
    return {"heads_kept": sum(kept), "heads_removed": sum(len(v) for v in pattern.values()),
            "heads_kept_per_layer": kept, "layers_with_zero_heads": sum(1 for k in kept if k == 0),
            "max_heads_in_a_layer": max(kept), "heads_to_prune": {str(k): list(v) for k, v in pattern.items()}}


# ----------------------------------------------------------------------------- timing and memory
def interleaved(runners: Mapping[str, Callable[[], Any]], repeats: int, pause: float = 0.01) -> dict[str, list[float]]:
    """Seconds of each runner, ``repeats`` times, in alternation.

    Repeat ``r`` runs every runner once, in the given order for even ``r`` and reversed for odd
    ``r`` (A B, B A, ...), so drift in the machine's speed hits every runner alike. An untimed
    ``pause`` between runs lets the thread pool that just finished stop spinning (MindSpore's
    and PyTorch's OpenMP pools share this process) before the next one starts.
    """
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            if pause:
                time.sleep(pause)
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return times


def rss_gb() -> float | None:
    """Resident memory of this process in GB (Linux), or ``None``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024 ** 2, 2)
    except OSError:
        pass
    return None


def free(*_objects: Any) -> None:
    """Collect garbage (call after ``del`` of models: each compiled graph holds its buffers)."""
    gc.collect()


# ----------------------------------------------------------------------------- files
def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary name in the same directory, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Atomic JSON (numpy values converted; NaN/inf become ``null``)."""
    return atomic_write_text(path, json.dumps(_jsonable(data), indent=1, allow_nan=False) + "\n")


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def tests_on_path() -> None:
    """Make ``tests/reference.py`` and ``tests/helpers.py`` importable."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))

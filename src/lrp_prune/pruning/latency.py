"""A measured latency table of one encoder layer, for budgets in time rather than arithmetic (ZipLM).

Multiply-adds are a poor stand-in for time on a real machine: narrow matmuls run below peak,
and LayerNorm, softmax and GELU do not shrink with the units removed. So ``target_speedup``
budgets against *measured* time: one encoder layer is timed on this machine at a grid of
(heads kept, FFN width) for the run's batch size and sequence length (the median of repeats
taken in alternation over the whole grid), the table is cached with its grid, machine and
shapes, and the expected time of a layer is read from it by bilinear interpolation at the
expected open counts (exact at grid points). A model's predicted time is the sum over its
layers; its predicted speed-up is the unpruned sum over the pruned sum.

Example:
    >>> table = LatencyTable(heads=(0, 12), units=(0, 1536), seconds=((1.0, 3.0), (2.0, 4.0)),
    ...                      batch_size=32, seq_length=64, shapes={}, machine={})
    >>> table.at(12, 1536), table.at(6, 768)        # a grid point; the middle of the patch
    (4.0, 2.5)
    >>> table.slopes(6, 768)                        # seconds per head, per unit there
    (0.08333333333333333, 0.0013020833333333333)
    >>> round(table.speedup([12, 12], [1536, 1536], [0, 12], [0, 1536]), 3)   # 8 s / 5 s
    1.6
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lrp_prune.errors import LRPPruneError, check_int, expect

__all__ = ["LatencyTable", "measure_layer_table", "cached_layer_table", "default_grid"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatencyTable:
    """Median seconds of one encoder layer's forward at a grid of (heads kept, FFN width).

    Attributes:
        heads: the grid's head counts, ascending (from 0 to all).
        units: the grid's FFN widths, ascending (from 0 to all).
        seconds: ``[len(heads)][len(units)]`` median seconds per forward of one layer.
        batch_size / seq_length: the input shape timed.
        shapes: hidden size, heads, FFN width, activation and dtype of the layer timed.
        machine: where it was timed (CPU model, cores, MindSpore version).
    """

    heads: tuple[int, ...]
    units: tuple[int, ...]
    seconds: tuple[tuple[float, ...], ...]
    batch_size: int
    seq_length: int
    shapes: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        grid = np.asarray(self.seconds, dtype=float)
        ok = (grid.shape == (len(self.heads), len(self.units)) and len(self.heads) >= 2 and len(self.units) >= 2
              and list(self.heads) == sorted(set(self.heads)) and list(self.units) == sorted(set(self.units))
              and bool(np.isfinite(grid).all()) and bool((grid > 0).all()))
        expect(ok, "latency table", "ascending grids of at least 2 head counts and 2 widths and positive seconds "
               "of shape [heads][units]", f"heads {self.heads}, units {self.units}, seconds of shape {grid.shape}")
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        object.__setattr__(self, "seconds", tuple(tuple(float(v) for v in row) for row in grid))

    def _patch(self, heads: float, units: float) -> tuple[int, int, float, float]:
        h = float(np.clip(heads, self.heads[0], self.heads[-1]))
        u = float(np.clip(units, self.units[0], self.units[-1]))
        i = int(np.clip(np.searchsorted(self.heads, h, side="right") - 1, 0, len(self.heads) - 2))
        j = int(np.clip(np.searchsorted(self.units, u, side="right") - 1, 0, len(self.units) - 2))
        th = (h - self.heads[i]) / (self.heads[i + 1] - self.heads[i])
        tu = (u - self.units[j]) / (self.units[j + 1] - self.units[j])
        return i, j, th, tu

    def at(self, heads: float, units: float) -> float:
        """Seconds of one layer with ``heads`` heads and ``units`` FFN units (bilinear; exact at grid points)."""
        i, j, th, tu = self._patch(heads, units)
        s = self.seconds
        return float((1 - th) * (1 - tu) * s[i][j] + th * (1 - tu) * s[i + 1][j]
                     + (1 - th) * tu * s[i][j + 1] + th * tu * s[i + 1][j + 1])

    def slopes(self, heads: float, units: float) -> tuple[float, float]:
        """``(d seconds / d head, d seconds / d unit)`` of the bilinear patch at that point."""
        i, j, th, tu = self._patch(heads, units)
        s = self.seconds
        dh = ((1 - tu) * (s[i + 1][j] - s[i][j]) + tu * (s[i + 1][j + 1] - s[i][j + 1])) / (self.heads[i + 1] - self.heads[i])
        du = ((1 - th) * (s[i][j + 1] - s[i][j]) + th * (s[i + 1][j + 1] - s[i + 1][j])) / (self.units[j + 1] - self.units[j])
        return float(dh), float(du)

    def model_seconds(self, heads_per_layer: Sequence[float], units_per_layer: Sequence[float]) -> float:
        """Predicted seconds of the encoder: the sum of its layers' table values."""
        return float(sum(self.at(h, u) for h, u in zip(heads_per_layer, units_per_layer)))

    def speedup(self, heads_before: Sequence[float], units_before: Sequence[float], heads_after: Sequence[float],
                units_after: Sequence[float]) -> float:
        """Predicted encoder speed-up from one layout to another."""
        return self.model_seconds(heads_before, units_before) / self.model_seconds(heads_after, units_after)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        out = asdict(self)
        out["seconds"] = [list(row) for row in self.seconds]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatencyTable":
        """Inverse of :meth:`to_dict`."""
        expect(isinstance(data, dict), "latency table", "a JSON object", type(data).__name__)
        known = {"heads", "units", "seconds", "batch_size", "seq_length", "shapes", "machine"}
        missing = sorted(known - set(data) - {"shapes", "machine"})
        expect(not missing, "latency table", f"keys {sorted(known)}", f"missing {missing}")
        return cls(**{k: data[k] for k in known if k in data})


def default_grid(width: int, points: int = 5) -> tuple[int, ...]:
    """``points`` evenly spaced counts from 0 to ``width`` (distinct, ascending).

    Example:
        >>> default_grid(12), default_grid(1536)
        ((0, 3, 6, 9, 12), (0, 384, 768, 1152, 1536))
    """
    return tuple(sorted({int(round(width * k / (points - 1))) for k in range(points)}))


def _machine() -> dict[str, Any]:
    import mindspore as ms

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "mindspore": ms.__version__,
            "mode": "GRAPH" if ms.get_context("mode") == ms.GRAPH_MODE else "PYNATIVE"}


def measure_layer_table(config: Any, batch_size: int, seq_length: int, heads: Sequence[int] | None = None,
                        units: Sequence[int] | None = None, repeats: int = 10) -> LatencyTable:
    """Time one encoder layer of ``config``'s sizes at every (heads, units) of the grid.

    Every layer variant is compiled first, then all are timed in alternation ``repeats`` times
    (forward and reversed order by turns, so drift in the machine's speed hits them alike); each
    cell holds the median.

    Args:
        config: the model's :class:`~lrp_prune.network.config.BertConfig` (its widths are the grid's ends).
        batch_size, seq_length: the input shape to time (the run's batch size and ``max_seq_length``).
        heads, units: the grids (default :func:`default_grid` of each width).
        repeats: timed calls per cell.
    """
    import mindspore as ms

    from lrp_prune.network.bert import BertEncoderCell

    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seq_length = check_int(seq_length, "seq_length", minimum=1)
    repeats = check_int(repeats, "repeats", minimum=1)
    heads = tuple(heads) if heads is not None else default_grid(config.num_attention_heads)
    units = tuple(units) if units is not None else default_grid(config.intermediate_size)
    expect(heads[0] == 0 and heads[-1] == config.num_attention_heads and units[0] == 0
           and units[-1] == config.intermediate_size, "latency grid",
           f"grids from 0 to {config.num_attention_heads} heads and from 0 to {config.intermediate_size} units",
           f"heads {heads}, units {units}")
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((batch_size, seq_length, config.hidden_size)).astype(np.float32))  # (B, S, H)
    mask_adder = ms.Tensor(np.zeros((batch_size, 1, 1, seq_length), np.float32))  # (B, 1, 1, S)
    cells = {}
    for h in heads:
        for u in units:
            cell = BertEncoderCell(config, tuple(range(h)), 0.0, 0.0, tuple(range(u)))
            cell.set_train(False)
            cell(x, mask_adder).asnumpy()  # compile
            cells[(h, u)] = cell
    times: dict[tuple[int, int], list[float]] = {key: [] for key in cells}
    order = list(cells)
    for r in range(repeats):
        for key in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            cells[key](x, mask_adder).asnumpy()
            times[key].append(time.perf_counter() - start)
    seconds = tuple(tuple(float(np.median(times[(h, u)])) for u in units) for h in heads)
    shapes = {"hidden_size": config.hidden_size, "num_attention_heads": config.num_attention_heads,
              "intermediate_size": config.intermediate_size, "hidden_act": config.hidden_act,
              "dtype": config.dtype, "compute_type": config.compute_type}
    return LatencyTable(heads, units, seconds, batch_size, seq_length, shapes, _machine())


def cached_layer_table(config: Any, batch_size: int, seq_length: int, cache_dir: str | Path | None = None,
                       repeats: int = 10) -> LatencyTable:
    """:func:`measure_layer_table` with the default grids, cached as JSON under ``cache_dir``
    (default ``<cache>/latency``) by shapes, input shape and machine; measured once per key."""
    from lrp_prune.io.assets import cache_dir as asset_cache
    from lrp_prune.io.checkpoint import atomic_write_text

    directory = Path(cache_dir) if cache_dir is not None else asset_cache() / "latency"
    key_fields = {"hidden": config.hidden_size, "heads": config.num_attention_heads,
                  "units": config.intermediate_size, "act": config.hidden_act, "dtype": config.dtype,
                  "compute": config.compute_type, "batch": int(batch_size), "seq": int(seq_length),
                  "repeats": int(repeats), "machine": _machine()}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:24]
    path = directory / f"layer-{key}.json"
    if path.is_file():
        try:
            return LatencyTable.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, LRPPruneError) as err:
            logger.warning("latency table %s unreadable (%s): measuring again", path, err)
    started = time.perf_counter()
    table = measure_layer_table(config, batch_size, seq_length, repeats=repeats)
    logger.info("measured the layer latency table (%d x %d cells) in %.1f s", len(table.heads), len(table.units),
                time.perf_counter() - started)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(table.to_dict(), indent=1))
    return table

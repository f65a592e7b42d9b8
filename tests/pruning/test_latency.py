"""The latency table (measured, cached, interpolated) and the target_speedup budget built on it."""

from __future__ import annotations

import json

import mindspore as ms
import numpy as np
import pytest
from lrp_prune import LRPPruneError
from lrp_prune.network.gates import FFN, HEADS, ModelGates
from lrp_prune.pruning import latency as latency_module
from lrp_prune.pruning.latency import LatencyTable, cached_layer_table, measure_layer_table

from helpers import as_tensors, make_pruner, max_diff, random_inputs, random_model, tiny_config


def synthetic_table(cfg) -> LatencyTable:
    """A made-up table on a 3 x 3 grid: 1 ms of fixed work, 0.5 ms per head, 0.05 ms per unit, plus a kink."""
    heads, units = (0, 2, cfg.num_attention_heads), (0, 20, cfg.intermediate_size)
    seconds = [[1e-3 + 5e-4 * h + 5e-5 * u + (2e-4 if (h, u) == (2, 20) else 0.0) for u in units] for h in heads]
    return LatencyTable(heads, units, seconds, batch_size=8, seq_length=9)


def test_interpolation_is_exact_at_grid_points_and_bilinear_between():
    cfg = tiny_config()
    table = synthetic_table(cfg)
    for i, h in enumerate(table.heads):
        for j, u in enumerate(table.units):
            assert table.at(h, u) == pytest.approx(table.seconds[i][j], abs=1e-15)
    # the middle of a patch is the mean of its corners; along an edge, linear
    s = table.seconds
    assert table.at(1, 10) == pytest.approx((s[0][0] + s[1][0] + s[0][1] + s[1][1]) / 4)
    assert table.at(3, 37) == pytest.approx((s[1][2] + s[2][2]) / 2)
    assert table.at(-1, 100) == table.at(0, 37)  # clipped to the grid
    dh, du = table.slopes(1, 10)
    eps = 1e-4
    assert dh == pytest.approx((table.at(1 + eps, 10) - table.at(1 - eps, 10)) / (2 * eps), rel=1e-6)
    assert du == pytest.approx((table.at(1, 10 + eps) - table.at(1, 10 - eps)) / (2 * eps), rel=1e-6)
    assert LatencyTable.from_dict(json.loads(json.dumps(table.to_dict()))) == table
    with pytest.raises(LRPPruneError, match="latency table: expected ascending grids"):
        LatencyTable((0, 4), (0, 37), [[1.0, 2.0]], batch_size=1, seq_length=1)
    with pytest.raises(LRPPruneError, match="latency table: expected"):
        LatencyTable((0, 4), (37, 0), [[1.0, 2.0], [3.0, 4.0]], batch_size=1, seq_length=1)


@pytest.mark.slow
def test_a_measured_table_is_cached_by_shape_and_machine(tmp_path, monkeypatch):
    cfg = tiny_config()
    table = measure_layer_table(cfg, 2, 9, heads=(0, 4), units=(0, 37), repeats=3)
    assert table.heads == (0, 4) and table.units == (0, 37) and table.shapes["intermediate_size"] == 37
    assert all(v > 0 for row in table.seconds for v in row) and table.machine["cpus"] >= 1
    calls = []
    monkeypatch.setattr(latency_module, "measure_layer_table", lambda *a, **k: calls.append(a) or table)
    first = cached_layer_table(cfg, 2, 9, cache_dir=tmp_path)
    again = cached_layer_table(cfg, 2, 9, cache_dir=tmp_path)
    assert first == again == table and len(calls) == 1  # measured once, then read
    cached_layer_table(cfg, 4, 9, cache_dir=tmp_path)  # another batch size is another key
    assert len(calls) == 2 and len(list(tmp_path.glob("layer-*.json"))) == 2
    with pytest.raises(LRPPruneError, match="latency grid: expected grids from 0 to 4 heads"):
        measure_layer_table(cfg, 2, 9, heads=(1, 4), units=(0, 37))


def test_target_speedup_budgets_predicted_time_and_convert_meets_it():
    cfg = tiny_config()
    table = synthetic_table(cfg)
    pruner = make_pruner(None, structures=["heads", "ffn"], target_speedup=2.0, latency_table=table,
                         budget_warmup_steps=0)
    gated = pruner.apply(random_model(cfg))
    budget = gated.budget
    full = table.at(4, 37)
    assert budget.counts_latency and budget.total_heads == pytest.approx(3.0)
    assert budget.target == pytest.approx(1.5)
    state = pruner.update_budget(gated)
    heads = np.nansum(ModelGates(gated).prob_open(HEADS, clip=True), axis=1)
    units = np.nansum(ModelGates(gated).prob_open(FFN, clip=True), axis=1)
    predicted = sum(table.at(h, u) for h, u in zip(heads, units)) / full
    assert state["expected_open"] == pytest.approx(predicted) and state["target_now"] == pytest.approx(1.5)
    # in the graph, the linearised term reproduces the predicted gap at this point
    budget.multipliers.set_data(ms.Tensor(np.array([0.3, 1.5], np.float32)))
    gap = predicted - 1.5
    assert float(gated.total_reg().asnumpy()) == pytest.approx(0.3 * gap + 1.5 * gap * gap, rel=1e-4)
    gated.set_train(False)
    inputs = as_tensors(random_inputs(cfg))
    projection = pruner.project_to_target(gated)
    assert projection["predicted"] <= 1.5 + 1e-9
    expected = [o.asnumpy() for o in gated(*inputs)[:2]]
    pruned = pruner.convert(gated)
    assert max_diff(pruned(*inputs)[0], expected[0]) < 1e-5
    c = pruned.config
    assert table.speedup([4] * 3, [37] * 3, c.heads_per_layer, c.units_per_layer) >= 2.0 - 1e-9


@pytest.mark.parametrize("inner, message", [
    ({"target_speedup": 1.0}, "target_speedup: expected a speed-up above 1"),
    ({"target_speedup": 2.0, "target_heads": 4}, "target_speedup: expected no other target beside it"),
    ({"target_speedup": 2.0, "latency_table": {"heads": [0, 4]}}, "latency_table: expected a LatencyTable"),
    ({"target_speedup": 2.0, "latency_batch_size": 0}, "latency_batch_size"),
])
def test_bad_speedup_targets_are_clear_errors(inner, message):
    with pytest.raises(LRPPruneError, match=message):
        make_pruner(**inner)

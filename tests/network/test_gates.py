"""ModelGates: the one gate API, on tiny BERTs with and without pruned layers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lrp_prune import BertClassifier, LRPPruneError, ModelGates, prune_heads
from lrp_prune.network.gates import HEADS, STRUCTURES, grid_from_checkpoint, structure_named
from lrp_prune.network.hard_concrete import GateSettings, eval_gate_values, prob_open

from helpers import make_pruner, random_model, set_log_a, tiny_config


def gated_tiny(layout=None, **cfg):
    model = random_model(tiny_config(**cfg))
    if layout:
        prune_heads(model, layout)
    return make_pruner().apply(model)


def test_grids_are_indexed_by_original_head_with_nan_for_missing_heads():
    gated = gated_tiny({0: [1, 3], 2: [0, 1, 2, 3]})
    gates = ModelGates(gated)
    log_a = gates.log_a()
    assert log_a.shape == (3, 4)
    assert np.isnan(log_a[0, [1, 3]]).all() and np.isnan(log_a[2]).all()
    assert np.all(log_a[0, [0, 2]] == 3.0) and np.all(log_a[1] == 3.0)
    values = gates.values()
    assert values[0].tolist() == [1.0, 0.0, 1.0, 0.0] and values[2].tolist() == [0.0] * 4  # missing heads read 0
    assert np.isnan(gates.values(missing=np.nan)[2]).all()
    assert [i for _, i, _ in gates.gated()] == [0, 1]  # no gate on a layer with no heads
    assert gates.structures == ("heads",) and gates.is_gated


def test_set_log_a_round_trips_and_drives_values_and_probabilities():
    gated = gated_tiny({1: [2]})
    gates = ModelGates(gated)
    grid = np.array([[4.0, -5.0, 0.0, 1.0], [2.0, -1.0, np.nan, 0.5], [-3.0, 3.0, 0.2, -0.2]])
    gates.set_log_a(grid)
    got = gates.log_a()
    assert np.allclose(got[~np.isnan(grid)], grid[~np.isnan(grid)], atol=1e-6) and np.isnan(got[1, 2])
    settings = GateSettings()
    finite = np.nan_to_num(grid)
    assert np.allclose(gates.values(missing=np.nan)[~np.isnan(grid)],
                       eval_gate_values(finite)[~np.isnan(grid)])
    p = gates.prob_open()
    assert np.allclose(p[~np.isnan(grid)], prob_open(finite, settings)[~np.isnan(grid)])
    assert np.allclose(gates.prob_closed()[~np.isnan(grid)], 1 - p[~np.isnan(grid)])
    clipped = np.clip(prob_open(finite, settings), settings.eps, 1 - settings.eps)
    assert gates.expected_open() == pytest.approx(float(clipped[~np.isnan(grid)].sum()))


def test_set_log_a_refuses_wrong_shape_and_non_finite_values():
    gates = ModelGates(gated_tiny())
    with pytest.raises(LRPPruneError, match=r"log_a: expected a grid of shape \(3, 4\)"):
        gates.set_log_a(np.zeros((2, 4)))
    with pytest.raises(LRPPruneError, match="log_a: expected 4 finite values"):
        gates.set_log_a(np.full((3, 4), np.inf))


def test_close_and_to_prune_use_original_indices():
    gated = gated_tiny({0: [0]})
    gates = ModelGates(gated)
    gates.close([(0, 2), (1, 0), (1, 3)])
    assert gates.to_prune() == {0: [0, 2], 1: [0, 3], 2: []}
    assert gates.open_units() == [(0, 1), (0, 3), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (2, 3)]
    assert make_pruner().heads_to_prune(gated) == gates.to_prune()
    with pytest.raises(LRPPruneError, match="close: expected gated heads of layer 0, got \\[0\\]"):
        gates.close([(0, 0)])  # head 0 of layer 0 was pruned before gating


def test_install_and_remove_keep_is_gated_in_step():
    model = random_model(tiny_config())
    gates = ModelGates(model)
    assert not gates.is_gated and gates.structures == ()
    assert np.all(gates.values() == 1.0)  # an ungated model reads 1 for every head it has
    assert np.isnan(gates.prob_open()).all()
    make_pruner().apply(model)
    assert model.is_gated and ModelGates(model).is_gated
    ModelGates(model).remove()
    assert not model.is_gated and not ModelGates(model).is_gated


def test_a_classifier_and_a_user_cell_reach_the_same_gates():
    cfg = tiny_config()
    clf = make_pruner().apply(BertClassifier(cfg, False, num_labels=3))
    set_log_a(clf, {0: [1.0, -9.0, 2.0, 3.0]})
    assert ModelGates(clf).to_prune()[0] == [1]
    assert ModelGates(clf.bert).to_prune()[0] == [1]
    assert clf.get_gate_values()[0, 1] == 0.0


def test_structure_registry_and_names():
    assert structure_named("heads") is HEADS and STRUCTURES["heads"] is HEADS
    with pytest.raises(LRPPruneError, match="structure: expected one of"):
        structure_named("ffn-typo")
    assert HEADS.log_a_name(2) == "bert_encoder.layers.2.attention.attention.gate.log_a"
    assert HEADS.layer_of("bert.bert.bert_encoder.layers.11.attention.attention.gate.log_a") == 11
    assert HEADS.layer_of("bert_encoder.layers.1.attention.output.dense.weight") is None


def test_grid_from_checkpoint_places_uneven_layers_by_their_heads():
    cfg = tiny_config()
    params = {"bert.bert_encoder.layers.0.attention.attention.gate.log_a": np.array([1.0, 2.0]),
              "bert.bert_encoder.layers.2.attention.attention.gate.log_a": np.array([3.0, 4.0, 5.0, 6.0]),
              "bert.dense_1.weight": np.zeros((3, 32))}
    grid, layers = grid_from_checkpoint(params, cfg, HEADS, [[1, 3], [], [0, 1, 2, 3]])
    assert layers == 2
    assert grid[0, [1, 3]].tolist() == [1.0, 2.0] and np.isnan(grid[0, [0, 2]]).all()
    assert np.isnan(grid[1]).all() and grid[2].tolist() == [3.0, 4.0, 5.0, 6.0]
    empty, none = grid_from_checkpoint({"dense.weight": np.zeros(2)})
    assert none == 0 and empty.size == 0


def test_expected_open_of_open_gates_is_the_documented_constant():
    gates = ModelGates(gated_tiny())
    p = 1 / (1 + math.exp(-(3.0 - 0.33 * math.log(0.1 / 1.1))))
    assert gates.expected_open() == pytest.approx(12 * p, rel=1e-6)

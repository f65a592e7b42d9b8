"""Feed-forward units as a second structure: gates, the compute-weighted penalty, the FLOPs budget,
exact convert (pruned == gated == the numpy reference), saving, reloading, exporting, pruning twice."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lrp_prune import (BertClassifier, BertConfig, BertModel, LRPPruneError, export_mindir, load_mindir, load_pruned,
                       parameter_groups, prune_heads)
from lrp_prune.io.saved import UNITS_FILE
from lrp_prune.network.bert import prune_ffn
from lrp_prune.network.gates import FFN, HEADS, ModelGates
from lrp_prune.network.hard_concrete import prob_open
from lrp_prune.network.slicing import plan_units, prune_ffn_params
from lrp_prune.pruning.convert import count_params
from mindspore import nn

from helpers import (CLOSED, OPEN, as_tensors, make_pruner, max_diff, random_inputs, random_model, temp_leftovers,
                     tiny_config)
from reference import bert_forward, param_shapes

FFN_CHOICES = [CLOSED, OPEN, 0.0, -2.0, 1.0, -2.39, -2.4]


# ---------------------------------------------------------------- slicing, by hand
def test_ffn_slicing_on_hand_computed_matrices():
    w_in = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])  # 4 units, hidden 2
    b_in = np.array([0.1, 0.2, 0.3, 0.4])
    w_out = np.array([[1.0, 10.0, 100.0, 1000.0], [2.0, 20.0, 200.0, 2000.0]])  # (hidden 2, 4 units)
    params = {"l.intermediate.weight": w_in, "l.intermediate.bias": b_in, "l.output.dense.weight": w_out,
              "l.output.dense.bias": np.array([9.0, 9.0]), "other": np.ones(1)}
    plan = plan_units((0, 1, 2, 3), prune=[1, 3])
    out = prune_ffn_params(params, "l.", plan, np.array([0.5, 2.0]))
    assert out["l.intermediate.weight"].tolist() == [[1.0, 2.0], [5.0, 6.0]]
    assert out["l.intermediate.bias"].tolist() == [0.1, 0.3]
    assert out["l.output.dense.weight"].tolist() == [[0.5, 200.0], [1.0, 400.0]]  # unit 0 x 0.5, unit 2 x 2
    assert out["l.output.dense.bias"].tolist() == [9.0, 9.0] and out["other"].tolist() == [1.0]
    # folding a gate into the column equals gating the unit
    h = np.array([[0.7, -0.2, 1.5, 0.3]])
    gates = np.array([0.5, 0.0, 2.0, 0.0])
    assert np.allclose((h * gates) @ w_out.T, h[:, [0, 2]] @ out["l.output.dense.weight"].T)
    # a second plan on original indices composes (units 0 and 2 remain; remove 0 again and 2)
    again = prune_ffn_params(out, "l.", plan_units((0, 2), prune=[0, 1]), None)
    assert again["l.intermediate.weight"].tolist() == [[5.0, 6.0]]
    none = prune_ffn_params(out, "l.", plan_units((0, 2), prune=[0, 2]), None)
    assert sorted(none) == ["l.output.dense.bias", "other"]


def test_layer_units_in_the_config_validate_count_and_round_trip():
    cfg = tiny_config()
    thin = cfg.with_layer_units([[0, 5, 36], list(range(37)), []])
    assert thin.units_per_layer == (3, 37, 0) and thin.total_units == 40 and thin.is_pruned
    assert BertConfig.from_json(thin.to_json()) == thin
    assert cfg.with_layer_units([range(37)] * 3).layer_units is None  # canonical "unpruned"
    h, f = cfg.hidden_size, cfg.intermediate_size
    assert cfg.num_parameters() - thin.num_parameters() == (3 * f - 40) * (2 * h + 1)
    assert thin.ffn_flops(10) == 40 * 2 * 10 * h
    shapes = param_shapes(thin.to_dict())
    assert thin.num_parameters() == sum(math.prod(s) for s in shapes.values())
    for bad, message in (([[1, 0], [], []], "layer_units\\[0\\]: expected sorted"),
                         ([[37], [], []], "layer_units\\[0\\]: expected sorted, distinct unit indices in \\[0, 37\\)"),
                         ([[0]], "layer_units: expected one entry per layer"),
                         ([["a"], [], []], "layer_units: expected a list with one list of integer unit")):
        with pytest.raises(LRPPruneError, match=message):
            tiny_config(layer_units=bad)


# ---------------------------------------------------------------- gates and the penalty
def test_apply_gates_ffn_units_with_named_log_a_and_the_gate_learning_rate():
    cfg = tiny_config()
    gated = make_pruner(structures=["heads", "ffn"]).apply(random_model(cfg, is_training=True))
    names = [n for n, _ in gated.parameters_and_names() if n.endswith("log_a")]
    assert "bert_encoder.layers.2.intermediate.gate.log_a" in names and len(names) == 6
    gates = ModelGates(gated)
    assert gates.structures == ("heads", "ffn") and gates.log_a(FFN).shape == (3, 37)
    groups = parameter_groups(gated, 1e-4, log_a_lr=0.1)
    assert len(groups[2]["params"]) == 6 and groups[2]["lr"] == 0.1
    only_ffn = make_pruner(structures=["ffn"]).apply(random_model(cfg))
    assert ModelGates(only_ffn).structures == ("ffn",)
    assert only_ffn.get_gate_values().tolist() == np.ones((3, 4)).tolist()  # heads ungated: 1


def _numpy_penalty(gates: ModelGates, l0: float, unit_cost: float) -> float:
    total = 0.0
    for structure, cost in ((HEADS, 1.0), (FFN, unit_cost)):
        log_a = gates.log_a(structure)
        if np.isnan(log_a).all():
            continue
        p = np.clip(prob_open(log_a[~np.isnan(log_a)]), 1e-6, 1 - 1e-6)
        total += l0 * cost * p.sum()
    return total


def test_penalty_with_heads_only_is_todays_and_ffn_units_are_weighted_by_their_compute():
    cfg = tiny_config()
    rng = np.random.default_rng(3)
    heads_only = make_pruner(0.02).apply(random_model(cfg))
    ModelGates(heads_only).set_log_a(rng.uniform(-3, 3, (3, 4)))
    todays = 0.02 * np.clip(prob_open(ModelGates(heads_only).log_a()), 1e-6, 1 - 1e-6).sum()
    assert abs(float(heads_only.total_reg().asnumpy()) - todays) < 1e-6
    pruner = make_pruner(0.02, structures=["heads", "ffn"], cost_seq_length=16)
    both = pruner.apply(random_model(cfg))
    gates = ModelGates(both)
    gates.set_log_a(rng.uniform(-3, 3, (3, 4)))
    gates.set_log_a(rng.uniform(-3, 3, (3, 37)), FFN)
    unit_cost = (2 * 16 * 32) / (4 * 16 * 32 * 8 + 2 * 16 * 16 * 8)  # one unit's MACs over one head's
    assert abs(pruner.unit_cost(cfg) - unit_cost) < 1e-12 and gates.cost(FFN) == pytest.approx(unit_cost)
    assert abs(float(both.total_reg().asnumpy()) - _numpy_penalty(gates, 0.02, unit_cost)) < 1e-6
    assert gates.expected_cost() == pytest.approx(gates.expected_open(HEADS) + unit_cost * gates.expected_open(FFN))


def test_flops_budget_targets_compute_and_convert_keeps_it():
    cfg = tiny_config()
    pruner = make_pruner(None, structures=["heads", "ffn"], target_flops=0.5, cost_seq_length=16)
    gated = pruner.apply(random_model(cfg))
    budget = gated.budget
    unit_cost = pruner.unit_cost(cfg)
    total = 12 + 111 * unit_cost
    assert budget.counts_cost and budget.target == pytest.approx(0.5 * total)
    state = pruner.update_budget(gated)
    assert state["expected_open"] == pytest.approx(ModelGates(gated).expected_cost())
    # the budget's term is total_reg (l0_penalty is 0 here): l1 * gap + l2 * gap^2 on the expected compute
    budget.multipliers.set_data(ms.Tensor(np.array([0.5, 2.0], np.float32)))
    gap = ModelGates(gated).expected_cost() - float(budget.target_now.asnumpy())
    assert float(gated.total_reg().asnumpy()) == pytest.approx(0.5 * gap + 2.0 * gap * gap, rel=1e-4)
    gated.set_train(False)
    projection = pruner.project_to_target(gated)
    assert set(projection["closed_by_structure"]) <= {"heads", "ffn"} and projection["closed_by_structure"]
    pruned = pruner.convert(gated)
    kept_cost = pruned.config.total_heads + pruned.config.total_units * unit_cost
    assert kept_cost <= 0.5 * total + 1e-6 and kept_cost > 0.5 * total - 1.0  # filled up to less than a head
    seq = 16
    assert pruned.config.encoder_flops(seq) <= 0.5 * cfg.encoder_flops(seq) * (1 + 1e-9)
    # with ffn only, the heads are compute no gate can remove: the target must leave room above them
    with pytest.raises(LRPPruneError, match="target_flops: expected more than the share"):
        make_pruner(None, structures=["ffn"], target_flops=0.2, cost_seq_length=16).apply(random_model(cfg))


@pytest.mark.parametrize("inner, message", [
    ({"structures": ["heads", "mlp"]}, "structures: expected a non-empty list of distinct names"),
    ({"structures": []}, "structures: expected a non-empty list"),
    ({"structures": ["ffn"], "target_heads": 4}, "target_heads: expected 'heads' among the gated structures"),
    ({"target_heads": 4, "target_flops": 0.5}, "target_flops: expected no target_heads beside it"),
    ({"target_flops": 1.5}, "target_flops: expected a fraction in \\(0, 1\\)"),
    ({"target_flops": True}, "target_flops: expected a fraction"),
    ({"cost_seq_length": 0}, "cost_seq_length"),
])
def test_bad_structures_and_budgets_are_clear_errors(inner, message):
    with pytest.raises(LRPPruneError, match=message):
        make_pruner(**inner)


# ---------------------------------------------------------------- exact convert
def _gate_and_compare(cfg, head_log_a, ffn_log_a, seed, structures=("heads", "ffn"), save_dir=None):
    raw = random_inputs(cfg, batch=2, seed=seed, pad_from=4)
    inputs = as_tensors(raw)
    pruner = make_pruner(structures=list(structures))
    gated = pruner.apply(random_model(cfg, seed=seed))
    gates = ModelGates(gated)
    if "heads" in structures:
        gates.set_log_a(head_log_a)
    gates.set_log_a(ffn_log_a, FFN)
    gated.set_train(False)
    head_values, unit_values = gates.values(HEADS), gates.values(FFN)
    gated_out = [o.asnumpy() for o in gated(*inputs)[:2]]
    params = {n: p.asnumpy() for n, p in gated.parameters_and_names() if not n.endswith("log_a")}
    ref = bert_forward(params, cfg.to_dict(), *raw, gates=head_values, ffn_gates=unit_values)
    assert max_diff(gated_out[0], ref[0]) < 1e-5 and max_diff(gated_out[1], ref[1]) < 1e-5
    pruned = pruner.convert(gated, save_dir)
    out = pruned(*inputs)
    assert max_diff(out[0], gated_out[0]) < 1e-5 and max_diff(out[1], gated_out[1]) < 1e-5
    kept_units = [tuple(int(u) for u in np.flatnonzero(unit_values[i] > 0)) for i in range(cfg.num_hidden_layers)]
    assert [pruned.config.units_of(i) for i in range(cfg.num_hidden_layers)] == kept_units
    assert count_params(pruned) == pruned.config.num_parameters()
    return pruned, inputs, gated_out


@pytest.mark.parametrize("pattern", ["all_open", "one_layer_closed", "all_closed", "mixed"])
def test_pruned_equals_gated_equals_reference_with_heads_and_ffn(pattern):
    cfg = tiny_config(layer_heads=[[0, 1, 2, 3], [0, 2, 3], [1]])
    rng = np.random.default_rng(len(pattern))
    ffn = {"all_open": np.full((3, 37), OPEN), "all_closed": np.full((3, 37), CLOSED),
           "one_layer_closed": np.where(np.arange(3)[:, None] == 1, CLOSED, rng.choice(FFN_CHOICES, (3, 37))),
           "mixed": rng.choice(FFN_CHOICES, (3, 37))}[pattern]
    heads = rng.choice(FFN_CHOICES, (3, 4))
    pruned, _, _ = _gate_and_compare(cfg, heads, ffn, seed=len(pattern))
    if pattern == "all_closed":
        assert pruned.config.units_per_layer == (0, 0, 0) and "every feed-forward unit" in pruned.prune_summary.warnings[-1]
        names = {n for n, _ in pruned.parameters_and_names()}
        assert "bert_encoder.layers.0.output.dense.bias" in names
        assert not any(".intermediate." in n or n.endswith("layers.0.output.dense.weight") for n in names)


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_heads_and_ffn_closed_at_random_save_reload_export_prune_twice(data):
    n_heads = data.draw(st.integers(1, 4), "heads")
    head_size = data.draw(st.integers(2, 6), "head_size")
    layers = data.draw(st.integers(1, 3), "layers")
    ffn = data.draw(st.integers(3, 19), "ffn")
    cfg = BertConfig(vocab_size=23, hidden_size=n_heads * head_size, num_hidden_layers=layers,
                     num_attention_heads=n_heads, intermediate_size=ffn, seq_length=6,
                     max_position_embeddings=8, type_vocab_size=2)
    grid = lambda w, name: np.array(data.draw(st.lists(st.lists(  # noqa: E731
        st.sampled_from(FFN_CHOICES), min_size=w, max_size=w), min_size=layers, max_size=layers), name))
    heads, units = grid(n_heads, "head_log_a"), grid(ffn, "ffn_log_a")
    if data.draw(st.booleans(), "a whole layer closed"):
        units[data.draw(st.integers(0, layers - 1), "closed layer")] = CLOSED
    seed = data.draw(st.integers(0, 3), "seed")
    with tempfile.TemporaryDirectory() as tmp:
        save_dir = Path(tmp) / "pruned"
        pruned, inputs, gated_out = _gate_and_compare(cfg, heads, units, seed, save_dir=save_dir)
        again = load_pruned(save_dir)
        assert again.config == pruned.config
        out = again(*inputs)
        assert max_diff(out[0], gated_out[0]) < 1e-5 and max_diff(out[1], gated_out[1]) < 1e-5
        removed = json.loads((save_dir / UNITS_FILE).read_text())
        assert {int(k): v for k, v in removed.items()} == {
            i: [u for u in range(ffn) if u not in pruned.config.units_of(i)] for i in range(layers)}
        assert temp_leftovers(save_dir) == []
        graph = load_mindir(export_mindir(again, Path(tmp) / "m", batch_size=2, seq_length=cfg.seq_length))
        assert max_diff(graph(*inputs)[0], gated_out[0]) < 1e-5
        # prune twice: gate the pruned model again and close one more unit of every layer that has two
        pruner = make_pruner(structures=["ffn"]) if pruned.config.total_units else None
        if pruner is not None:
            regated = pruner.apply(again)
            gates = ModelGates(regated)
            more = [(i, host.units[0]) for i, host in gates.hosts(FFN) if len(host.units) >= 2]
            gates.close(more, FFN)
            regated.set_train(False)
            before = [o.asnumpy() for o in regated(*inputs)[:2]]
            twice = pruner.convert(regated)
            assert max_diff(twice(*inputs)[0], before[0]) < 1e-5
            for i, u in more:
                assert u not in twice.config.units_of(i) and set(twice.config.units_of(i)) < set(again.config.units_of(i))


def test_prune_ffn_in_place_composes_and_checks_its_arguments():
    cfg = tiny_config()
    model = random_model(cfg)
    raw = random_inputs(cfg)
    params = {n: p.asnumpy() for n, p in model.parameters_and_names()}
    prune_ffn(model, {0: [1, 2, 3], 2: list(range(37))})
    prune_ffn(model, {"0": [1, 4]})  # pruning again on original indices, JSON-style keys
    assert model.config.units_per_layer == (33, 37, 0)
    assert model.config.units_of(0)[:3] == (0, 5, 6)
    gates = np.ones((3, 37))
    gates[0, [1, 2, 3, 4]] = 0.0
    gates[2] = 0.0
    cfg_full = cfg.to_dict()
    ref_params = dict(params)
    for name in ("intermediate.weight", "intermediate.bias", "output.dense.weight"):  # layer 2 as the reference reads it
        del ref_params[f"bert_encoder.layers.2.{name}"]
    ref_cfg = dict(cfg_full, layer_units=[list(range(37)), list(range(37)), []])
    ref = bert_forward(ref_params, ref_cfg, *raw, ffn_gates=gates)
    assert max_diff(model(*as_tensors(raw))[0], ref[0]) < 1e-5
    with pytest.raises(LRPPruneError, match="units_to_prune\\[1\\]: expected unit indices in \\[0, 37\\), got \\[37\\]"):
        prune_ffn(model, {1: [37]})
    with pytest.raises(LRPPruneError, match="units_to_prune: expected layer keys"):
        prune_ffn(model, {5: [0]})
    with pytest.raises(LRPPruneError, match="gate_values: expected shape \\(3, 37\\)"):
        prune_ffn(model, {}, gate_values=np.ones((3, 4)))
    gated = make_pruner(structures=["ffn"]).apply(random_model(cfg))
    with pytest.raises(LRPPruneError, match="prune_ffn: expected a model without gates, got ffn gates"):
        prune_ffn(gated, {0: [0]})


class UserModel(nn.Cell):
    """A user's own model with a head around a BertModel."""

    def __init__(self, cfg, seed=6):
        super().__init__()
        self.encoder = random_model(cfg, seed=seed, is_training=True)
        self.head = nn.Dense(cfg.hidden_size, 2)

    def construct(self, input_ids, token_type_ids, input_mask):
        return self.head(self.encoder(input_ids, token_type_ids, input_mask)[1])


def test_the_documented_sequence_with_ffn_on_a_users_model_and_a_classifier(tmp_path):
    cfg = tiny_config()
    inputs = as_tensors(random_inputs(cfg))
    rng = np.random.default_rng(5)
    for model in (UserModel(cfg), BertClassifier(cfg, True, num_labels=3)):
        pruner = make_pruner(structures=["heads", "ffn"])
        gated = pruner.apply(model)
        gates = ModelGates(gated)
        gates.set_log_a(rng.choice(FFN_CHOICES, (3, 37)), FFN)
        gates.close([(1, 2)])
        gated.set_train(False)
        expected = gated(*inputs).asnumpy()
        save_dir = tmp_path / type(model).__name__
        pruned = pruner.convert(gated, save_dir)
        assert ModelGates(gated).is_gated and max_diff(pruned(*inputs), expected) < 1e-5
        fresh = UserModel(cfg) if isinstance(model, UserModel) else None
        again = load_pruned(save_dir, fresh)
        again.set_train(False)
        assert max_diff(again(*inputs), expected) < 1e-5
        assert (save_dir / UNITS_FILE).is_file()
    # in place, the original's behaviour, on a user's model
    user = UserModel(cfg)
    pruner = make_pruner(structures=["ffn"])
    gated = pruner.apply(user)
    ModelGates(gated).close([(0, 3), (2, 36)], FFN)
    gated.set_train(False)
    expected = gated(*inputs).asnumpy()
    pruned = pruner.convert(gated, inplace=True)
    assert pruned is user and max_diff(pruned(*inputs), expected) < 1e-5
    assert pruned.encoder.config.units_per_layer == (36, 37, 36)
    with pytest.raises(LRPPruneError, match="intermediate_size 37"):
        load_pruned(tmp_path / "UserModel", UserModel(tiny_config(intermediate_size=40)))


def test_heads_only_saves_stay_as_they_were(tmp_path):
    cfg = tiny_config()
    pruner = make_pruner()
    gated = pruner.apply(random_model(cfg))
    ModelGates(gated).close([(0, 1)])
    pruned = pruner.convert(gated, tmp_path / "p")
    assert pruned.config.layer_units is None and not (tmp_path / "p" / UNITS_FILE).exists()
    summary = pruned.prune_summary
    assert summary.units_kept == summary.units_total == 111 and "ffn units" not in str(summary)
    # a later FFN save into the same directory adds the units file; a heads-only save removes it again
    model = prune_heads(random_model(cfg), {0: [1]})
    ffn_pruner = make_pruner(structures=["ffn"])
    regated = ffn_pruner.apply(model)
    ModelGates(regated).close([(1, 0)], FFN)
    ffn_pruner.convert(regated, tmp_path / "p")
    assert (tmp_path / "p" / UNITS_FILE).is_file()
    pruner.convert(gated, tmp_path / "p")
    assert not (tmp_path / "p" / UNITS_FILE).exists()


def test_a_bare_model_with_heads_and_ffn_converts_to_a_bert_model():
    cfg = tiny_config()
    pruned, _, _ = _gate_and_compare(cfg, np.full((3, 4), OPEN), np.where(np.arange(37) % 3 == 0, CLOSED, OPEN)
                                     * np.ones((3, 1)), seed=1)
    assert isinstance(pruned, BertModel) and pruned.config.units_per_layer == (24, 24, 24)
    summary = pruned.prune_summary
    assert summary.units_kept == 72 and summary.encoder_flops_after < summary.encoder_flops_before
    assert "feed-forward units kept 72/111" in str(summary)

"""Target head budget: the Lagrangian controller reaches a requested number of heads."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from lrp_prune import HeadPruningFactory, LRPPruneError
from lrp_prune.app.pipeline import PruneOptions
from lrp_prune.pruning.budget import HeadBudget, resolve_target
from mindspore import Tensor

from helpers import as_tensors, max_diff, random_inputs, random_model, run_flow, set_log_a, tiny_config, write_tiny_nli


def test_resolve_target():
    assert resolve_target(0.25, 12) == 3 and resolve_target(0.5, 72) == 36 and resolve_target(18, 72) == 18
    for bad in (0, 73, 1.5, -0.2, True, "half"):
        with pytest.raises(LRPPruneError, match="target_heads"):
            resolve_target(bad, 72)


def test_multipliers_ascend_and_target_warms_up():
    budget = HeadBudget(target=3, total_heads=12, warmup_steps=3, lr=0.1)
    states = [budget.update(10.0) for _ in range(4)]
    assert [round(s["target_now"], 6) for s in states] == [9.0, 6.0, 3.0, 3.0]
    assert states[0]["lambda_1"] == pytest.approx(0.1)  # 0.1 * (10 - 9)
    assert states[-1]["lambda_1"] == pytest.approx(0.1 * (1 + 4 + 7 + 7))
    assert states[-1]["lambda_2"] == pytest.approx(0.1 * (1 + 16 + 49 + 49))
    below = HeadBudget(target=6, total_heads=12, warmup_steps=0, lr=0.1)
    s = below.update(4.0)
    assert s["lambda_1"] == pytest.approx(-0.2) and s["lambda_2"] == pytest.approx(0.4)  # pushes heads open
    # the term the model adds: lambda_1 * gap + lambda_2 * gap^2
    value = float(below(Tensor(np.float32(5.0))))
    assert value == pytest.approx(-0.2 * (5 - 6) + 0.4 * (5 - 6) ** 2, rel=1e-6)


def test_budget_term_is_in_total_reg_and_its_gradient_reaches_log_a():
    cfg = tiny_config()
    pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                            "config": {"target_heads": 0.5, "budget_warmup_steps": 0}})
    gated = pruner.apply(random_model(cfg))
    assert gated.budget.target == 6 and pruner.config.gate.l0_penalty == 0.0
    names = [n for n, _ in gated.parameters_and_names()]
    assert "budget.multipliers" in names and "budget.target_now" in names
    assert all(not p.requires_grad for n, p in gated.parameters_and_names() if n.startswith("budget."))
    state = pruner.update_budget(gated)  # E ~ 12 * 0.98 > 6: lambda_1 grows
    assert state["expected_open"] == pytest.approx(pruner.expected_open(gated)) and state["lambda_1"] > 0
    gated.set_train(False)
    reg = float(gated(*as_tensors(random_inputs(cfg)))[3])
    gap = state["expected_open"] - 6
    assert reg == pytest.approx(state["lambda_1"] * gap + state["lambda_2"] * gap * gap, rel=1e-4)


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory):
    return write_tiny_nli(tmp_path_factory.mktemp("budget"), n_train=200)


@pytest.mark.slow
@pytest.mark.parametrize("fraction,target", [(0.25, 3), (0.5, 6)])
def test_targets_are_reached_on_a_tiny_synthetic_task(tiny_task, fraction, target, tmp_path, caplog):
    opts = PruneOptions(task="mnli", data_dir=tiny_task["data_dir"], model=tiny_task["config_json"],
                        load_checkpoint_path=tiny_task["checkpoint"], vocab_file=tiny_task["vocab_file"],
                        max_seq_length=16, buckets=(16,), batch_size=8, eval_batch_size=16, train_steps=150,
                        l0_penalty=0.0, target_heads=fraction, budget_lr=0.01, learning_rate=1e-3,
                        progress=False, latency_batch_size=4, latency_repeats=1, save_dir_path=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="lrp_prune.pruning.lrp"):
        report = run_flow(opts).to_dict()
    history = report["gate_history"]
    assert report["target_heads"] == target
    assert abs(history["expected_open"][-1] - target) <= 1.0  # the controller holds E on target
    assert history["target_now"][-1] == target and history["lambda_2"][-1] > 0
    assert abs(report["heads_kept"] - target) <= 1 and report["heads_kept"] == target  # exact after projection
    assert report["accuracy_pruned"] == report["accuracy_gated"] and report["pruned_equals_gated"]
    # when more gates are open than the target, convert says which heads it closed
    open_gates = sum(1 for row in report["gate_values"] for g in row if g > 0)
    assert open_gates == target
    if any("keeping the" in r.message for r in caplog.records):
        assert any(f"target_heads={target}" in r.message for r in caplog.records)


def test_convert_projects_down_exactly_and_stays_exact():
    cfg = tiny_config()
    pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                            "config": {"target_heads": 5}})
    gated = pruner.apply(random_model(cfg, seed=2))
    log_a = np.array([[3.0, -1.0, 0.5, 2.0], [1.0, -5.0, -2.0, 0.0], [2.5, 0.2, -5.0, 1.5]], np.float32)
    set_log_a(gated, log_a)
    inputs = as_tensors(random_inputs(cfg))
    pruned = pruner.convert(gated)
    assert pruned.config.total_heads == 5
    # the five largest log_a: (0,0) 3.0, (2,0) 2.5, (0,3) 2.0, (2,3) 1.5, (1,0) 1.0
    assert pruned.config.layer_heads == ((0, 3), (0,), (0, 3))
    # pruned equals a fresh model with exactly those gates
    reference = pruner.apply(random_model(cfg, seed=2))
    projected = log_a.copy()
    keep = {(0, 0), (2, 0), (0, 3), (2, 3), (1, 0)}
    for i in range(3):
        for j in range(4):
            if (i, j) not in keep:
                projected[i, j] = -10.0
    set_log_a(reference, projected)
    reference.set_train(False)
    pruned.set_train(False)
    assert max_diff(pruned(*inputs)[0], reference(*inputs)[0]) < 1e-5


def test_convert_raises_when_fewer_heads_are_open_than_the_target():
    cfg = tiny_config()
    pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                            "config": {"target_heads": 8}})
    gated = pruner.apply(random_model(cfg))
    set_log_a(gated, np.tile([3.0, 3.0, -5.0, -5.0], (3, 1)))
    with pytest.raises(LRPPruneError, match="target_heads=8.*got 6"):
        pruner.convert(gated)
    kept = pruner.convert(gated, enforce_target=False)
    assert kept.config.total_heads == 6


@pytest.mark.parametrize("inner,key", [
    ({"target_heads": 0}, "target_heads"),
    ({"target_heads": 1.5}, "target_heads"),
    ({"target_heads": "half"}, "target_heads"),
    ({"target_heads": 4, "budget_lr": 0}, "budget_lr"),
    ({"target_heads": 4, "budget_warmup_steps": -1}, "budget_warmup_steps"),
])
def test_bad_budget_configs(inner, key):
    with pytest.raises(LRPPruneError, match=key):
        HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT", "config": inner})


def test_target_larger_than_the_model_is_refused_at_apply():
    pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                            "config": {"target_heads": 13}})
    with pytest.raises(LRPPruneError, match="target_heads"):
        pruner.apply(random_model(tiny_config()))

"""HeadPruningFactory / LRPHeadPruner.apply(): the Golden Stick API on a tiny BERT."""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
import pytest
from lrp_prune import (BertClassifier, BertClassifierWithLoss, BertModel, HeadPruningFactory, LRPPruneError, ModelGates,
                       PruningType, SupportedModels, load_checkpoint, parameter_groups, save_checkpoint)
from mindspore import Tensor, nn

from helpers import as_tensors, max_diff, random_inputs, random_model, reference_outputs, set_log_a, tiny_config


def make_pruner(**inner):
    """The Golden Stick factory call of the docs, with their lambda by default."""
    inner.setdefault("l0_penalty", 0.0015)
    return HeadPruningFactory.get_pruner({"prune_type": PruningType.LRP, "arch_type": SupportedModels.BERT,
                                          "config": inner})


class UserLoss(nn.Cell):
    """What a user writes around a gated bare BertModel (docs/design.md §1)."""

    def __init__(self, gated, hidden):
        super().__init__()
        self.gated = gated
        self.classifier = nn.Dense(hidden, 3)
        self.ce = nn.CrossEntropyLoss()

    def construct(self, input_ids, token_type_id, input_mask, labels):
        sequence_output, pooled_output, embedding_table, total_reg = self.gated(input_ids, token_type_id, input_mask)
        task_loss = self.ce(self.classifier(pooled_output), labels)
        return task_loss + total_reg


def test_documented_user_code_runs_and_a_step_lowers_the_loss():
    bert_net_config = tiny_config()
    bert_model = random_model(bert_net_config, seed=4, is_training=True)
    head_pruner_config = {"model_params": {"config": bert_net_config}, "l0_penalty": 0.0015}
    pruner = HeadPruningFactory.get_pruner({"prune_type": PruningType.LRP, "arch_type": SupportedModels.BERT,
                                            "config": head_pruner_config})
    gated = pruner.apply(bert_model)
    input_ids, token_type_id, input_mask = as_tensors(random_inputs(bert_net_config, batch=8, seed=2))
    gated.set_train(True)
    sequence_output, pooled_output, embedding_table, total_reg = gated(input_ids, token_type_id, input_mask)
    # total_reg = l0_penalty * L_C, with every log_a at its init 3.0
    shift = 0.33 * math.log(0.1 / 1.1)
    expected = 0.0015 * 12 * (1 / (1 + math.exp(-(3.0 - shift))))
    assert float(total_reg) == pytest.approx(expected, rel=1e-5)
    mask = gated.get_gate_values()
    assert mask.shape == (3, 4) and np.all(mask == 1.0)

    # the original's optimizer snippet: log_a in its own group with lr 0.1
    params = gated.trainable_params()
    log_a = [x for x in params if "log_a" in x.name]
    others = [x for x in params if "log_a" not in x.name]
    assert len(log_a) == 3
    net = UserLoss(gated, bert_net_config.hidden_size)
    groups = [{"params": others + net.classifier.trainable_params()}, {"params": log_a, "lr": 0.1},
              {"order_params": net.trainable_params()}]
    opt = nn.Adam(groups, learning_rate=1e-3)
    step = nn.TrainOneStepCell(net, opt)
    step.set_train(True)
    labels = Tensor(np.array([0, 1, 2, 0, 1, 2, 0, 1], np.int32))
    ms.set_seed(0)
    losses = [float(step(input_ids, token_type_id, input_mask, labels)) for _ in range(8)]
    assert losses[-1] < losses[0]
    # the log_a moved (lr 0.1): gradients reached the gates
    assert not np.allclose(log_a[0].asnumpy(), 3.0)


def test_all_gates_open_equals_ungated_exactly():
    cfg = tiny_config()
    model = random_model(cfg, seed=7)
    inputs = as_tensors(random_inputs(cfg))
    base = [o.asnumpy() for o in model(*inputs)[:2]]
    gated = make_pruner().apply(model)  # log_a = 3: eval gate exactly 1
    gated.set_train(False)
    out = gated(*inputs)
    assert len(out) == 4
    assert np.array_equal(out[0].asnumpy(), base[0]) and np.array_equal(out[1].asnumpy(), base[1])


def test_closing_one_head_equals_reference_with_that_head_zeroed():
    cfg = tiny_config()
    model = random_model(cfg, seed=8)
    raw = random_inputs(cfg)
    gated = make_pruner().apply(model)
    set_log_a(gated, {1: [3.0, -4.0, 3.0, 3.0], 2: [0.3, 3.0, 3.0, -1.0]})
    gated.set_train(False)
    gates = gated.get_gate_values()
    assert gates[1, 1] == 0.0 and 0 < gates[2, 0] < 1 and 0 < gates[2, 3] < 1
    seq, pooled = gated(*as_tensors(raw))[:2]
    ref_seq, ref_pooled = reference_outputs(gated, cfg, raw, gates=gates)
    assert max_diff(seq, ref_seq) < 1e-5 and max_diff(pooled, ref_pooled) < 1e-5


def test_apply_keeps_names_and_values_and_modelzoo_checkpoints_still_load(tmp_path):
    cfg = tiny_config(num_hidden_layers=2)
    clf = BertClassifier(cfg, True)
    before = {n: p.asnumpy().copy() for n, p in clf.parameters_and_names()}
    save_checkpoint(BertClassifierWithLoss(clf), tmp_path / "finetune.ckpt")  # bert.bert.* names
    gated = make_pruner().apply(clf)
    after = {n: p.asnumpy() for n, p in gated.parameters_and_names()}
    extra = sorted(set(after) - set(before))
    assert extra == [f"bert.bert_encoder.layers.{i}.attention.attention.gate.log_a" for i in range(2)]
    assert all(np.array_equal(before[n], after[n]) for n in before)
    assert all(p.name == n for n, p in gated.parameters_and_names())  # Parameter.name is the full path
    report = load_checkpoint(tmp_path / "finetune.ckpt", gated)
    assert report.missing == [] and report.unexpected == [] and len(report.loaded) == len(before)


def test_model_with_head_runs_and_exposes_total_reg():
    cfg = tiny_config()
    clf = make_pruner(l0_penalty=0.5).apply(BertClassifier(cfg, True))
    inputs = as_tensors(random_inputs(cfg, batch=4))
    clf.set_train(True)
    logits = clf(*inputs)
    assert logits.shape == (4, 3)  # the head runs unchanged (3-output BertModel inside)
    reg = float(clf.bert.total_reg())
    assert reg == pytest.approx(0.5 * 12 * (1 / (1 + math.exp(-(3.0 - 0.33 * math.log(0.1 / 1.1))))), rel=1e-5)
    net = BertClassifierWithLoss(clf)
    net.set_train(True)
    labels = Tensor(np.array([0, 1, 2, 1], np.int32))
    ce = nn.CrossEntropyLoss()
    clf.set_train(False)
    net.set_train(False)
    expected = float(ce(clf(*inputs), labels)) + reg
    assert float(net(*inputs, labels)) == pytest.approx(expected, rel=1e-5)
    assert clf.get_gate_values().shape == (3, 4)


def test_gate_values_of_uneven_model_report_missing_heads_as_zero():
    cfg = tiny_config(layer_heads=[[0, 1, 2, 3], [1, 3], []])
    gated = make_pruner().apply(random_model(cfg))
    values = gated.get_gate_values()
    expected = np.array([[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]], float)
    assert np.array_equal(values, expected)
    assert [i for i, _ in gated.gate_cells()] == [0, 1]  # no gate on a layer with no heads
    gated.set_train(True)
    out = gated(*as_tensors(random_inputs(cfg)))
    assert len(out) == 4


def test_train_and_eval_switch_in_graph_mode():
    cfg = tiny_config()
    gated = make_pruner().apply(random_model(cfg, is_training=False))
    set_log_a(gated, {0: [0.0] * 4, 1: [0.0] * 4, 2: [0.0] * 4})
    inputs = as_tensors(random_inputs(cfg))
    gated.set_train(False)
    e1 = gated(*inputs)[0].asnumpy()
    gated.set_train(True)
    t1, t2 = gated(*inputs)[0].asnumpy(), gated(*inputs)[0].asnumpy()
    gated.set_train(False)
    e2 = gated(*inputs)[0].asnumpy()
    assert np.array_equal(e1, e2)
    assert not np.array_equal(t1, t2)  # sampled gates in training
    ref = reference_outputs(gated, cfg, [a.asnumpy() for a in inputs], gates=np.full((3, 4), 0.5))[0]
    assert max_diff(e1, ref) < 1e-5


def test_apply_errors():
    cfg = tiny_config(num_hidden_layers=1)
    pruner = make_pruner()
    with pytest.raises(LRPPruneError, match="apply: expected a BertModel or a Cell containing exactly one"):
        pruner.apply(nn.Dense(3, 3))

    class TwoBerts(nn.Cell):
        def __init__(self):
            super().__init__()
            self.a = BertModel(cfg, False)
            self.b = BertModel(cfg, False)

    with pytest.raises(LRPPruneError, match="2 BertModels"):
        pruner.apply(TwoBerts())
    gated = pruner.apply(BertModel(cfg, False))
    with pytest.raises(LRPPruneError, match="already gated"):
        pruner.apply(gated)
    other = make_pruner(model_params={"config": tiny_config(num_hidden_layers=2)})
    with pytest.raises(LRPPruneError, match="model_params"):
        other.apply(BertModel(cfg, False))


def _outer(inner):
    return {"prune_type": PruningType.LRP, "arch_type": SupportedModels.BERT, "config": inner}


@pytest.mark.parametrize("config,key", [
    ({"prune_type": "SNIP", "arch_type": "BERT", "config": {"l0_penalty": 0.1}}, "prune_type"),
    ({"prune_type": PruningType.LRP, "arch_type": "GPT", "config": {"l0_penalty": 0.1}}, "arch_type"),
    ({"prune_type": PruningType.LRP, "arch_type": SupportedModels.BERT, "config": [1]}, "config"),
    ({"prune_type": PruningType.LRP, "arch_type": SupportedModels.BERT}, "missing keys"),
    ([("prune_type", "LRP")], "pruner config"),
    (_outer({}), "l0_penalty"),
    (_outer({"l0_penalty": -0.01}), "l0_penalty"),
    (_outer({"l0_penalty": "high"}), "l0_penalty"),
    (_outer({"l0_penalty": 0.1, "stretch_limits": (0.0, 1.1)}), "stretch_limits"),
    (_outer({"l0_penalty": 0.1, "stretch_limits": (-0.1, 1.0)}), "stretch_limits"),
    (_outer({"l0_penalty": 0.1, "temperature": 0}), "temperature"),
    (_outer({"l0_penalty": 0.1, "temperature": -0.33}), "temperature"),
    (_outer({"l0_penalty": 0.1, "eps": 2}), "eps"),
    (_outer({"l0_penalty": 0.1, "log_a_init": "zeros"}), "log_a_init"),
    (_outer({"l0_penalty": 0.1, "lambda": 3}), "unknown keys"),
    (_outer({"l0_penalty": 0.1, "model_params": {"cfg": 1}}), "model_params"),
    (_outer({"l0_penalty": 0.1, "model_config": {"config": 42}}), "model_config"),
])
def test_bad_configs_name_the_key(config, key):
    with pytest.raises(LRPPruneError, match=key) as info:
        HeadPruningFactory.get_pruner(config)
    assert isinstance(info.value, ValueError)


def test_unknown_key_message_lists_known_keys():
    with pytest.raises(LRPPruneError) as info:
        HeadPruningFactory.get_pruner(_outer({"l0_penalty": 0.1, "beta": 0.5}))
    assert "'beta'" in str(info.value) and "temperature" in str(info.value)


def test_optional_keys_and_synonyms_are_accepted():
    cfg = tiny_config()
    pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "bert", "config": {
        "model_config": {"config": cfg.to_dict()}, "l0_penalty": 0, "temperature": 0.5,
        "stretch_limits": [-0.2, 1.2], "eps": 1e-5, "log_a_init": "xavier_uniform"}})
    gate = pruner.config.gate
    assert (gate.temperature, gate.stretch_limits, gate.eps, gate.l0_penalty) == (0.5, (-0.2, 1.2), 1e-5, 0.0)
    gated = pruner.apply(random_model(cfg))
    log_a = ModelGates(gated).log_a()[0]
    assert np.abs(log_a).max() <= math.sqrt(6 / 5) and log_a.std() > 0


def test_parameter_groups():
    cfg = tiny_config(num_hidden_layers=1)
    gated = make_pruner().apply(BertModel(cfg, True))
    groups = parameter_groups(gated, 2e-5, log_a_lr=0.1, weight_decay=0.01)
    decay, plain, gates, order = groups
    names = {id(p): n for n, p in gated.parameters_and_names()}
    assert all(not names[id(p)].endswith(("bias", "gamma", "beta", "log_a")) for p in decay["params"])
    assert all(names[id(p)].endswith(("bias", "gamma", "beta")) for p in plain["params"])
    assert [names[id(p)] for p in gates["params"]] == ["bert_encoder.layers.0.attention.attention.gate.log_a"]
    assert gates["lr"] == 0.1 and gates["weight_decay"] == 0.0 and plain["weight_decay"] == 0.0
    assert decay["weight_decay"] == 0.01 and decay["lr"] == 2e-5
    assert len(order["order_params"]) == len(gated.trainable_params())
    opt = nn.AdamWeightDecay(groups, learning_rate=2e-5)
    assert len(opt.parameters) == len(gated.trainable_params())

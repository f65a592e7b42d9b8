"""convert(): exact physical head removal, what it writes, reloading and MindIR export."""

from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lrp_prune import (BertClassifier, BertClassifierWithLoss, BertConfig, BertModel, LRPPruneError, export_mindir,
                       load_mindir, load_pruned, prune_heads, read_heads_to_prune, save_pruned)
from lrp_prune.io.checkpoint import load_param_dict, param_dict
from lrp_prune.io.saved import FILES, safe_unpickle_heads
from lrp_prune.io.store import STORE_DIR
from mindspore import Tensor, nn

from helpers import (CLOSED, OPEN, as_tensors, make_pruner, max_diff, random_inputs, random_model, set_log_a,
                     temp_leftovers, tiny_config)
from reference import bert_forward, random_params


def expected_param_count(cfg: BertConfig) -> int:
    """Closed form, written out independently of BertConfig.num_parameters."""
    h, f, d = cfg.hidden_size, cfg.intermediate_size, cfg.head_size
    total = cfg.vocab_size * h + cfg.max_position_embeddings * h + cfg.type_vocab_size * h + 2 * h
    for n in cfg.heads_per_layer:
        total += 3 * (n * d * h + n * d) + (n * d * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    return total + h * h + h


PATTERNS = {
    "all_open": lambda rng, shape: np.full(shape, OPEN),
    "all_closed": lambda rng, shape: np.full(shape, CLOSED),
    "one_layer_closed": lambda rng, shape: np.where(np.arange(shape[0])[:, None] == 1, CLOSED, OPEN) + 0 * np.ones(shape),
    "fractional": lambda rng, shape: rng.uniform(-1.5, 1.5, shape),
    "mixed": lambda rng, shape: rng.choice([CLOSED, OPEN, 0.3, -1.0, 1.2], shape),
}


def check_convert(cfg: BertConfig, log_a: np.ndarray, seed: int = 0, tmp_path=None):
    model = random_model(cfg, seed=seed)
    raw = random_inputs(cfg, batch=2, seed=seed)
    inputs = as_tensors(raw)
    pruner = make_pruner()
    gated = pruner.apply(model)
    set_log_a(gated, log_a)
    gated.set_train(False)
    gates = gated.get_gate_values()
    gated_out = [o.asnumpy() for o in gated(*inputs)[:2]]
    original = {n: p.asnumpy().copy() for n, p in gated.parameters_and_names()}
    pruned = pruner.convert(gated, tmp_path)
    pruned.set_train(False)
    out = pruned(*inputs)
    assert len(out) == 3
    assert max_diff(out[0], gated_out[0]) < 1e-5 and max_diff(out[1], gated_out[1]) < 1e-5
    # heads kept are exactly those with a non-zero gate
    kept = [tuple(int(h) for h in np.flatnonzero(gates[i] > 0)) for i in range(cfg.num_hidden_layers)]
    assert list(pruned.config.heads_of(i) for i in range(cfg.num_hidden_layers)) == kept
    names = [n for n, _ in pruned.parameters_and_names()]
    assert len(names) == len(set(names)) and not any("log_a" in n for n in names)
    assert sum(p.size for p in pruned.get_parameters()) == expected_param_count(pruned.config)
    # the reference on the ORIGINAL weights, pruned heads zeroed, kept gates applied
    full_cfg = cfg.to_dict()
    ref_seq, ref_pooled = _reference(original, full_cfg, raw, gates)
    assert max_diff(out[0], ref_seq) < 1e-5 and max_diff(out[1], ref_pooled) < 1e-5
    return pruned, gates


def _reference(params, cfg_dict, raw, gates):
    from reference import bert_forward
    params = {n: v for n, v in params.items() if not n.endswith("log_a")}
    return bert_forward(params, cfg_dict, *raw, gates=gates)


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize("uneven", [False, True], ids=["even", "uneven"])
def test_pruned_equals_gated_eval(pattern, uneven):
    cfg = tiny_config(layer_heads=[[0, 1, 2, 3], [0, 2, 3], [1]] if uneven else None)
    rng = np.random.default_rng(len(pattern))
    log_a = PATTERNS[pattern](rng, (3, 4))
    check_convert(cfg, log_a, seed=len(pattern))


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_random_configs_and_gates(data):
    n_heads = data.draw(st.sampled_from([1, 2, 3, 4]), "heads")
    head_size = data.draw(st.sampled_from([3, 5, 8]), "head_size")
    layers = data.draw(st.integers(1, 3), "layers")
    cfg = BertConfig(vocab_size=29, hidden_size=n_heads * head_size, num_hidden_layers=layers,
                     num_attention_heads=n_heads, intermediate_size=data.draw(st.integers(3, 19), "ffn"),
                     seq_length=7, max_position_embeddings=9, type_vocab_size=2)
    choices = st.sampled_from([CLOSED, OPEN, 0.0, -2.0, 1.0, -2.39])
    log_a = np.array(data.draw(st.lists(st.lists(choices, min_size=n_heads, max_size=n_heads),
                                        min_size=layers, max_size=layers), "log_a"), float)
    check_convert(cfg, log_a, seed=data.draw(st.integers(0, 5), "seed"))


def test_all_pruned_layer_is_layernorm_of_x_plus_bias_and_no_head_is_revived():
    cfg = tiny_config()
    log_a = np.full((3, 4), OPEN)
    log_a[1] = CLOSED
    pruned, _ = check_convert(cfg, log_a)
    assert pruned.config.heads_per_layer == (4, 0, 4)
    names = {n for n, _ in pruned.parameters_and_names()}
    assert "bert_encoder.layers.1.attention.output.dense.bias" in names
    assert not any(n.startswith("bert_encoder.layers.1.attention.attention.") for n in names)


def test_save_files_reload_and_pickle(tmp_path):
    cfg = tiny_config()
    log_a = np.array([[OPEN, CLOSED, 0.4, OPEN], [CLOSED] * 4, [1.0, OPEN, CLOSED, -0.5]])
    pruned, gates = check_convert(cfg, log_a, tmp_path=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != STORE_DIR) == sorted(FILES.values())
    expected = {0: [1], 1: [0, 1, 2, 3], 2: [2]}
    assert pickle.loads((tmp_path / FILES["heads_pkl"]).read_bytes()) == expected
    assert json.loads((tmp_path / FILES["heads_json"]).read_text()) == {str(k): v for k, v in expected.items()}
    assert read_heads_to_prune(tmp_path) == expected
    summary = json.loads((tmp_path / FILES["summary"]).read_text())
    assert summary["heads_kept_per_layer"] == [3, 0, 3] and summary["heads_kept"] == 6
    assert summary["params_after"] == expected_param_count(pruned.config)
    assert summary["attention_flops_after"] < summary["attention_flops_before"]
    # the gated checkpoint holds log_a
    gated_ckpt = ms.load_checkpoint(str(tmp_path / FILES["gated"]))
    assert "bert_encoder.layers.0.attention.attention.gate.log_a" in gated_ckpt
    # reload from disk alone
    inputs = as_tensors(random_inputs(cfg))
    again = load_pruned(tmp_path)
    assert isinstance(again, BertModel) and again.config == pruned.config
    assert max_diff(again(*inputs)[0], pruned(*inputs)[0]) == 0.0
    # converting again into the same directory replaces (never appends)
    size = (tmp_path / FILES["heads_pkl"]).stat().st_size
    check_convert(cfg, log_a, tmp_path=tmp_path)
    assert (tmp_path / FILES["heads_pkl"]).stat().st_size == size


def test_mindir_round_trip(tmp_path):
    cfg = tiny_config()
    log_a = np.array([[OPEN, CLOSED, 0.4, OPEN], [CLOSED] * 4, [1.0, OPEN, CLOSED, -0.5]])
    pruned, _ = check_convert(cfg, log_a)
    path = export_mindir(pruned, tmp_path / "pruned", batch_size=2, seq_length=cfg.seq_length)
    assert path.name == "pruned.mindir" and path.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    graph = load_mindir(path)
    inputs = as_tensors(random_inputs(cfg))
    a, b = graph(*inputs), pruned(*inputs)
    assert max_diff(a[0], b[0]) < 1e-6 and max_diff(a[1], b[1]) < 1e-6


def test_prune_twice_composes():
    cfg = tiny_config()
    model = random_model(cfg, seed=9)
    raw = random_inputs(cfg)
    original = {n: p.asnumpy().copy() for n, p in model.parameters_and_names()}
    prune_heads(model, {0: [1], 2: [0, 3]})
    prune_heads(model, {0: [1, 2], 1: [3], 2: [3]})  # original indices; 0:1 and 2:3 already gone
    assert model.config.layer_heads == ((0, 3), (0, 1, 2), (1, 2))
    gates = np.ones((3, 4))
    gates[0, [1, 2]] = gates[1, 3] = gates[2, [0, 3]] = 0
    from reference import bert_forward
    ref = bert_forward(original, cfg.to_dict(), *raw, gates=gates)[0]
    assert max_diff(model(*as_tensors(raw))[0], ref) < 1e-5


def test_convert_model_with_head_then_train_a_step(tmp_path):
    cfg = tiny_config()
    clf = BertClassifier(cfg, True, pooling="mean")
    load_param_dict(clf.bert, random_params(cfg.to_dict(), 3))
    pruner = make_pruner()
    gated = pruner.apply(clf)
    set_log_a(gated.bert, np.array([[OPEN, CLOSED, 0.4, OPEN], [CLOSED] * 4, [1.0, OPEN, CLOSED, -0.5]]))
    inputs = as_tensors(random_inputs(cfg, batch=4))
    gated.set_train(False)
    gated_logits = gated(*inputs).asnumpy()
    pruned = pruner.convert(gated, tmp_path)
    assert pruned is not gated and isinstance(pruned, BertClassifier)  # the gated model stays gated
    assert gated.bert.is_gated and max_diff(gated(*inputs), gated_logits) == 0.0
    pruned.set_train(False)
    assert max_diff(pruned(*inputs), gated_logits) < 1e-5
    again = load_pruned(tmp_path)
    assert isinstance(again, BertClassifier) and again.pooling == "mean"
    assert max_diff(again(*inputs), gated_logits) < 1e-5
    net = BertClassifierWithLoss(pruned)
    step = nn.TrainOneStepCell(net, nn.Adam(net.trainable_params(), learning_rate=1e-2))
    step.set_train(True)
    labels = Tensor(np.array([0, 1, 2, 0], np.int32))
    losses = [float(step(*inputs, labels)) for _ in range(5)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_custom_head_reload_needs_a_fresh_instance(tmp_path):
    cfg = tiny_config(num_hidden_layers=2)

    class MyHead(nn.Cell):
        def __init__(self):
            super().__init__()
            self.encoder = BertModel(cfg, False)
            self.out = nn.Dense(cfg.hidden_size, 2)

        def construct(self, a, b, c):
            return self.out(self.encoder(a, b, c)[1])

    model = MyHead()
    pruner = make_pruner()
    gated = pruner.apply(model)
    set_log_a(gated.encoder, np.array([[OPEN, CLOSED, CLOSED, OPEN], [CLOSED, 0.5, OPEN, OPEN]]))
    inputs = as_tensors(random_inputs(cfg))
    gated.set_train(False)
    expected = gated(*inputs).asnumpy()
    pruner.convert(gated, tmp_path)
    with pytest.raises(LRPPruneError, match="model="):
        load_pruned(tmp_path)
    again = load_pruned(tmp_path, model=MyHead())
    assert max_diff(again(*inputs), expected) < 1e-5


def test_dtype_bias_and_compute_type_preserved():
    cfg = tiny_config(compute_type="float16")
    model = random_model(cfg)
    before = model.bert_encoder.layers[0].attention.attention.query_layer
    assert before.get_flags().get("fp16")
    prune_heads(model, {0: [0]})
    after = model.bert_encoder.layers[0].attention.attention.query_layer
    assert after.get_flags().get("fp16") and after.has_bias and after.weight.dtype == ms.float32
    assert after.weight.shape == (3 * cfg.head_size, cfg.hidden_size)
    out = model(*as_tensors(random_inputs(cfg)))[0]
    assert np.all(np.isfinite(out.asnumpy()))


def test_interrupted_save_keeps_earlier_save(tmp_path, monkeypatch):
    cfg = tiny_config()
    log_a = np.array([[OPEN, CLOSED, 0.4, OPEN], [CLOSED] * 4, [1.0, OPEN, CLOSED, -0.5]])
    check_convert(cfg, log_a, tmp_path=tmp_path)
    snapshot = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    import lrp_prune.io.saved as serialization

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(serialization.pickle, "dumps", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        check_convert(cfg, np.full((3, 4), OPEN), tmp_path=tmp_path)
    monkeypatch.undo()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in snapshot and p.name != STORE_DIR]
    assert leftovers == [] and temp_leftovers(tmp_path) == []
    # the config (written last) still describes the earlier complete save
    assert (tmp_path / FILES["config"]).read_bytes() == snapshot[FILES["config"]]
    assert (tmp_path / FILES["heads_pkl"]).read_bytes() == snapshot[FILES["heads_pkl"]]


def test_convert_errors(tmp_path):
    cfg = tiny_config(num_hidden_layers=1)
    pruner = make_pruner()
    with pytest.raises(LRPPruneError, match="ungated"):
        pruner.convert(BertModel(cfg, False))
    gated = pruner.apply(BertModel(cfg, False))
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(LRPPruneError, match="save_dir_path"):
        pruner.convert(gated, afile)
    with pytest.raises(LRPPruneError, match="gate"):
        prune_heads(gated, {0: [1]})


# ---------------------------------------------------------------- (from the old reliability tests)
def _assert_graph_mode():
    assert ms.get_context("mode") == ms.GRAPH_MODE


def test_every_head_removed_by_convert_runs_saves_reloads_and_exports(tmp_path):
    _assert_graph_mode()
    cfg = tiny_config(num_hidden_layers=2)
    model = random_model(cfg, seed=3)
    original = {n: v.copy() for n, v in param_dict(model).items()}
    raw = random_inputs(cfg, seed=3)
    inputs = as_tensors(raw)
    pruner = make_pruner()
    gated = pruner.apply(model)
    set_log_a(gated, np.full((2, 4), CLOSED))
    gated.set_train(False)
    gated_out = [o.asnumpy() for o in gated(*inputs)[:2]]
    save_dir = tmp_path / "save"
    pruned = pruner.convert(gated, save_dir)
    assert pruned.config.heads_per_layer == (0, 0) and pruned.config.total_heads == 0
    assert not any(".attention.attention." in n for n, _ in pruned.parameters_and_names())
    pruned.set_train(False)
    out = pruned(*inputs)
    assert len(out) == 3
    assert max_diff(out[0], gated_out[0]) < 1e-5 and max_diff(out[1], gated_out[1]) < 1e-5
    # every attention block is LayerNorm(x + b_O): the reference with every gate at 0
    ref_seq, ref_pooled = bert_forward(original, cfg.to_dict(), *raw, gates=np.zeros((2, 4)))
    assert max_diff(out[0], ref_seq) < 1e-5 and max_diff(out[1], ref_pooled) < 1e-5
    assert read_heads_to_prune(save_dir) == {0: [0, 1, 2, 3], 1: [0, 1, 2, 3]}
    again = load_pruned(save_dir)
    assert again.config == pruned.config
    again_out = again(*inputs)
    assert max_diff(again_out[0], out[0]) == 0.0 and max_diff(again_out[1], out[1]) == 0.0
    path = export_mindir(pruned, tmp_path / "mindir" / "all_pruned", batch_size=2, seq_length=cfg.seq_length)
    graph_out = load_mindir(path)(*inputs)
    assert max_diff(graph_out[0], out[0]) < 1e-6 and max_diff(graph_out[1], out[1]) < 1e-6
    assert temp_leftovers(save_dir) == [] and temp_leftovers(path.parent) == []
    # nothing left to gate: apply() says so, on the converted and on the reloaded model
    for zero_heads in (pruned, again):
        with pytest.raises(LRPPruneError) as info:
            make_pruner().apply(zero_heads)
        assert str(info.value).startswith("apply: expected a model with at least one head, got")
        assert "no heads" in str(info.value)
        assert not zero_heads.is_gated


def test_every_head_removed_by_prune_heads_in_a_classifier(tmp_path):
    _assert_graph_mode()
    cfg = tiny_config(num_hidden_layers=2)
    clf = BertClassifier(cfg, False, num_labels=3)
    from lrp_prune.io.checkpoint import load_param_dict

    from reference import random_params

    load_param_dict(clf.bert, random_params(cfg.to_dict(), 5))
    inputs = as_tensors(random_inputs(cfg, seed=5))
    prune_heads(clf, {0: [0, 1, 2, 3], 1: [0, 1, 2, 3]})
    assert clf.config.heads_per_layer == (0, 0)
    clf.set_train(False)
    logits = clf(*inputs).asnumpy()
    assert logits.shape == (2, 3) and np.all(np.isfinite(logits))
    save_dir = save_pruned(clf, tmp_path / "save")
    again = load_pruned(save_dir)
    assert isinstance(again, BertClassifier) and again.config == clf.config
    assert max_diff(again(*inputs), logits) == 0.0
    graph = load_mindir(export_mindir(clf, tmp_path / "clf", batch_size=2, seq_length=cfg.seq_length))
    assert max_diff(graph(*inputs), logits) < 1e-6
    with pytest.raises(LRPPruneError, match="apply: expected a model with at least one head"):
        make_pruner().apply(clf)

GATE_CHOICES = [CLOSED, OPEN, 0.0, -2.0, 1.0, -2.39, -2.4]  # -2.39 is barely open, -2.4 barely closed


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_heads=st.integers(1, 4), head_size=st.integers(2, 6), layers=st.integers(1, 3),
       ffn=st.integers(3, 19), data=st.data())
def test_property_convert_save_reload_equals_gated_eval(n_heads, head_size, layers, ffn, data):
    cfg = BertConfig(vocab_size=23, hidden_size=n_heads * head_size, num_hidden_layers=layers,
                     num_attention_heads=n_heads, intermediate_size=ffn, seq_length=6,
                     max_position_embeddings=8, type_vocab_size=2)
    log_a = np.array(data.draw(st.lists(st.lists(st.sampled_from(GATE_CHOICES), min_size=n_heads,
                                                 max_size=n_heads), min_size=layers, max_size=layers), "log_a"))
    seed = data.draw(st.integers(0, 3), "seed")
    inputs = as_tensors(random_inputs(cfg, seed=seed, pad_from=4))
    pruner = make_pruner()
    gated = pruner.apply(random_model(cfg, seed=seed))
    set_log_a(gated, log_a)
    gated.set_train(False)
    gates = gated.get_gate_values()
    gated_out = [o.asnumpy() for o in gated(*inputs)[:2]]
    with tempfile.TemporaryDirectory() as tmp:
        save_dir = Path(tmp) / "pruned"
        pruned = pruner.convert(gated, save_dir)
        again = load_pruned(save_dir)
        assert isinstance(again, BertModel) and again.config == pruned.config
        out = again(*inputs)
        assert max_diff(out[0], gated_out[0]) < 1e-5 and max_diff(out[1], gated_out[1]) < 1e-5
        heads = read_heads_to_prune(save_dir)
        from_config = {i: [h for h in range(n_heads) if h not in again.config.heads_of(i)] for i in range(layers)}
        from_gates = {i: [h for h in range(n_heads) if gates[i, h] == 0.0] for i in range(layers)}
        assert heads == from_config == from_gates
        assert safe_unpickle_heads((save_dir / FILES["heads_pkl"]).read_bytes()) == heads
        assert temp_leftovers(save_dir) == []
    del gated, pruned, again


# ---------------------------------------------------------------- convert leaves the gated model gated
class UserModel(nn.Cell):
    """A user's own model with a head, as in the original's docs."""

    def __init__(self, cfg):
        super().__init__()
        self.encoder = random_model(cfg, seed=6, is_training=True)
        self.head = nn.Dense(cfg.hidden_size, 2)
        self.notes = {"task": "sentiment"}  # ordinary Python state copies too

    def construct(self, input_ids, token_type_ids, input_mask):
        return self.head(self.encoder(input_ids, token_type_ids, input_mask)[1])


def test_the_originals_sequence_runs_as_written_on_a_users_model(tmp_path):
    cfg = tiny_config()
    pruner = make_pruner()
    model_gated = pruner.apply(UserModel(cfg))
    mask = model_gated.get_gate_values()  # the original's docs call it on what apply() returned
    assert mask.shape == (3, 4)
    set_log_a(model_gated, np.array([[OPEN, CLOSED, 0.4, OPEN], [CLOSED] * 4, [1.0, OPEN, CLOSED, -0.5]]))
    inputs = as_tensors(random_inputs(cfg))
    model_gated.set_train(False)
    before = model_gated(*inputs).asnumpy()
    prune_model = pruner.convert(model_gated)
    prune_model = pruner.convert(model_gated, str(tmp_path / "saved"))  # the second convert, to save
    first = pruner.convert(model_gated)
    assert type(prune_model) is UserModel and prune_model is not model_gated and prune_model.notes == model_gated.notes
    assert max_diff(model_gated(*inputs), before) == 0.0 and model_gated.encoder.is_gated  # unchanged, still gated
    prune_model.set_train(False)
    first.set_train(False)
    assert max_diff(prune_model(*inputs), first(*inputs)) == 0.0 and max_diff(prune_model(*inputs), before) < 1e-5
    assert prune_model.encoder.config.layer_heads == ((0, 2, 3), (), (0, 1, 3))
    again = load_pruned(tmp_path / "saved", model=UserModel(cfg))
    again.set_train(False)
    assert max_diff(again(*inputs), before) < 1e-5


def test_convert_twice_and_train_the_gated_model_further():
    cfg = tiny_config()
    clf = BertClassifier(cfg, True, num_labels=3)
    pruner = make_pruner()
    gated = pruner.apply(clf)
    first = pruner.convert(gated)
    net = BertClassifierWithLoss(gated)  # the gated model keeps training after a convert
    step = nn.TrainOneStepCell(net, nn.Adam(net.trainable_params(), learning_rate=1e-2))
    step.set_train(True)
    inputs = as_tensors(random_inputs(cfg, batch=4))
    labels = Tensor(np.array([0, 1, 2, 0], np.int32))
    losses = [float(step(*inputs, labels)) for _ in range(3)]
    assert all(np.isfinite(losses))
    second = pruner.convert(gated)
    assert first.config.total_heads == second.config.total_heads == 12 and second is not first


def test_a_cell_that_cannot_be_copied_names_the_in_place_option():
    import threading

    cfg = tiny_config(num_hidden_layers=1)
    pruner = make_pruner()
    gated = pruner.apply(UserModel(cfg))
    gated.lock = threading.Lock()  # Python cannot copy a lock
    set_log_a(gated, np.array([[OPEN, CLOSED, OPEN, OPEN]]))
    with pytest.raises(LRPPruneError, match=r"convert\(\.\.\., inplace=True\)"):
        pruner.convert(gated)
    assert gated.encoder.is_gated
    pruned = pruner.convert(gated, inplace=True)
    assert pruned is gated and not gated.encoder.is_gated and gated.encoder.config.heads_per_layer == (3,)


def test_all_heads_closed_is_a_warning_and_a_field_of_the_summary(caplog):
    cfg = tiny_config(num_hidden_layers=2)
    pruner = make_pruner()
    gated = pruner.apply(random_model(cfg))
    set_log_a(gated, np.full((2, 4), CLOSED))
    with caplog.at_level("WARNING", logger="lrp_prune.pruning.convert"):
        pruned = pruner.convert(gated)
    assert "every head was closed" in caplog.text
    assert pruned.prune_summary.heads_kept == 0 and "every head was removed" in pruned.prune_summary.warnings[0]

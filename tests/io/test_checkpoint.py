"""Tests of lrp_prune.io.checkpoint: save/load round trip, strictness, ModelZoo prefixes, atomic writes."""

from __future__ import annotations

import os

import mindspore as ms
import numpy as np
import pytest
from lrp_prune import BertClassifier, BertClassifierWithLoss, BertModel, LRPPruneError, prune_heads
from lrp_prune.io.checkpoint import (atomic_path, atomic_write_text, check_writable_dir, load_checkpoint,
                                     load_param_dict, param_dict, read_checkpoint, save_checkpoint)

from helpers import random_model, tiny_config
from reference import expected_param_names, random_params

Q0 = "bert_encoder.layers.0.attention.attention.query_layer.weight"
O1B = "bert_encoder.layers.1.attention.output.dense.bias"


@pytest.fixture(scope="module")
def cfg():
    return tiny_config(num_hidden_layers=2)


@pytest.fixture()
def saved(cfg, tmp_path):
    model = random_model(cfg, seed=11)
    path = tmp_path / "model.ckpt"
    save_checkpoint(model, path)
    return path, param_dict(model)


def write_raw(path, values: dict) -> None:
    """A checkpoint written with MindSpore directly, under exactly these names."""
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(np.asarray(v))} for k, v in values.items()], str(path))


def assert_params_equal(model, values: dict, prefix: str = "") -> None:
    for name, param in model.parameters_and_names():
        np.testing.assert_array_equal(param.asnumpy(), values[prefix + name], err_msg=name)


# ---------------------------------------------------------------------------- round trip
def test_round_trip(cfg, saved):
    path, values = saved
    fresh = BertModel(cfg, False)
    assert not np.array_equal(fresh.bert_embedding_lookup.embedding_table.asnumpy(),
                              values["bert_embedding_lookup.embedding_table"])
    report = load_checkpoint(path, fresh)
    names = expected_param_names(cfg.num_hidden_layers)
    assert sorted(report.loaded) == sorted(names)
    assert report.missing == [] and report.unexpected == []
    assert_params_equal(fresh, values)


def test_names_in_file_are_full_modelzoo_names(cfg, saved):
    path, values = saved
    stored = read_checkpoint(path)
    assert set(stored) == set(expected_param_names(cfg.num_hidden_layers))
    for name, value in stored.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, values[name])


def test_names_in_file_after_pruning(cfg, tmp_path):
    model = prune_heads(random_model(cfg, seed=1), {0: [1], 1: [0, 1, 2, 3]})
    path = tmp_path / "pruned.ckpt"
    save_checkpoint(model, path)
    stored = read_checkpoint(path)
    assert stored[Q0].shape == (24, 32)
    assert "bert_encoder.layers.1.attention.attention.query_layer.weight" not in stored
    assert O1B in stored
    assert set(stored) < set(expected_param_names(cfg.num_hidden_layers))
    # loads strictly into a model built from the pruned config
    fresh = BertModel(model.config, False)
    load_checkpoint(path, fresh)
    assert_params_equal(fresh, stored)
    # ... and not into an unpruned one: shape mismatch named
    with pytest.raises(LRPPruneError) as info:
        load_checkpoint(path, BertModel(cfg, False), strict=False)
    assert Q0 in str(info.value) and "(24, 32)" in str(info.value)


def test_save_overwrites_and_leaves_no_temp(cfg, tmp_path):
    path = tmp_path / "m.ckpt"
    save_checkpoint(random_model(cfg, seed=1), path)
    second = random_model(cfg, seed=2)
    save_checkpoint(second, path)
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt"]
    np.testing.assert_array_equal(read_checkpoint(path)[Q0], param_dict(second)[Q0])


def test_save_into_new_directory_and_onto_file_parent(cfg, tmp_path):
    model = BertModel(cfg, False)
    save_checkpoint(model, tmp_path / "a" / "b" / "m.ckpt")
    assert (tmp_path / "a" / "b" / "m.ckpt").is_file()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LRPPruneError, match="file"):
        save_checkpoint(model, blocker / "m.ckpt")


# ---------------------------------------------------------------------------- strictness
def test_wrong_shape_names_parameter(cfg, saved, tmp_path):
    _, values = saved
    bad = dict(values)
    bad[O1B] = np.zeros(31, np.float32)
    path = tmp_path / "bad.ckpt"
    write_raw(path, bad)
    for strict in (True, False):
        model = BertModel(cfg, False)
        before = param_dict(model)
        with pytest.raises(LRPPruneError) as info:
            load_checkpoint(path, model, strict=strict)
        msg = str(info.value)
        assert O1B in msg and "(32,)" in msg and "(31,)" in msg and "bad.ckpt" in msg
        # nothing was half-loaded
        assert_params_equal(model, before)


def test_missing_strict_and_tolerated(cfg, saved, tmp_path):
    _, values = saved
    partial = {k: v for k, v in values.items() if k not in (Q0, "dense.bias")}
    path = tmp_path / "partial.ckpt"
    write_raw(path, partial)
    model = BertModel(cfg, False)
    with pytest.raises(LRPPruneError) as info:
        load_checkpoint(path, model)
    assert "missing" in str(info.value) and Q0 in str(info.value) and "dense.bias" in str(info.value)
    kept = model.bert_encoder.layers[0].attention.attention.query_layer.weight.asnumpy().copy()
    report = load_checkpoint(path, model, strict=False)
    assert report.missing == sorted([Q0, "dense.bias"])
    assert report.unexpected == []
    assert len(report.loaded) == len(values) - 2
    np.testing.assert_array_equal(model.bert_encoder.layers[0].attention.attention.query_layer.weight.asnumpy(),
                                  kept)  # kept its own value
    np.testing.assert_array_equal(model.dense.weight.asnumpy(), values["dense.weight"])


def test_unexpected_strict_and_tolerated(cfg, saved, tmp_path):
    _, values = saved
    extra = dict(values)
    extra["cls.predictions.bias"] = np.zeros(53, np.float32)
    extra["bert_encoder.layers.7.intermediate.bias"] = np.zeros(37, np.float32)
    path = tmp_path / "extra.ckpt"
    write_raw(path, extra)
    with pytest.raises(LRPPruneError) as info:
        load_checkpoint(path, BertModel(cfg, False))
    msg = str(info.value)
    assert "unexpected" in msg and "cls.predictions.bias" in msg and "layers.7.intermediate.bias" in msg
    model = BertModel(cfg, False)
    report = load_checkpoint(path, model, strict=False)
    assert report.unexpected == sorted(["cls.predictions.bias", "bert_encoder.layers.7.intermediate.bias"])
    assert report.missing == []
    assert_params_equal(model, values)


def test_load_param_dict_message_names_source(cfg):
    values = random_params(cfg.to_dict())
    del values[Q0]
    with pytest.raises(LRPPruneError, match="my-weights"):
        load_param_dict(BertModel(cfg, False), values, source="my-weights")


# ---------------------------------------------------------------------------- ModelZoo prefixes
@pytest.fixture()
def finetuned(cfg, tmp_path):
    """A ModelZoo BertCLS-style checkpoint saved by MindSpore itself (Parameter names)."""
    net = BertClassifierWithLoss(BertClassifier(cfg, False, num_labels=3))
    values = random_params(cfg.to_dict(), seed=5)
    load_param_dict(net.bert.bert, values)
    net.bert.dense_1.weight.set_data(ms.Tensor(np.full((3, 32), 0.25, np.float32)))
    path = tmp_path / "finetune.ckpt"
    ms.save_checkpoint(net, str(path))
    return path, values


def test_finetune_checkpoint_names(cfg, finetuned):
    path, _ = finetuned
    names = set(read_checkpoint(path))
    assert names == {"bert.bert." + n for n in expected_param_names(cfg.num_hidden_layers)} | \
        {"bert.dense_1.weight", "bert.dense_1.bias"}


def test_finetune_checkpoint_into_bare_model(cfg, finetuned):
    path, values = finetuned
    with pytest.raises(LRPPruneError, match="dense_1"):
        load_checkpoint(path, BertModel(cfg, False))
    model = BertModel(cfg, False)
    report = load_checkpoint(path, model, strict=False)
    assert report.unexpected == ["bert.dense_1.bias", "bert.dense_1.weight"]
    assert report.missing == []
    assert sorted(report.loaded) == sorted(expected_param_names(cfg.num_hidden_layers))
    assert_params_equal(model, values)


def test_finetune_checkpoint_into_classifier(cfg, finetuned):
    path, values = finetuned
    clf = BertClassifier(cfg, False, num_labels=3)
    report = load_checkpoint(path, clf)
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(values) + 2
    assert_params_equal(clf.bert, values)
    np.testing.assert_array_equal(clf.dense_1.weight.asnumpy(), np.full((3, 32), 0.25, np.float32))


def test_bare_checkpoint_into_classifier_with_loss(cfg, saved):
    path, values = saved
    net = BertClassifierWithLoss(BertClassifier(cfg, False))
    report = load_checkpoint(path, net, strict=False)
    assert report.missing == ["bert.dense_1.bias", "bert.dense_1.weight"]
    assert_params_equal(net.bert.bert, values)


# ---------------------------------------------------------------------------- unreadable files
def test_corrupt_file(tmp_path):
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(LRPPruneError) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [0.5, 0.05, 0.0])
def test_truncated_file(saved, tmp_path, keep):
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(LRPPruneError) as info:
        read_checkpoint(cut)
    assert str(cut) in str(info.value)


def test_nonexistent_path(cfg, tmp_path):
    path = tmp_path / "nowhere" / "m.ckpt"
    with pytest.raises(LRPPruneError) as info:
        load_checkpoint(path, BertModel(cfg, False))
    assert str(path) in str(info.value)
    with pytest.raises(LRPPruneError, match="existing file"):
        read_checkpoint(tmp_path)  # a directory is not a checkpoint


# ---------------------------------------------------------------------------- atomic writes
def test_atomic_path_success_replaces(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp != final
        tmp.write_text("new")
        assert final.read_text() == "old"  # not visible before the block ends
    assert final.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_failure_leaves_earlier_file(tmp_path, error):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(error):
        with atomic_path(final) as tmp:
            tmp.write_text("half-written")
            raise error("boom")
    assert final.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_path_failure_without_earlier_file(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "new.bin") as tmp:
            tmp.write_bytes(b"x")
            raise ValueError
    assert os.listdir(tmp_path) == []


def test_atomic_write_text(tmp_path):
    atomic_write_text(tmp_path / "a.json", "{\"é\": 1}")
    atomic_write_text(tmp_path / "a.json", "[]")
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == "[]"
    assert os.listdir(tmp_path) == ["a.json"]


def test_check_writable_dir(tmp_path):
    new = tmp_path / "x" / "y"
    assert check_writable_dir(new) == new and new.is_dir()
    assert check_writable_dir(new) == new  # existing directory is fine
    file = tmp_path / "plain.txt"
    file.write_text("x")
    with pytest.raises(LRPPruneError) as info:
        check_writable_dir(file, "save_dir_path")
    msg = str(info.value)
    assert msg.startswith("save_dir_path:") and str(file) in msg
    with pytest.raises(LRPPruneError, match="^out_dir:"):
        check_writable_dir(file / "sub", "out_dir")


def test_optimizer_state_in_a_train_cell_checkpoint_is_ignored(tmp_path):
    """ModelZoo fine-tuning checkpoints are saved from a train cell: moments and steps sit beside the weights."""
    import mindspore as ms
    from lrp_prune import BertClassifier, BertClassifierWithLoss, load_checkpoint
    from lrp_prune.training import TrainStep
    from mindspore import nn

    cfg = tiny_config(num_hidden_layers=1)
    net = BertClassifierWithLoss(BertClassifier(cfg, False))
    step = TrainStep(net, nn.AdamWeightDecay(net.trainable_params(), learning_rate=1e-3))
    path = tmp_path / "train_cell.ckpt"
    ms.save_checkpoint(step, str(path))
    names = set(ms.load_checkpoint(str(path)))
    assert any(n.startswith(("moment1.", "adam_m.")) for n in names) and "global_step" in names
    report = load_checkpoint(path, BertClassifier(cfg, False))  # strict, yet no error
    assert report.unexpected == [] and report.missing == []

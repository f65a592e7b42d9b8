"""BertModel against the independent numpy reference, its parameter tree, and the classifier."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from helpers import as_tensors, max_diff, random_inputs, random_model, reference_outputs, tiny_config
from lrp_prune import BertClassifier, BertClassifierWithLoss, BertModel, LRPPruneError
from reference import expected_param_names

LAYOUTS = {
    "full": None,
    "uneven": [[0, 1, 2, 3], [1, 3], [2]],
    "zero_head_layer": [[0, 2], [], [0, 1, 2, 3]],
}


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_matches_numpy_reference(mode, layout):
    ms.set_context(mode=mode)
    cfg = tiny_config(layer_heads=LAYOUTS[layout])
    model = random_model(cfg, seed=3)
    inputs = random_inputs(cfg, batch=3)
    seq, pooled, table = model(*as_tensors(inputs))
    ref_seq, ref_pooled = reference_outputs(model, cfg, inputs)
    assert max_diff(seq, ref_seq) < 1e-5
    assert max_diff(pooled, ref_pooled) < 1e-5
    assert table.shape == (cfg.vocab_size, cfg.hidden_size)


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_activation_follows_config(act):
    cfg = tiny_config(hidden_act=act, num_hidden_layers=1)
    model = random_model(cfg, seed=1)
    inputs = random_inputs(cfg)
    seq, _, _ = model(*as_tensors(inputs))
    assert max_diff(seq, reference_outputs(model, cfg, inputs)[0]) < 1e-5


def test_parameter_tree_is_modelzoo():
    cfg = tiny_config(num_hidden_layers=2)
    names = [name for name, _ in BertModel(cfg, False).parameters_and_names()]
    assert sorted(names) == sorted(expected_param_names(2))
    assert len(names) == len(set(names))


def test_zero_head_layer_has_only_output_bias():
    cfg = tiny_config(layer_heads=[[0], [], [1]])
    names = {name for name, _ in BertModel(cfg, False).parameters_and_names()}
    assert "bert_encoder.layers.1.attention.output.dense.bias" in names
    assert not any(n.startswith("bert_encoder.layers.1.attention.attention.") for n in names)
    assert "bert_encoder.layers.1.attention.output.dense.weight" not in names


def test_padding_does_not_change_unpadded_tokens():
    cfg = tiny_config()
    model = random_model(cfg)
    ids, types, mask = random_inputs(cfg, batch=1, pad_from=5)
    out1 = model(*as_tensors((ids, types, mask)))[0].asnumpy()
    ids2 = ids.copy()
    ids2[0, 5:] = (ids2[0, 5:] + 7) % cfg.vocab_size
    out2 = model(*as_tensors((ids2, types, mask)))[0].asnumpy()
    np.testing.assert_allclose(out1[0, :5], out2[0, :5], atol=1e-6)


def test_dropout_uses_drop_probability():
    """is_training with drop prob 0.1 keeps most of the signal; drop prob semantics, not keep prob."""
    cfg = tiny_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    train_model = random_model(cfg, seed=2, is_training=True)
    train_model.set_train(True)
    inputs = random_inputs(cfg, batch=4, pad_from=None)
    ref, _ = reference_outputs(train_model, cfg, inputs)
    out = train_model(*as_tensors(inputs))[0].asnumpy()
    corr = np.corrcoef(out.ravel(), ref.ravel())[0, 1]
    assert 0.8 < corr < 0.99999  # noisy (dropout is on) but close (only 10% dropped)
    train_model.set_train(False)
    assert max_diff(train_model(*as_tensors(inputs))[0], ref) < 1e-5


def test_eval_model_has_no_dropout():
    cfg = tiny_config(hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
    model = random_model(cfg, is_training=False)
    model.set_train(True)  # even in train mode, is_training=False means no dropout (ModelZoo)
    inputs = random_inputs(cfg)
    assert max_diff(model(*as_tensors(inputs))[0], reference_outputs(model, cfg, inputs)[0]) < 1e-5


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
def test_classifier_pooling(pooling):
    cfg = tiny_config()
    clf = BertClassifier(cfg, False, num_labels=3, pooling=pooling)
    from lrp_prune.checkpoint import load_param_dict
    from reference import random_params

    load_param_dict(clf.bert, random_params(cfg.to_dict(), 5))
    inputs = random_inputs(cfg, batch=3)
    logits = clf(*as_tensors(inputs)).asnumpy()
    seq, pooled = reference_outputs(clf.bert, cfg, inputs)
    if pooling == "pooler":
        features = pooled
    elif pooling == "cls":
        features = seq[:, 0]
    else:
        m = inputs[2][..., None].astype(np.float64)
        features = (seq * m).sum(1) / m.sum(1)
    w, b = clf.dense_1.weight.asnumpy(), clf.dense_1.bias.asnumpy()
    np.testing.assert_allclose(logits, features @ w.T + b, atol=1e-5)


def test_classifier_names_and_loss():
    cfg = tiny_config(num_hidden_layers=1)
    net = BertClassifierWithLoss(BertClassifier(cfg, True, num_labels=3))
    names = [n for n, _ in net.parameters_and_names()]
    assert "bert.bert.bert_encoder.layers.0.attention.attention.query_layer.weight" in names
    assert "bert.dense_1.weight" in names and "bert.bert.dense.weight" in names
    ids, types, mask = random_inputs(cfg, batch=4)
    loss = net(*as_tensors((ids, types, mask)), ms.Tensor(np.array([0, 1, 2, 1], np.int32)))
    assert loss.shape == () and 0.5 < float(loss) < 3.0  # ~ln 3 for a fresh classifier


def test_bad_arguments():
    cfg = tiny_config()
    with pytest.raises(LRPPruneError, match="config"):
        BertModel({"hidden_size": 32}, False)
    with pytest.raises(LRPPruneError, match="pooling"):
        BertClassifier(cfg, False, pooling="max")
    with pytest.raises(LRPPruneError, match="num_labels"):
        BertClassifier(cfg, False, num_labels=1)

"""Retraining-free pruning: importance against finite differences, the mask search, mask tuning, convert."""

from __future__ import annotations

import numpy as np
import pytest

from lrp_prune import BertClassifier, BertConfig, HeadPruningFactory, LRPPruneError, ModelGates
from lrp_prune.data.batching import batches
from lrp_prune.network.gates import HEADS
from lrp_prune.network.mask_gate import MaskGate
from lrp_prune.pruning.fisher import FisherConfig, FisherHeadPruner, rearrange_layer, search_mask, tune_scales
from lrp_prune.pruning.importance import HeadImportance, head_importance
from lrp_prune.training.evaluate import predict_logits

CFG = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
           seq_length=8)


def _data(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 9, n)
    mask = (np.arange(8)[None] < lengths[:, None]).astype(np.int32)
    return {"input_ids": (rng.integers(1, 60, (n, 8)) * mask).astype(np.int32),
            "token_type_ids": (np.arange(8)[None] >= lengths[:, None] // 2).astype(np.int32) * mask,
            "input_mask": mask, "label_ids": rng.integers(0, 3, n).astype(np.int32)}


def _classifier(seed: int = 0, **overrides) -> BertClassifier:
    import mindspore as ms

    ms.set_seed(seed)
    clf = BertClassifier(BertConfig(**{**CFG, **overrides}), is_training=False, num_labels=3)
    return clf


def _per_example_loss(clf, data, masks: np.ndarray) -> np.ndarray:
    """CE of each example with head mask ``masks[i]`` ([layers, heads]) applied, one example at a time."""
    gates = ModelGates(clf)
    losses = []
    for i in range(len(data["label_ids"])):
        for layer, host in gates.hosts(HEADS):
            host.gate.set_mask(np.ones(4))
            host.gate.set_scale(masks[i, layer])
        row = {k: v[i:i + 1] for k, v in data.items()}
        logits = predict_logits(clf, [row])[0].astype(np.float64)[0]
        log_p = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        losses.append(-log_p[data["label_ids"][i]])
    return np.array(losses)


def test_importance_equals_finite_differences():
    clf = _classifier()
    data = _data(6)
    imp = head_importance(clf, batches(data, 4, drop_remainder=False, pad_last=True))
    FisherHeadPruner(FisherConfig()).apply(clf)
    eps = 1e-2
    grads = np.zeros((6, 2, 4))
    for layer in range(2):
        for head in range(4):
            up, down = np.ones((6, 2, 4)), np.ones((6, 2, 4))
            up[:, layer, head] += eps
            down[:, layer, head] -= eps
            grads[:, layer, head] = (_per_example_loss(clf, data, up) - _per_example_loss(clf, data, down)) / (2 * eps)
    np.testing.assert_allclose(imp.fisher, (grads ** 2).sum(0), rtol=2e-2, atol=1e-6)
    np.testing.assert_allclose(imp.michel, np.abs(grads).mean(0), rtol=2e-2, atol=1e-6)
    blocks = np.einsum("ilh,ilk->lhk", grads, grads)
    np.testing.assert_allclose(imp.fisher_blocks, blocks, rtol=2e-2, atol=1e-6)
    assert imp.examples == 6  # the padding rows of the second batch count for nothing


def test_importance_leaves_the_model_as_it_was():
    clf = _classifier()
    data = _data(8)
    FisherHeadPruner(FisherConfig()).apply(clf)
    ModelGates(clf).close([(0, 1)])
    before = predict_logits(clf, batches(data, 4))[0]
    imp = head_importance(clf, batches(data, 4), labels="predictions")
    assert imp.labels == "predictions" and np.all(np.isfinite(imp.fisher))
    assert isinstance(ModelGates(clf).hosts()[0][1].gate, MaskGate)
    np.testing.assert_array_equal(predict_logits(clf, batches(data, 4))[0], before)


def test_importance_rejects_uneven_batches_and_missing_labels():
    clf = _classifier()
    data = _data(6)
    with pytest.raises(LRPPruneError, match="batches"):
        head_importance(clf, batches(data, 4, drop_remainder=False))  # 4 rows, then 2
    with pytest.raises(LRPPruneError, match="label_ids"):
        head_importance(clf, [{k: v for k, v in data.items() if k != "label_ids"}])


def test_search_keeps_the_top_heads_and_rearranges_within_layers():
    fisher = np.array([[4.0, 1.0, 3.0, 0.1], [2.0, 5.0, 0.5, np.nan]])
    blocks = np.stack([np.diag(np.nan_to_num(r)) for r in fisher])
    imp = HeadImportance(fisher, fisher, blocks, 10, "labels", 0.0)
    assert search_mask(imp, 3, rearrange=False).astype(int).tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]
    # two heads that only matter together: removing both costs more than the diagonal says
    block = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.55], [0.0, 0.55, 0.6]])
    assert rearrange_layer(block, 1).tolist() == [False, True, False]  # the diagonal alone keeps head 0
    assert rearrange_layer(block, 2).tolist() == [True, True, False]  # one removed: only the diagonal counts
    with pytest.raises(LRPPruneError, match="target_heads"):
        search_mask(imp, 8)  # only 7 heads exist


def test_tuning_with_the_full_mask_is_the_identity():
    clf = FisherHeadPruner(FisherConfig()).apply(_classifier())
    scales = tune_scales(clf, batches(_data(8), 4), damping=0.0, scale_clip=(-10.0, 10.0))
    np.testing.assert_allclose(scales, np.ones((2, 4)), atol=1e-4)


def test_tuning_recovers_known_scales():
    """Head 3 of layer 0 is a copy of head 1 whose W_O columns are 0.7 x head 1's, and head 2 a copy of
    head 0 at -0.4: with heads 2 and 3 removed the exact fit is s = (1 - 0.4, 1 + 0.7)."""
    import mindspore as ms

    clf = _classifier(seed=3, num_hidden_layers=1)
    attention = clf.bert.bert_encoder.layers[0].attention
    for name in ("query_layer", "key_layer", "value_layer"):
        dense = getattr(attention.attention, name)
        w, b = dense.weight.asnumpy().reshape(4, 8, 32), dense.bias.asnumpy().reshape(4, 8)
        w[3], b[3], w[2], b[2] = w[1], b[1], w[0], b[0]
        dense.weight.set_data(ms.Tensor(w.reshape(32, 32)))
        dense.bias.set_data(ms.Tensor(b.reshape(32)))
    out = attention.output.dense
    w_o = out.weight.asnumpy().reshape(32, 4, 8)
    w_o[:, 3], w_o[:, 2] = 0.7 * w_o[:, 1], -0.4 * w_o[:, 0]
    out.weight.set_data(ms.Tensor(w_o.reshape(32, 32)))
    FisherHeadPruner(FisherConfig()).apply(clf)
    ModelGates(clf).close([(0, 2), (0, 3)])
    scales = tune_scales(clf, batches(_data(12), 4), damping=0.0, scale_clip=(-10.0, 10.0))
    np.testing.assert_allclose(scales[0, :2], [0.6, 1.7], atol=1e-3)
    assert np.isnan(scales[0, 2:]).all()
    # damping pulls towards 1, clipping bounds
    damped = tune_scales(clf, batches(_data(12), 4), damping=10.0, scale_clip=(-10.0, 10.0))
    assert np.all(np.abs(damped[0, :2] - 1) < np.abs(scales[0, :2] - 1))
    clipped = tune_scales(clf, batches(_data(12), 4), damping=0.0, scale_clip=(0.0, 1.5))
    np.testing.assert_allclose(clipped[0, :2], [0.6, 1.5], atol=1e-3)


def test_pruned_equals_masked_model_with_tuned_scales():
    pruner = HeadPruningFactory.get_pruner({"prune_type": "FISHER", "arch_type": "BERT",
                                            "config": {"target_heads": 5, "scale_clip": [-3.0, 3.0]}})
    assert isinstance(pruner, FisherHeadPruner)
    clf = pruner.apply(_classifier(seed=1))
    data = _data(16, seed=2)
    result = pruner.prune(clf, lambda: batches(data, 8, drop_remainder=False, pad_last=True))
    assert int(result.mask.sum()) == 5
    kept_scales = result.scales[result.mask]
    assert np.all(np.isfinite(kept_scales)) and np.isnan(result.scales[~result.mask]).all()
    assert not np.allclose(kept_scales, 1.0)  # tuning moved them
    np.testing.assert_array_equal(ModelGates(clf).kept(), result.mask)
    assert pruner.heads_to_prune(clf) == {i: [int(h) for h in np.flatnonzero(~result.mask[i])] for i in range(2)}
    pruned = pruner.convert(clf)
    assert pruned.prune_summary.heads_kept == 5
    masked = predict_logits(clf, batches(data, 8))[0]
    np.testing.assert_allclose(predict_logits(pruned, batches(data, 8))[0], masked, atol=1e-5)


def test_kept_comes_from_the_mask_not_the_scale():
    clf = FisherHeadPruner(FisherConfig()).apply(_classifier())
    gate = ModelGates(clf).hosts()[0][1].gate
    gate.set_scale([0.0, -0.5, 1.0, 1.0])
    gate.close([3])
    gates = ModelGates(clf)
    assert gates.kept()[0].tolist() == [True, True, True, False]
    assert gates.to_prune() == {0: [3], 1: []}
    pruned = FisherHeadPruner(FisherConfig()).convert(clf)
    assert pruned.config.heads_per_layer == (3, 4)


def test_config_errors_name_the_field():
    for bad, field in (({"importance": "magic"}, "importance"), ({"damping": -1}, "damping"),
                       ({"scale_clip": [2, 1]}, "scale_clip"), ({"target_heads": 0}, "target_heads"),
                       ({"l0_penalty": 0.1}, "unknown keys")):
        with pytest.raises(LRPPruneError, match=field):
            HeadPruningFactory.get_pruner({"prune_type": "FISHER", "arch_type": "BERT", "config": bad})
    clf = FisherHeadPruner(FisherConfig()).apply(_classifier())
    with pytest.raises(LRPPruneError, match="target_heads"):
        FisherHeadPruner(FisherConfig()).prune(clf, lambda: batches(_data(4), 4))
    with pytest.raises(LRPPruneError, match="mask gates"):
        FisherHeadPruner(FisherConfig()).convert(_classifier())


def test_lrp_starts_from_an_importance_grid():
    from lrp_prune.pruning.importance import importance_log_a

    clf = _classifier()
    imp = head_importance(clf, batches(_data(8), 4))
    grid = importance_log_a(imp)
    assert grid.shape == (2, 4) and grid.min() >= 1.0 and grid.max() <= 5.0
    # the order of importance is the order of log_a
    assert np.array_equal(np.argsort(grid, axis=None), np.argsort(imp.fisher, axis=None))
    pruner = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                            "config": {"l0_penalty": 0.01, "log_a_init": grid}})
    gated = pruner.apply(clf)
    np.testing.assert_allclose(ModelGates(gated).log_a(), grid, atol=1e-6)
    with pytest.raises(LRPPruneError, match="log_a_init"):
        HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                       "config": {"l0_penalty": 0.01, "log_a_init": np.ones((3, 4))}}
                                      ).apply(_classifier())
    with pytest.raises(LRPPruneError, match="log_a_init"):
        HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                       "config": {"l0_penalty": 0.01, "log_a_init": [[1.0, float("nan")]]}})

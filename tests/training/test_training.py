"""TrainStep and DynamicLossScale: loss scaling that works on CPU, overflow skipping."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from lrp_prune import BertClassifier, BertClassifierWithLoss, LRPPruneError
from lrp_prune.training import DynamicLossScale, TrainStep, evaluate_accuracy, measure_latency, predict_logits
from mindspore import Tensor, nn

from helpers import random_inputs, tiny_config


def _step_and_batch():
    cfg = tiny_config(num_hidden_layers=1)
    net = BertClassifierWithLoss(BertClassifier(cfg, True))
    step = TrainStep(net, nn.Adam(net.trainable_params(), learning_rate=1e-2))
    step.set_train(True)
    ids, types, mask = random_inputs(cfg, batch=4)
    batch = [Tensor(ids), Tensor(types), Tensor(mask), Tensor(np.array([0, 1, 2, 0], np.int32))]
    return net, step, batch


def test_injected_overflow_skips_the_update_and_lowers_the_scale():
    net, step, batch = _step_and_batch()
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    scale = DynamicLossScale(init_scale=2.0 ** 16, window=3)
    # the injected overflow: a scale of 2**128 overflows float32, so every scaled gradient is inf/nan
    loss, finite = step(*batch, Tensor(np.float32(np.finfo(np.float32).max) * np.float32(2), ms.float32))
    assert not bool(finite.asnumpy()) and np.isfinite(float(loss))
    scale.update(bool(finite.asnumpy()))
    assert scale.scale == 2.0 ** 15 and scale.skipped == 1
    assert all(np.array_equal(before[p.name], p.asnumpy()) for p in net.trainable_params())
    # a normal scale then updates, and the result does not depend on the scale (exact unscaling)
    loss, finite = step(*batch, scale.tensor())
    assert bool(finite.asnumpy())
    scale.update(True)
    assert any(not np.array_equal(before[p.name], p.asnumpy()) for p in net.trainable_params())


def test_scaled_and_unscaled_steps_agree():
    results = []
    for value in (1.0, 1024.0):
        ms.set_seed(0)
        net, step, batch = _step_and_batch()
        # same init for both runs
        for p in net.trainable_params():
            rng = np.random.default_rng(abs(hash(p.name)) % 2**32)
            p.set_data(Tensor(rng.normal(0, 0.02, p.shape).astype(np.float32)))
        step(*batch, Tensor(value, ms.float32))
        results.append({p.name: p.asnumpy() for p in net.trainable_params()})
    for name in results[0]:
        np.testing.assert_allclose(results[0][name], results[1][name], atol=1e-6)


def test_scale_policy():
    s = DynamicLossScale(init_scale=8.0, factor=2.0, window=2, min_scale=1.0)
    for ok in (True, True, False, False, False, False, True):
        s.update(ok)
    assert s.scale == 1.0 and s.skipped == 4
    off = DynamicLossScale(enabled=False)
    off.update(False)
    assert off.scale == 1.0 and off.skipped == 1
    with pytest.raises(LRPPruneError, match="loss_scale"):
        DynamicLossScale(init_scale=0.5)


def test_evaluate_drops_padding_rows_and_latency_runs():
    cfg = tiny_config(num_hidden_layers=1)
    clf = BertClassifier(cfg, False)
    ids, types, mask = random_inputs(cfg, batch=4)
    batch = {"input_ids": ids, "token_type_ids": types, "input_mask": mask,
             "label_ids": np.array([0, 1, 2, 0], np.int32), "valid": np.array([True, True, True, False])}
    accuracy, preds = evaluate_accuracy(clf, [batch])
    assert len(preds) == 3 and 0.0 <= accuracy <= 1.0
    times = measure_latency(clf, 2, cfg.seq_length, repeats=2)
    assert len(times) == 2 and all(t > 0 for t in times)


def test_gate_gradients_do_not_throttle_the_weights_clip():
    """A huge log_a gradient must not shrink the weights' update through a joint global-norm clip."""
    from lrp_prune import HeadPruningFactory

    cfg = tiny_config(num_hidden_layers=1)
    results = {}
    for penalty in (0.0, 1e6):
        ms.set_seed(0)
        clf = BertClassifier(cfg, False)
        for p in clf.trainable_params():
            rng = np.random.default_rng(abs(hash(p.name)) % 2**32)
            p.set_data(Tensor(rng.normal(0, 0.02, p.shape).astype(np.float32)))
        gated = HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                               "config": {"l0_penalty": penalty}}).apply(clf)
        net = BertClassifierWithLoss(gated)
        step = TrainStep(net, nn.SGD(net.trainable_params(), learning_rate=0.1), clip_norm=1.0)
        step.set_train(False)  # eval gates: the task gradient is deterministic
        ids, types, mask = random_inputs(cfg, batch=4)
        before = gated.dense_1.weight.asnumpy().copy()
        step(Tensor(ids), Tensor(types), Tensor(mask), Tensor(np.array([0, 1, 2, 0], np.int32)),
             Tensor(1.0, ms.float32))
        results[penalty] = gated.dense_1.weight.asnumpy() - before
    assert np.abs(results[0.0]).max() > 0
    np.testing.assert_allclose(results[1e6], results[0.0], rtol=1e-4, atol=1e-9)


# ----------------------------------------------------------------------------- AdamW with bias correction
def _correction(t, beta1=0.9, beta2=0.999):
    """Adam's bias correction as a rate factor at 1-based step ``t``."""
    return (1 - beta2 ** t) ** 0.5 / (1 - beta1 ** t)


def _numpy_adam(w, grads, rates, beta1=0.9, beta2=0.999, eps=1e-6):
    """Textbook Adam (bias-corrected moments), no weight decay."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, (g, lr) in enumerate(zip(grads, rates), start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return w


def test_adamw_takes_adams_bias_corrected_steps():
    from lrp_prune.training import adamw

    rng = np.random.default_rng(0)
    w0, a0 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    w, a = ms.Parameter(Tensor(w0), name="w"), ms.Parameter(Tensor(a0), name="log_a")
    rates = [1e-3, 2e-3, 3e-3, 2e-3, 1e-3]  # a warm-up and a decay, like linear_schedule
    grads_w = [rng.normal(size=w0.shape).astype(np.float32) for _ in rates]
    grads_a = [rng.normal(size=a0.shape).astype(np.float32) for _ in rates]
    opt = adamw([{"params": [w], "weight_decay": 0.0}, {"params": [a], "lr": 0.1, "weight_decay": 0.0}], rates)
    for gw, ga in zip(grads_w, grads_a):
        opt((Tensor(gw), Tensor(ga)))
    # the first step moves each weight by ~lr (uncorrected AdamWeightDecay would move it ~3.2 lr)
    np.testing.assert_allclose(w.asnumpy(), _numpy_adam(w0, grads_w, rates), rtol=0, atol=2e-6)
    # eps acts as eps*sqrt(1 - beta2**t) here: a difference of < 0.1% of one 0.1 step
    np.testing.assert_allclose(a.asnumpy(), _numpy_adam(a0, grads_a, [0.1] * 5), rtol=0, atol=1e-4)


def test_adamw_weight_decay_is_decoupled():
    """With no gradient a weight shrinks by lr * decay * w, not by ~lr as Adam's L2 term would make it."""
    from lrp_prune.training import adamw

    w0 = np.full((4,), 0.05, np.float32)
    w = ms.Parameter(Tensor(w0), name="w")
    opt = adamw([{"params": [w], "weight_decay": 0.01}], [1e-3] * 3)
    for _ in range(3):
        opt((Tensor(np.zeros(4, np.float32)),))
    expected = w0 * np.prod([1 - 1e-3 * _correction(t) * 0.01 for t in (1, 2, 3)])
    np.testing.assert_allclose(w.asnumpy(), expected, rtol=1e-6)
    l2 = ms.Parameter(Tensor(w0), name="w2")  # the pathology adamw avoids: nn.Adam's coupled L2
    adam = nn.Adam([l2], learning_rate=1e-3, weight_decay=0.01)
    for _ in range(3):
        adam((Tensor(np.zeros(4, np.float32)),))
    assert np.all(w0 - l2.asnumpy() > 2e-3)  # ~lr per step, 40x the decoupled decay's shrink


def test_adamw_runs_past_the_end_of_its_rate_list_at_the_last_rate():
    from lrp_prune.training import adamw

    w = ms.Parameter(Tensor(np.zeros(2, np.float32)), name="w")
    opt = adamw([{"params": [w], "weight_decay": 0.0}], [1e-1, 2e-2])
    for _ in range(4):  # a steady gradient: each corrected Adam step moves exactly the rate
        opt((Tensor(np.ones(2, np.float32)),))
    np.testing.assert_allclose(w.asnumpy(), -(0.1 + 3 * 0.02), rtol=0, atol=1e-5)  # eps: ~1e-6 a step


def test_adamw_rejects_bad_rates():
    from lrp_prune.training import adamw

    w = ms.Parameter(Tensor(np.ones(2, np.float32)), name="w")
    with pytest.raises(LRPPruneError, match="learning rate"):
        adamw([{"params": [w]}], [])
    with pytest.raises(LRPPruneError, match="learning rate"):
        adamw([{"params": [w], "lr": -0.1}], 1e-3)


def test_bucketed_evaluation_returns_predictions_in_dataset_order():
    """Buckets regroup examples by length; with "index" every row comes back to its example's place."""
    from lrp_prune.data.batching import batches

    cfg = tiny_config(num_hidden_layers=1)
    clf = BertClassifier(cfg, False)
    rng = np.random.default_rng(0)
    n, length = 11, 16
    lengths = rng.integers(3, length + 1, n)
    ids = rng.integers(1, cfg.vocab_size, (n, length)).astype(np.int32)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
    arrays = {"input_ids": ids * mask, "token_type_ids": np.zeros_like(ids), "input_mask": mask,
              "lengths": lengths, "label_ids": rng.integers(0, 3, n).astype(np.int32), "index": np.arange(n)}
    one_by_one = np.concatenate([predict_logits(clf, [{k: v[i:i + 1] for k, v in arrays.items()}])[0]
                                 for i in range(n)])
    logits, labels = predict_logits(clf, batches(arrays, 4, drop_remainder=False, buckets=(8, 16), pad_last=True))
    np.testing.assert_allclose(logits, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(labels, arrays["label_ids"])
    shuffled = batches(arrays, 4, shuffle=True, seed=1, drop_remainder=False, buckets=(8, 16), pad_last=True)
    np.testing.assert_allclose(predict_logits(clf, shuffled)[0], one_by_one, atol=1e-5)

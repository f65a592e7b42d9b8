"""Inputs are checked on the host at every top-level call: a clear error, and the cell keeps working."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from helpers import as_tensors, make_pruner, max_diff, random_inputs, random_model, tiny_config
from lrp_prune import (BertClassifier, BertClassifierWithLoss, LRPPruneError, check_inputs, load_pruned,
                       prune_heads, save_pruned)

CFG = tiny_config()  # vocab 53, type vocab 2, max positions 16, seq 9


def bad_cases():
    ids, types, mask = random_inputs(CFG)
    cases = {
        "ids >= vocab_size": ((np.where(ids == ids[0, 0], 53, ids), types, mask), r"input_ids: expected ids in \[0, 53\)"),
        "negative ids": ((np.where(ids == ids[0, 0], -1, ids), types, mask), r"input_ids: expected ids in \[0, 53\)"),
        "float ids": ((ids.astype(np.float32), types, mask), "input_ids: expected a 2-D integer array"),
        "ids of rank 1": ((ids[0], types, mask), "input_ids: expected a 2-D integer array"),
        "types of another shape": ((ids, types[:, :5], mask), r"token_type_ids: expected shape \(2, 9\)"),
        "mask of another shape": ((ids, types, mask[:1]), r"input_mask: expected shape \(2, 9\)"),
        "type ids >= type_vocab_size": ((ids, types + 1, mask), r"token_type_ids: expected ids in \[0, 2\)"),
        "mask values other than 0/1": ((ids, types, mask * 2), "input_mask: expected only 0 and 1"),
        "a batch of 0": ((ids[:0], types[:0], mask[:0]), "input_ids: expected at least one row"),
        "longer than max_position_embeddings": (
            tuple(np.tile(a, (1, 2)) for a in (ids, types, mask)), r"at most max_position_embeddings \(16\)"),
    }
    return cases


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def test_every_bad_batch_is_refused_before_the_graph_and_the_cell_keeps_working(mode):
    ms.set_context(mode=mode)
    model = random_model(CFG, seed=1)
    good = as_tensors(random_inputs(CFG))
    expected = model(*good)[0].asnumpy()
    for name, (inputs, needle) in bad_cases().items():
        with pytest.raises(LRPPruneError, match=needle):
            model(*inputs)
        assert max_diff(model(*good)[0], expected) == 0.0, name  # the compiled graph is intact


def test_classifiers_pruned_and_reloaded_models_check_too(tmp_path):
    clf = BertClassifier(CFG, False, num_labels=3)
    with_loss = BertClassifierWithLoss(BertClassifier(CFG, False, num_labels=3))
    pruned = prune_heads(random_model(CFG), {0: [0, 1]})
    save_pruned(pruned, tmp_path / "p")
    reloaded = load_pruned(tmp_path / "p")
    ids, types, mask = random_inputs(CFG)
    bad = np.where(ids == ids[0, 0], 99, ids)
    for model in (clf, pruned, reloaded):
        with pytest.raises(LRPPruneError, match=r"input_ids: expected ids in \[0, 53\)"):
            model(*as_tensors((bad, types, mask)))
    labels = np.array([0, 2], np.int32)
    assert np.isfinite(float(with_loss(*as_tensors((ids, types, mask, labels)))))
    for wrong, needle in ((np.array([0, 3], np.int32), r"label_ids: expected class ids in \[0, 3\), got \[3\]"),
                          (np.array([-1, 0], np.int32), r"class ids in \[0, 3\), got \[-1\]"),
                          (np.array([0], np.int32), "label_ids: expected a 1-D integer array of 2 class ids")):
        with pytest.raises(LRPPruneError, match=needle):
            with_loss(*as_tensors((ids, types, mask, wrong)))


def test_gated_models_and_a_users_cell_holding_a_checked_model():
    gated = make_pruner().apply(random_model(CFG))
    ids, types, mask = random_inputs(CFG)
    with pytest.raises(LRPPruneError, match="input_mask: expected only 0 and 1"):
        gated(*as_tensors((ids, types, mask * 3)))

    class Mine(nn.Cell):
        def __init__(self):
            super().__init__()
            self.encoder = random_model(CFG)
            self.head = nn.Dense(32, 2)

        def construct(self, a, b, c):
            return self.head(self.encoder(a, b, c)[1])

    mine = Mine()
    assert mine(*as_tensors((ids, types, mask))).shape == (2, 2)  # the nested model's check does not break it
    # inside a user's own compiled graph the library cannot check: check_inputs is the tool
    with pytest.raises(LRPPruneError, match="token_type_ids: expected ids"):
        check_inputs(mine, ids, types + 5, mask)
    check_inputs(mine, ids, types, mask)


def test_a_trusted_loop_can_skip_the_check():
    model = random_model(CFG)
    model.validate_inputs = False
    ids, types, mask = random_inputs(CFG)
    assert model(*as_tensors((ids, types, mask)))[0].shape == (2, 9, 32)
    model.validate_inputs = True
    with pytest.raises(LRPPruneError):
        model(*as_tensors((ids.astype(np.float32), types, mask)))


def test_check_inputs_takes_numpy_integers_of_any_width_and_a_config():
    ids, types, mask = random_inputs(CFG)
    check_inputs(CFG, ids.astype(np.int64), types.astype(np.int16), mask.astype(np.uint8))
    with pytest.raises(LRPPruneError, match="check_inputs: expected a BertConfig or a model"):
        check_inputs("bert", ids, types, mask)
    with pytest.raises(LRPPruneError, match="input_ids: expected a 2-D integer array"):
        check_inputs(CFG, object(), types, mask)

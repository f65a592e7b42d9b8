"""The pipeline: option checks at the boundary, reproducible runs, reusing the fine-tuned start."""

from __future__ import annotations

import gc

import pytest
from lrp_prune import LRPPruneError

from helpers import run_flow


# whole runs of the pipeline on a tiny task
pytestmark = pytest.mark.slow

def test_max_seq_length_beyond_positions_names_the_option(tiny_nli):
    from lrp_prune.app.pipeline import PruneOptions, load_classifier

    opts = PruneOptions(task="mnli", data_dir=tiny_nli["data_dir"], model=tiny_nli["config_json"],
                        load_checkpoint_path=tiny_nli["checkpoint"], vocab_file=tiny_nli["vocab_file"],
                        max_seq_length=40)  # the tiny model has 32 positions
    with pytest.raises(LRPPruneError) as info:
        load_classifier(opts, is_training=False)
    message = str(info.value)
    assert "32" in message and "40" in message
    assert message.startswith("max_seq_length:"), message


def _prune_options(tiny, **overrides):
    from lrp_prune.app.pipeline import PruneOptions

    base = dict(task="mnli", data_dir=tiny["data_dir"], model=tiny["config_json"],
                load_checkpoint_path=tiny["checkpoint"], vocab_file=tiny["vocab_file"], max_seq_length=16,
                buckets=(16,), batch_size=8, eval_batch_size=16, eval_limit=16, train_steps=15,
                l0_penalty=0.01, learning_rate=1e-3, log_a_lr=0.1, seed=7, progress=False,
                latency_batch_size=2, latency_repeats=1, gate_log_every=1)
    base.update(overrides)
    return PruneOptions(**base)


def test_run_prune_with_a_fixed_seed_is_reproducible(tiny_nli):
    # dropout=False here; the dropout case is tested below (the library's own Dropout is seeded);
    # the Hard Concrete noise (ops.rand) and the data order are seeded.
    reports = []
    for _ in range(2):
        report = run_flow(_prune_options(tiny_nli, dropout=False)).to_dict()
        reports.append(report)
        gc.collect()
    first, second = reports
    assert first["gate_history"]["loss"] == second["gate_history"]["loss"]
    assert first["final_log_a"] == second["final_log_a"]
    assert first["heads_removed"] == second["heads_removed"]
    assert first["heads_kept_per_layer"] == second["heads_kept_per_layer"]
    assert first["final_log_a"] != [[3.0] * 4] * 3  # the gates did train


def test_finetuned_checkpoint_is_saved_then_reused(tiny_nli, tmp_path):
    ckpt = tmp_path / "finetuned.ckpt"
    opts = dict(dropout=False, finetune_steps=6, finetune_lr=1e-3, train_steps=3, finetuned_checkpoint=str(ckpt))
    first = run_flow(_prune_options(tiny_nli, **opts)).to_dict()
    assert ckpt.is_file() and "finetuned_from" not in first and "finetune_s" in first["timings"]
    gc.collect()
    second = run_flow(_prune_options(tiny_nli, **opts)).to_dict()
    assert second["finetuned_from"] == str(ckpt) and "finetune_s" not in second["timings"]
    # the same fine-tuned classifier: the same unpruned accuracy on the same pairs
    assert second["accuracy_before"] == first["accuracy_before"]

"""The pipeline: option checks at the boundary, reproducible runs, reusing the fine-tuned start."""

from __future__ import annotations

import gc

import numpy as np

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


def test_retraining_free_method_prunes_to_the_target_without_training(tiny_nli, tmp_path):
    from lrp_prune import load_pruned, read_heads_to_prune
    from lrp_prune.app.report import format_summary, write_report

    report = run_flow(_prune_options(tiny_nli, method="fisher", target_heads=7, importance_examples=40,
                                     save_dir_path=str(tmp_path / "pruned"))).to_dict()
    assert report["method"] == "fisher" and report["gated_steps"] == 0 and report["heads_kept"] == 7
    assert report["pruned_equals_gated"] is True
    assert report["accuracy_control"] is None and report["drop_reference"] == "start"
    free = report["retraining_free"]
    assert free["examples"] == 40 and sum(map(sum, free["mask"])) == 7
    kept_scales = [v for row in free["scales"] for v in row if v is not None]
    assert len(kept_scales) == 7 and any(abs(v - 1) > 1e-4 for v in kept_scales)  # tuned
    for key in ("importance_s", "search_s", "tune_s", "convert_s", "retraining_free_s"):
        assert key in report["timings"]
    # kept-ness on disk comes from the mask: heads pickle and config agree with it
    heads = read_heads_to_prune(tmp_path / "pruned")
    assert {int(k): v for k, v in heads.items()} == {i: [h for h, m in enumerate(row) if not m]
                                                    for i, row in enumerate(free["mask"])}
    assert sum(load_pruned(tmp_path / "pruned").config.heads_per_layer) == 7
    files = write_report(report, tmp_path / "report")
    assert files["importance_png"].read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "report" / "report.md").read_text()
    assert "retraining-free (fisher)" in text and "masked (mask x tuned scales)" in text
    assert "equal-budget reference" in format_summary(report)


def test_retraining_free_method_needs_a_target(tiny_nli):
    with pytest.raises(LRPPruneError, match="target_heads"):
        _prune_options(tiny_nli, method="fisher")


def test_lrp_with_importance_init_records_the_importance(tiny_nli):
    from lrp_prune.pruning.importance import importance_log_a

    # log_a's learning rate ~0: the gates end where they started
    report = run_flow(_prune_options(tiny_nli, log_a_init="importance", importance_examples=24, train_steps=2,
                                     log_a_lr=1e-9, control=False)).to_dict()
    assert report["method"] == "lrp" and report["importance"]["examples"] == 24
    assert "importance_s" in report["timings"]
    fisher = np.array(report["importance"]["fisher"], dtype=float)
    np.testing.assert_allclose(np.array(report["final_log_a"], dtype=float), importance_log_a(fisher), atol=1e-4)


def test_heads_and_ffn_under_a_flops_budget_end_to_end(tiny_nli, tmp_path):
    from lrp_prune.app.report import format_summary, render_markdown, write_report

    report = run_flow(_prune_options(tiny_nli, structures=("heads", "ffn"), target_flops=0.5, l0_penalty=0.0,
                                     train_steps=12, budget_warmup_steps=4, budget_lr=0.05, control=False,
                                     save_dir_path=str(tmp_path / "pruned")))
    r = report.to_dict()
    assert r["pruned_equals_gated"] and r["target_heads"] is None
    assert r["encoder_flops_after"] <= 0.5 * r["encoder_flops_before"] * (1 + 1e-9)  # the ceiling holds
    assert r["units_total"] == 111 and len(r["units_kept_per_layer"]) == 3
    history = r["gate_history"]
    assert len(history["ffn_open"]) == len(history["steps"]) and len(history["ffn_open"][0]) == 3
    assert history["target_now"][-1] is not None and history["target_now"][-1] < history["target_now"][0]
    text = format_summary(r)
    assert "feed-forward units kept per layer" in text and "encoder multiply-adds per sequence" in text
    files = write_report(report, tmp_path / "report")
    assert files["ffn_png"].read_bytes()[:4] == b"\x89PNG"
    assert "feed-forward width per layer" in render_markdown({**r, "files": {"ffn_png": "ffn_width.png"}})
    assert (tmp_path / "pruned" / "units_to_prune.json").is_file()


def test_bad_structures_and_budgets_name_the_option(tiny_nli):
    for overrides, message in (({"structures": ("heads", "mlp")}, "structures: expected heads, ffn or heads,ffn"),
                               ({"structures": ("ffn",), "target_heads": 4}, "target_heads: expected heads among"),
                               ({"target_heads": 4, "target_flops": 0.5}, "target_flops: expected no --target_heads"),
                               ({"target_flops": 1.0}, "target_flops: expected a fraction in \\(0, 1\\)"),
                               ({"method": "fisher", "target_heads": 4, "structures": ("heads", "ffn")},
                                "structures: expected heads with --method fisher")):
        with pytest.raises(LRPPruneError, match=message):
            _prune_options(tiny_nli, **overrides)


def test_target_speedup_end_to_end_reports_the_predicted_and_measured_ratio(tiny_nli, monkeypatch):
    from lrp_prune.app.report import format_summary
    from lrp_prune.pruning import latency
    from lrp_prune.pruning.latency import LatencyTable

    # a table of this tiny model's widths (measuring one is tested in tests/pruning/test_latency.py)
    table = LatencyTable((0, 4), (0, 37), [[1e-3, 3e-3], [2e-3, 4e-3]], batch_size=2, seq_length=16)
    monkeypatch.setattr(latency, "cached_layer_table", lambda *a, **k: table)
    report = run_flow(_prune_options(tiny_nli, structures=("heads", "ffn"), target_speedup=1.6, l0_penalty=0.0,
                                     train_steps=8, budget_warmup_steps=2, budget_lr=0.05, control=False))
    r = report.to_dict()
    assert r["pruned_equals_gated"]
    predicted = r["latency"]["predicted_encoder_ratio"]
    assert predicted <= 1 / 1.6 + 1e-9  # convert() keeps the layout within the budget
    layout = table.model_seconds(r["heads_kept_per_layer"], r["units_kept_per_layer"]) / (3 * 4e-3)
    assert predicted == pytest.approx(layout)
    assert "the latency table predicted" in format_summary(r)
    with pytest.raises(LRPPruneError, match="target_speedup: expected no other target"):
        _prune_options(tiny_nli, target_speedup=2.0, target_flops=0.5)

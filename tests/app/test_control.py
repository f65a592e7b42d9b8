"""The equal-budget control: same batches as the gated phase, cached on its key, reported with an interval."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import lrp_prune.app.pipeline as pipeline
from helpers import run_flow
from lrp_prune.app.controls import paired_drop
from lrp_prune.app.options import PruneOptions

pytestmark = pytest.mark.slow  # whole runs of the pipeline on a tiny task


def tiny_options(tiny, cache, **overrides):
    base = dict(task="mnli", data_dir=tiny["data_dir"], model=tiny["config_json"],
                load_checkpoint_path=tiny["checkpoint"], vocab_file=tiny["vocab_file"], max_seq_length=16,
                buckets=(16,), batch_size=8, eval_batch_size=16, finetune_steps=5, finetune_lr=1e-3, train_steps=7,
                learning_rate=1e-3, seed=3, progress=False, latency_batch_size=2, latency_repeats=1, dropout=False,
                control_cache=str(cache))
    base.update(overrides)
    return PruneOptions(**base)


@pytest.fixture
def recorded(monkeypatch):
    """Every batch each phase trains on, as a digest of its rows, per phase."""
    seen: dict[str, list[str]] = {}
    real = pipeline.stream
    starts: list[int] = []

    def recording(options, data, start):
        starts.append(start)
        tag = ("finetune", "gated", "control")[min(len(starts), 3) - 1]
        for batch in real(options, data, start):
            seen.setdefault(tag, []).append(hashlib.sha1(batch["input_ids"].tobytes()).hexdigest())
            yield batch

    monkeypatch.setattr(pipeline, "stream", recording)
    return seen, starts


def test_the_control_trains_as_many_steps_on_the_same_batches_after_the_fine_tuning(tiny_nli, tmp_path, recorded):
    seen, starts = recorded
    report = run_flow(tiny_options(tiny_nli, tmp_path)).to_dict()
    assert starts == [0, 5, 5]  # both arms continue the fine-tuning's stream, neither replays it
    assert len(seen["finetune"]) == 5 and len(seen["gated"]) == len(seen["control"]) == 7
    assert seen["gated"] == seen["control"]
    full = [hashlib.sha1(b["input_ids"].tobytes()).hexdigest()
            for b, _ in zip(pipeline.batch_stream(pipeline.load_data(tiny_options(tiny_nli, tmp_path),
                                                                     pipeline.load_model(tiny_options(tiny_nli,
                                                                                                      tmp_path))).train,
                                                  8, seed=3, buckets=(16,)), range(12))]
    assert seen["finetune"] + seen["gated"] == full
    assert report["control_steps"] == report["gated_steps"] == 7 and report["control_cached"] is False
    assert report["accuracy_control"] is not None and report["drop_reference"] in ("start", "control")
    low, high = report["drop_ci95"]
    assert low <= report["drop"] <= high
    reference = report["accuracy_control" if report["drop_reference"] == "control" else "accuracy_before"]
    assert report["drop"] == pytest.approx(report["accuracy_pruned"] - reference)


def test_the_cached_control_is_reused_across_lambdas_and_invalidated_by_its_key(tiny_nli, tmp_path, recorded):
    seen, starts = recorded
    first = run_flow(tiny_options(tiny_nli, tmp_path, l0_penalty=0.01)).to_dict()
    second = run_flow(tiny_options(tiny_nli, tmp_path, l0_penalty=0.2)).to_dict()  # another lambda: reused
    assert (first["control_cached"], second["control_cached"]) == (False, True)
    assert second["accuracy_control"] == first["accuracy_control"] and len(starts) == 5  # no 2nd control run
    for change in ({"seed": 4}, {"learning_rate": 2e-3}, {"eval_limit": 10}, {"train_steps": 6},
                   {"finetune_steps": 4}):
        again = run_flow(tiny_options(tiny_nli, tmp_path, **change)).to_dict()
        assert again["control_cached"] is False, change


def test_no_control_says_it_has_none(tiny_nli, tmp_path):
    from lrp_prune.app.report import format_summary, render_markdown

    result = run_flow(tiny_options(tiny_nli, tmp_path, control=False, buckets=(4, 8, 16)))
    for arm, accuracy in (("start", result.accuracy_before), ("pruned", result.accuracy_pruned)):
        assert (result.predictions[arm] == result.labels).mean() == pytest.approx(accuracy), arm
    assert result.accuracy_control is None and result.control is None
    report = result.to_dict()
    assert report["accuracy_control"] is None and report["control_steps"] is None
    assert report["drop_reference"] == "start"
    # two buckets reorder the pairs; the paired drop must still compare each pair with itself
    assert report["drop"] == pytest.approx(report["accuracy_pruned"] - report["accuracy_before"])
    assert "control: none (--no_control)" in format_summary(report)
    assert "no equal-budget control was trained" in render_markdown(report)


def test_paired_drop_interval_covers_the_difference_and_shrinks_with_more_pairs():
    rng = np.random.default_rng(0)
    ref = rng.random(400) < 0.8
    pruned = ref & (rng.random(400) < 0.95)  # loses about 4 points
    drop, (low, high) = paired_drop(pruned, ref)
    assert low <= drop <= high < 0 and drop == pytest.approx(pruned.mean() - ref.mean())
    _, (low4, high4) = paired_drop(np.tile(pruned, 4), np.tile(ref, 4))
    assert high4 - low4 < high - low

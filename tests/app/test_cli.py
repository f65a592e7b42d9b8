"""The lrp-prune command line end to end on a tiny random model and tiny data (subprocesses)."""

from __future__ import annotations

import json
import re

import pytest
from lrp_prune.io.saved import FILES
from PIL import Image

from helpers import cli, write_tiny_nli


# every test runs lrp-prune in a subprocess or a whole flow
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]



@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tiny = write_tiny_nli(root)
    out = root / "out"
    proc = cli("demo", "--model", tiny["config_json"], "--load_checkpoint_path", tiny["checkpoint"],
               "--vocab_file", tiny["vocab_file"], "--task", "mnli", "--data_dir", tiny["data_dir"],
               "--max_seq_length", 16, "--batch_size", 8, "--eval_batch_size", 16, "--finetune_steps", 6,
               "--train_steps", 25, "--l0_penalty", 0.0, "--target_heads", 0.5, "--eval_limit", 30,
               "--latency_batch_size", 4,
               "--out", out, "--no_progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_demo_writes_report_pictures_and_model(demo_run):
    out, proc = demo_run
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.json", "gates.png", "p_gate_closed.png", "p_gate_closed.gif", "pruned_model"} <= names
    report = json.loads((out / "report.json").read_text())
    for key in ("accuracy_before", "accuracy_gated", "accuracy_pruned", "heads_kept_per_layer", "params_before",
                "params_after", "latency", "wall_time_s", "gate_history", "heads_removed", "eval_pairs"):
        assert key in report, key
    assert report["eval_pairs"] == 30 and report["gated_steps"] == 25
    assert report["accuracy_pruned"] == report["accuracy_gated"] and report["pruned_equals_gated"] is True
    assert report["latency"]["ratio_pruned_over_unpruned"] > 0
    heads = json.loads((out / "pruned_model" / FILES["heads_json"]).read_text())
    assert report["heads_removed"] == heads
    assert sum(report["heads_kept_per_layer"]) == report["heads_kept"] == 12 - sum(len(v) for v in heads.values())
    assert "| pruned |" in (out / "report.md").read_text()
    assert "heads kept per layer" in proc.stdout and "wall time" in proc.stdout


def test_demo_pictures_are_valid_images_of_the_expected_size(demo_run):
    out, _ = demo_run
    with Image.open(out / "gates.png") as img:
        img.verify()
    with Image.open(out / "gates.png") as img:
        assert img.format == "PNG" and img.size == (400, 255)  # 3 layers x 4 heads at 100 dpi
    with Image.open(out / "p_gate_closed.png") as img:
        assert img.format == "PNG" and img.size == (1260, 520)  # 3 layer panels + the expected-open panel
    with Image.open(out / "p_gate_closed.gif") as img:
        assert img.format == "GIF" and img.n_frames >= 2


def test_inspect_pruned_dir_and_gated_checkpoint(demo_run):
    out, _ = demo_run
    pruned = out / "pruned_model"
    proc = cli("inspect", pruned)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "heads kept:" in proc.stdout and (pruned / "inspect.png").is_file()
    proc = cli("inspect", pruned / FILES["gated"], "--png", out / "gated.png")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "gated checkpoint" in proc.stdout and "layer |" in proc.stdout
    with Image.open(out / "gated.png") as img:
        assert img.format == "PNG"


def test_export_and_bench(demo_run):
    out, _ = demo_run
    pruned = out / "pruned_model"
    proc = cli("export", pruned, "--batch_size", 2, "--seq_length", 16)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (pruned / "pruned_model.mindir").stat().st_size > 0
    proc = cli("export", pruned, "--format", "onnx", "--check")
    assert proc.returncode == 0, proc.stderr[-2000:]
    diff = float(re.search(r"max \|diff\| (\S+)", proc.stdout).group(1))
    assert (pruned / "pruned_model.onnx").stat().st_size > 0 and diff < 1e-4
    proc = cli("bench", pruned, "--batch_size", 2, "--seq_length", 16, "--repeats", 2, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["batch_size"] == 2 and len(result["pruned_s"]) == 2 and result["ratio"] > 0
    assert result["heads_total"] == 12


def test_prune_subcommand(tmp_path):
    tiny = write_tiny_nli(tmp_path)
    proc = cli("prune", "--task", "mnli", "--data_dir", tiny["data_dir"], "--model", tiny["config_json"],
               "--load_checkpoint_path", tiny["checkpoint"], "--vocab_file", tiny["vocab_file"],
               "--max_seq_length", 16, "--batch_size", 8, "--eval_batch_size", 16, "--train_steps", 4,
               "--eval_limit", 20, "--save_dir_path", tmp_path / "p",
               "--no_progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "p" / "report.json").is_file() and (tmp_path / "p" / FILES["config"]).is_file()


def test_prune_subcommand_retraining_free(tmp_path):
    tiny = write_tiny_nli(tmp_path)
    proc = cli("prune", "--method", "fisher", "--target_heads", 6, "--importance_examples", 32, "--task", "mnli",
               "--data_dir", tiny["data_dir"], "--model", tiny["config_json"],
               "--load_checkpoint_path", tiny["checkpoint"], "--vocab_file", tiny["vocab_file"],
               "--max_seq_length", 16, "--batch_size", 8, "--eval_batch_size", 16, "--eval_limit", 20,
               "--save_dir_path", tmp_path / "p", "--no_progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert report["method"] == "fisher" and report["heads_kept"] == 6 and report["gated_steps"] == 0
    assert "retraining-free" in proc.stdout and (tmp_path / "p" / "importance.png").is_file()
    proc = cli("inspect", tmp_path / "p" / FILES["gated"], "--png", tmp_path / "masked.png")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "masked checkpoint" in proc.stdout and "6 heads kept" in proc.stdout


@pytest.mark.parametrize("args,needle", [
    (("inspect", "/nonexistent/dir"), "checkpoint"),
    (("export", "/nonexistent/dir"), "save_dir_path"),
    (("bench", "/nonexistent/dir"), "save_dir_path"),
    (("demo", "--max_seq_length", "0"), "max_seq_length"),
    (("frobnicate",), "invalid choice"),
])
def test_errors_are_one_line(args, needle):
    proc = cli(*args, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-1000:]


@pytest.mark.parametrize("sub", ["demo", "prune", "inspect", "export", "bench", "hello"])
def test_help_everywhere(sub):
    proc = cli(sub, "--help", timeout=120)
    assert proc.returncode == 0 and "usage:" in proc.stdout

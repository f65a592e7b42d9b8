"""samples/run_sample_bert.py end to end in subprocesses, on tiny MNLI-layout data and a tiny model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lrp_prune.io.saved import FILES

from helpers import REPO, write_tiny_nli

# every test runs the sample in a subprocess (msrun for data parallelism)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = REPO
SAMPLE = ROOT / "samples" / "run_sample_bert.py"


def run(args, cwd, timeout=600, env_extra=None):
    env = dict(os.environ, GLOG_v="3", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(SAMPLE), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_nli(tmp_path_factory.mktemp("sample"))


def base_flags(tiny, out):
    # the README's flag set, at tiny sizes
    return ["--device_target", "CPU", "--task", "mnli", "--data_dir", tiny["data_dir"],
            "--model", tiny["config_json"], "--load_checkpoint_path", tiny["checkpoint"],
            "--vocab_file", tiny["vocab_file"], "--l0_penalty", "0.05", "--log_a_lr", "0.1",
            "--learning_rate", "1e-3", "--epoch_size", "1", "--batch_size", "8", "--eval_batch_size", "16",
            "--max_seq_length", "16", "--train_steps", "24", "--seed", "3", "--do_shuffle", "true",
            "--enable_lossscale", "true", "--enable_save_ckpt", "true", "--save_checkpoint_steps", "5",
            "--save_checkpoint_num", "2", "--save_checkpoint_path", str(out / "ckpt"),
            "--save_dir_path", str(out / "pruned"), "--no_progress"]


def accuracies(stdout: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(start|control|gated|pruned)\b[^%\n]*?\s([\d.]+)%", stdout, re.M)}


def test_sample_end_to_end(tiny, tmp_path):
    proc = run(base_flags(tiny, tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    acc = accuracies(proc.stdout)
    assert set(acc) == {"start", "control", "gated", "pruned"}
    assert acc["gated"] == acc["pruned"]
    assert "pruned predictions equal gated: True" in proc.stdout
    assert "heads kept per layer:" in proc.stdout and "latency pruned/unpruned" in proc.stdout
    out = tmp_path / "pruned"
    assert set(FILES.values()) <= {p.name for p in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    heads = json.loads((out / FILES["heads_json"]).read_text())
    assert report["heads_removed"] == heads and len(heads) == 3
    ckpts = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert ckpts == ["lrp_gated-15.ckpt", "lrp_gated-20.ckpt"]  # every 5 steps, the newest 2 kept
    assert "data sink" not in proc.stderr  # only said when asked for


def test_sample_data_sink_is_reported_once(tiny, tmp_path):
    flags = base_flags(tiny, tmp_path) + ["--enable_data_sink", "true", "--train_steps", "3"]
    proc = run(flags, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("data sinking is not used on CPU") == 1


def test_msrun_two_cpu_workers_end_with_identical_log_a(tiny, tmp_path):
    msrun = Path(sys.executable).parent / "msrun"
    if not msrun.exists():
        pytest.fail(f"msrun not found beside {sys.executable}")
    flags = base_flags(tiny, tmp_path) + ["--distribute", "true", "--train_steps", "8", "--enable_save_ckpt", "false"]
    env = dict(os.environ, GLOG_v="3", PATH=f"{msrun.parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([str(msrun), "--worker_num=2", "--local_worker_num=2", "--master_port=8131",
                           f"--log_dir={tmp_path / 'logs'}", "--join=True", str(SAMPLE), *flags],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("worker_*.log")}
    assert proc.returncode == 0, "\n".join(v[-2000:] for v in logs.values())
    sums = {}
    for name, text in logs.items():
        m = re.search(r"rank (\d) final log_a checksum (-?[\d.]+)", text)
        assert m, text[-2000:]
        sums[int(m.group(1))] = m.group(2)
    assert set(sums) == {0, 1} and sums[0] == sums[1]
    assert (tmp_path / "pruned" / FILES["config"]).is_file()  # rank 0 wrote


@pytest.mark.parametrize("case", ["missing_data_dir", "tsv_without_columns", "unknown_task", "checkpoint_mismatch"])
def test_bad_input_is_one_clear_line(tiny, tmp_path, case):
    flags = base_flags(tiny, tmp_path)
    if case == "missing_data_dir":
        flags[flags.index("--data_dir") + 1] = str(tmp_path / "nowhere")
        expected = "data_dir"
    elif case == "tsv_without_columns":
        bad = tmp_path / "BAD"
        bad.mkdir()
        for name in ("train.tsv", "dev_matched.tsv"):
            (bad / name).write_text("index\tfoo\tbar\n0\ta\tb\n")
        flags[flags.index("--data_dir") + 1] = str(bad)
        expected = "sentence1"
    elif case == "unknown_task":
        flags[flags.index("--task") + 1] = "imdb"
        expected = "task"
    else:
        from helpers import tiny_config
        other = tmp_path / "other.json"
        other.write_text(tiny_config(vocab_size=40, hidden_size=24, num_attention_heads=3, seq_length=16,
                                     max_position_embeddings=32).to_json())
        flags[flags.index("--model") + 1] = str(other)
        expected = "shape mismatch"
    proc = run(flags, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0], proc.stderr[-2000:]


def test_help_documents_every_original_flag():
    proc = subprocess.run([sys.executable, str(SAMPLE), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for flag in ("--device_target", "--distribute", "--epoch_size", "--enable_save_ckpt", "--enable_lossscale",
                 "--do_shuffle", "--enable_data_sink", "--data_sink_steps", "--load_checkpoint_path",
                 "--save_checkpoint_path", "--save_checkpoint_steps", "--save_checkpoint_num", "--data_dir",
                 "--task", "--model", "--vocab_file", "--l0_penalty", "--log_a_lr", "--learning_rate",
                 "--batch_size", "--max_seq_length", "--train_steps", "--seed", "--save_dir_path", "--target_heads"):
        assert flag in proc.stdout, flag

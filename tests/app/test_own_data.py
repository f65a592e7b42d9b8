"""Your own data end to end: ``lrp-prune prune --task file`` on a 5-class pair task (tiny model) and on
the shipped reviews CSV (the real MiniLM), each leaving a model that reloads with its class names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import WORDS, cli, write_tiny_nli
from lrp_prune import load_pruned

pytestmark = pytest.mark.slow  # whole runs of the command line

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("none", "one", "two", "three", "four")  # how many words the two texts share


def write_pair_task(root: Path, n_train: int = 80, n_eval: int = 30, seed: int = 0) -> dict[str, str]:
    """A generated 5-class pair task in JSON Lines: the label counts the words both texts share."""
    rng = np.random.default_rng(seed)
    vocab = WORDS[:-6]

    def rows(n):
        for i in range(n):
            k = i % 5
            first = list(rng.choice(vocab, size=6, replace=False))
            rest = [w for w in vocab if w not in first]
            second = first[:k] + list(rng.choice(rest, size=4 - k, replace=False))
            yield {"question": " ".join(first), "answer": " ".join(rng.permutation(second)),
                   "topic": f"t{i // 4}", "label": CLASSES[k]}

    files = {}
    for split, n in (("train", n_train), ("eval", n_eval)):
        path = root / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows(n)), encoding="utf-8")
        files[split] = str(path)
    return files


def backbone_checkpoint(tiny: dict, path: Path) -> str:
    """The tiny ModelZoo checkpoint without its 3-class head: a backbone for a new head."""
    import mindspore as ms

    values = {k: v for k, v in ms.load_checkpoint(tiny["checkpoint"]).items() if "dense_1" not in k}
    ms.save_checkpoint([{"name": k, "data": v} for k, v in values.items()], str(path))
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_nli(tmp_path_factory.mktemp("own_data"), n_train=8, n_dev=4)


@pytest.mark.timeout(600)
def test_prune_a_five_class_pair_task_from_jsonl(tiny, tmp_path):
    files = write_pair_task(tmp_path)
    out = tmp_path / "out"
    proc = cli("prune", "--task", "file", "--train_file", files["train"], "--eval_file", files["eval"],
               "--text_columns", "question,answer", "--label_column", "label", "--group_column", "topic",
               "--model", tiny["config_json"], "--load_checkpoint_path", backbone_checkpoint(tiny, tmp_path / "b.ckpt"),
               "--vocab_file", tiny["vocab_file"], "--max_seq_length", 32, "--buckets", "32", "--batch_size", 8,
               "--eval_batch_size", 16, "--finetune_steps", 10, "--finetune_lr", 1e-3, "--train_steps", 10,
               "--latency_batch_size", 2, "--latency_repeats", 1, "--out", out, "--no_progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["data"]["label_names"] == sorted(CLASSES)  # string labels: sorted
    pruned = report["metrics"]["pruned"]
    assert set(pruned["per_class_accuracy"]) == set(CLASSES) and sum(pruned["support"].values()) == 30
    assert np.array(pruned["confusion"]).shape == (5, 5) and np.array(pruned["confusion"]).sum() == 30
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "Accuracy per class" in text and "| three | 6 |" in text and "Confusion" in text
    model = load_pruned(out / "pruned_model")
    assert model.label_names == tuple(sorted(CLASSES)) and model.num_labels == 5


@pytest.mark.timeout(300)
def test_a_head_with_another_number_of_classes_is_a_clear_error(tiny, tmp_path):
    files = write_pair_task(tmp_path, n_train=20, n_eval=10)
    proc = cli("prune", "--task", "file", "--train_file", files["train"], "--eval_file", files["eval"],
               "--text_columns", "question,answer", "--label_column", "label", "--model", tiny["config_json"],
               "--load_checkpoint_path", tiny["checkpoint"], "--vocab_file", tiny["vocab_file"],
               "--max_seq_length", 32, "--out", tmp_path / "out", "--no_progress", timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "expected a classifier head with 5 classes" in errors[0] \
        and "got one with 3" in errors[0], proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_an_unseen_eval_label_stops_the_cli_naming_the_file(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,pos\nb,neg\n", encoding="utf-8")
    (tmp_path / "eval.csv").write_text("text,label\nc,meh\n", encoding="utf-8")
    proc = cli("prune", "--task", "file", "--train_file", tmp_path / "train.csv", "--eval_file",
               tmp_path / "eval.csv", "--out", tmp_path / "out", timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "eval.csv: expected labels of column 'label'" in errors[0]


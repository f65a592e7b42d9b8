"""Reliability: one error type with clear messages, nothing lost on disk, reproducible runs,
pickle safety, extreme pruning, and a save/reload property test.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import pickletools
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mindspore import Tensor

import lrp_prune
from helpers import as_tensors, max_diff, random_inputs, random_model, tiny_config, write_tiny_nli
from lrp_prune import (BertClassifier, BertConfig, BertModel, HeadPruningFactory, LRPPruneError, export_mindir,
                       load_mindir, load_pruned, prune_heads, read_heads_to_prune, save_pruned)
from lrp_prune.checkpoint import param_dict
from lrp_prune.data import NLIExamples, batches, load_task, num_batches, read_glue_mnli_tsv
from lrp_prune.serialization import FILES, safe_unpickle_heads
from reference import bert_forward

TESTS_DIR = Path(__file__).resolve().parent
CLOSED, OPEN = -5.0, 4.0


def make_pruner(l0_penalty: float = 0.01):
    return HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT",
                                          "config": {"l0_penalty": l0_penalty}})


def set_log_a(bert, log_a: np.ndarray) -> None:
    """log_a: [layers, heads], indexed by original head."""
    for i, attention in bert.gate_cells():
        attention.gate.log_a.set_data(Tensor(np.asarray(log_a)[i, list(attention.heads)].astype(np.float32)))


def temp_leftovers(directory: Path) -> list[str]:
    """Names under ``directory`` (recursively) that look like temporary or staging files."""
    return sorted(str(p.relative_to(directory)) for p in Path(directory).rglob("*")
                  if ".tmp" in p.name or ".export" in p.name or p.name.startswith("."))


def saved_dir(root: Path, layout=None) -> tuple[Path, BertModel, BertConfig]:
    """A pruned BertModel saved with save_pruned (no graph is compiled)."""
    cfg = tiny_config(num_hidden_layers=2)
    model = prune_heads(random_model(cfg), layout or {0: [1], 1: [0, 2]})
    return save_pruned(model, root / "pruned"), model, cfg


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory):
    return write_tiny_nli(tmp_path_factory.mktemp("reliability_nli"), n_train=48, n_dev=16)


# =============================================================================== 1. one error type
def test_one_error_type_exported_from_the_package():
    assert lrp_prune.LRPPruneError is lrp_prune.errors.LRPPruneError
    assert "LRPPruneError" in lrp_prune.__all__
    assert issubclass(lrp_prune.LRPPruneError, ValueError)
    # a caller who only knows ValueError still catches the library's errors
    with pytest.raises(ValueError, match="save_dir_path"):
        load_pruned("/nonexistent/lrp_prune/dir")


@pytest.mark.parametrize("missing", ["model", "config"])
def test_load_pruned_names_the_missing_file(tmp_path, missing):
    directory, _, _ = saved_dir(tmp_path)
    path = directory / FILES[missing]
    path.unlink()
    with pytest.raises(LRPPruneError) as info:
        load_pruned(directory)
    message = str(info.value)
    assert message.startswith(f"{FILES[missing]}: expected the file")  # the thing and the expectation
    assert str(path) in message and "got no such file" in message  # what was received


def test_load_pruned_truncated_checkpoint(tmp_path):
    directory, _, _ = saved_dir(tmp_path)
    ckpt = directory / FILES["model"]
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(LRPPruneError, match="expected a readable MindSpore checkpoint, got a corrupt or truncated"):
        load_pruned(directory)


def test_malformed_json_in_pruned_config_and_heads(tmp_path):
    directory, _, _ = saved_dir(tmp_path)
    (directory / FILES["config"]).write_text('{"format": "lrp_prune/pruned-model", ', encoding="utf-8")
    with pytest.raises(LRPPruneError) as info:
        load_pruned(directory)
    assert FILES["config"] in str(info.value) and "expected valid JSON, got a parse error" in str(info.value)
    (directory / FILES["heads_json"]).write_text("{0: [1, 2]", encoding="utf-8")
    with pytest.raises(LRPPruneError) as info:
        read_heads_to_prune(directory)
    assert FILES["heads_json"] in str(info.value) and "expected valid JSON" in str(info.value)
    # valid JSON of the wrong shape names the file, the expected shape and what it held
    (directory / FILES["heads_json"]).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(LRPPruneError, match=r"expected a JSON object \{layer: \[head indices\]\}, got \[1, 2\]"):
        read_heads_to_prune(directory)
    (directory / FILES["heads_json"]).write_text('{"0": ["one"]}', encoding="utf-8")
    with pytest.raises(LRPPruneError, match="expected integer layers and heads"):
        read_heads_to_prune(directory)
    (directory / FILES["heads_json"]).unlink()
    with pytest.raises(LRPPruneError, match=f"{FILES['heads_json']}: expected the file .* got no such file"):
        read_heads_to_prune(directory)  # no silent fallback to the pickle


@pytest.mark.parametrize("edit,needle", [
    (lambda info: info.update(format="someone-else/model"),
     "pruned_config.json: expected a JSON object with format 'lrp_prune/pruned-model', got 'someone-else/model'"),
    (lambda info: info.pop("format"), "with format 'lrp_prune/pruned-model', got None"),
    (lambda info: info.update(version=2), "pruned_config.json version: expected 1, got 2"),
    (lambda info: info.update(kind="GPT"), "pruned_config.json kind: expected BertModel, BertClassifier"),
    (lambda info: info.update(bert_config=[1, 2]), "BertConfig: expected a dict of config fields, got [1, 2]"),
])
def test_wrong_format_version_kind_in_pruned_config(tmp_path, edit, needle):
    directory, _, _ = saved_dir(tmp_path)
    path = directory / FILES["config"]
    info = json.loads(path.read_text(encoding="utf-8"))
    edit(info)
    path.write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(LRPPruneError) as info_:
        load_pruned(directory)
    assert needle in str(info_.value)


@pytest.mark.parametrize("case", ["no_bert_config", "classifier_without_num_labels"])
def test_incomplete_pruned_config_is_an_lrp_error(tmp_path, case):
    directory, _, _ = saved_dir(tmp_path)
    path = directory / FILES["config"]
    info = json.loads(path.read_text(encoding="utf-8"))
    if case == "no_bert_config":
        del info["bert_config"]
        needle = "bert_config"
    else:
        info.update(kind="BertClassifier", classifier={"pooling": "pooler"})
        needle = "num_labels"
    path.write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(LRPPruneError) as info_:
        load_pruned(directory)
    assert str(info_.value).startswith("pruned_config.json") and needle in str(info_.value)


def test_save_path_that_is_a_file(tmp_path):
    _, model, _ = saved_dir(tmp_path)
    afile = tmp_path / "a_file"
    afile.write_text("keep me", encoding="utf-8")
    with pytest.raises(LRPPruneError) as info:
        save_pruned(model, afile)
    assert str(info.value) == f"save_dir_path: expected a directory, got an existing file {str(afile)!r}"
    with pytest.raises(LRPPruneError, match=r"^save_dir_path: expected a creatable directory, got .*a_file/sub"):
        save_pruned(model, afile / "sub")
    with pytest.raises(LRPPruneError, match=r"^export directory: expected a creatable directory"):
        export_mindir(model, afile / "sub" / "m", batch_size=1)
    assert afile.read_text(encoding="utf-8") == "keep me"


def test_save_into_a_read_only_directory(tmp_path):
    _, model, _ = saved_dir(tmp_path)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):
            pytest.skip("running as root: a 0o500 directory is still writable, so there is nothing to refuse")
        with pytest.raises(LRPPruneError, match=r"^save_dir_path: expected a writable directory"):
            save_pruned(model, read_only)
        with pytest.raises(LRPPruneError, match=r"^save_dir_path: expected a creatable directory"):
            save_pruned(model, read_only / "sub")
        assert list(read_only.iterdir()) == []
    finally:
        read_only.chmod(0o700)


def test_token_ids_beyond_the_model_vocab_are_refused_by_encode_split(tiny_nli):
    from lrp_prune.flow import encode_split
    from lrp_prune.tokenization import PairTokenizer

    tok = PairTokenizer(tiny_nli["vocab_file"], max_seq_length=16)
    examples = NLIExamples(("a man plays guitar",), ("the dog sits",), [1], ("g",))
    arrays = encode_split(tok, examples, 16, vocab_size=tok.vocab_size)
    assert arrays["input_ids"].max() < tok.vocab_size and arrays["label_ids"].tolist() == [1]
    top = int(arrays["input_ids"].max())
    with pytest.raises(LRPPruneError) as info:
        encode_split(tok, examples, 16, vocab_size=10)
    message = str(info.value)
    assert message.startswith("vocab_file: expected token ids below the model's vocab_size (10)")
    assert message.endswith(f"got {top}")


def test_sequence_longer_than_positions_refused_by_export_mindir():
    cfg = tiny_config(num_hidden_layers=1)
    model = BertModel(cfg, False)
    with pytest.raises(LRPPruneError) as info:
        export_mindir(model, "/nonexistent/never/written", batch_size=1, seq_length=cfg.max_position_embeddings + 1)
    assert str(info.value) == (f"seq_length: expected an integer in [1, {cfg.max_position_embeddings}], "
                               f"got {cfg.max_position_embeddings + 1}")


def test_max_seq_length_beyond_positions_names_the_option(tiny_nli):
    from lrp_prune.flow import PruneOptions, load_classifier

    opts = PruneOptions(task="mnli", data_dir=tiny_nli["data_dir"], model=tiny_nli["config_json"],
                        load_checkpoint_path=tiny_nli["checkpoint"], vocab_file=tiny_nli["vocab_file"],
                        max_seq_length=40)  # the tiny model has 32 positions
    with pytest.raises(LRPPruneError) as info:
        load_classifier(opts, is_training=False)
    message = str(info.value)
    assert "32" in message and "40" in message
    assert message.startswith("max_seq_length:"), message


def test_check_inputs_validates_direct_model_inputs():
    import lrp_prune.model as model_module

    check_inputs = model_module.check_inputs
    cfg = tiny_config()
    ids, token_types, mask = random_inputs(cfg)
    assert check_inputs(cfg, ids, token_types, mask) is None
    check_inputs(cfg, *as_tensors((ids, token_types, mask)))  # Tensors too

    def refused(field, *args):
        with pytest.raises(LRPPruneError) as info:
            check_inputs(cfg, *args)
        assert str(info.value).startswith(f"{field}:"), str(info.value)
        return str(info.value)

    bad = ids.copy()
    bad[1, 2] = cfg.vocab_size + 4
    message = refused("input_ids", bad, token_types, mask)
    assert str(cfg.vocab_size) in message and str(cfg.vocab_size + 4) in message
    bad = ids.copy()
    bad[0, 0] = -1
    assert "-1" in refused("input_ids", bad, token_types, mask)
    bad = token_types.copy()
    bad[0, 3] = cfg.type_vocab_size
    assert str(cfg.type_vocab_size) in refused("token_type_ids", ids, bad, mask)
    long = cfg.max_position_embeddings + 1
    long_inputs = random_inputs(tiny_config(seq_length=cfg.max_position_embeddings), pad_from=None)
    long_inputs = tuple(np.concatenate([a, a[:, :1]], axis=1) for a in long_inputs)
    assert long_inputs[0].shape[1] == long
    message = refused("input_ids", *long_inputs)
    assert str(cfg.max_position_embeddings) in message and str(long) in message
    refused("token_type_ids", ids, token_types[:, :-1], mask)
    bad = mask.copy()
    bad[0, 0] = 2
    refused("input_mask", ids, token_types, bad)
    refused("input_ids", ids.astype(np.float32), token_types, mask)


def test_numeric_labels_outside_the_classes_are_refused_by_examples():
    # what the flow builds its label arrays from
    with pytest.raises(LRPPruneError) as info:
        NLIExamples(("a", "b"), ("c", "d"), np.array([1, 5]), ("g", "h"))
    assert str(info.value) == "NLIExamples.labels: expected ids in [0, 3), got [5]"


def test_encode_split_refuses_labels_outside_the_classes(tiny_nli):
    from lrp_prune.flow import encode_split
    from lrp_prune.tokenization import PairTokenizer

    tok = PairTokenizer(tiny_nli["vocab_file"], max_seq_length=16)
    examples = types.SimpleNamespace(premises=("a man plays", "a dog sits"), hypotheses=("a man", "a cat"),
                                     labels=np.array([1, 5]))  # e.g. a label array built by hand
    with pytest.raises(LRPPruneError) as info:
        encode_split(tok, examples, 16, vocab_size=tok.vocab_size)
    message = str(info.value)
    assert message.startswith("label") and "[0, 3)" in message and "5" in message


def test_readers_drop_unknown_label_strings_and_refuse_empty_data(tmp_path, caplog):
    import logging

    path = tmp_path / "train.tsv"
    path.write_text("sentence1\tsentence2\tgold_label\n"
                    "a man\ta dog\tneutral\nb\tc\t5\nd\te\tMaybe\nf\tg\tentailment\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="lrp_prune.data"):
        examples = read_glue_mnli_tsv(path)
    assert examples.labels.tolist() == [2, 1]
    assert "unknown label '5'" in caplog.text and "unknown label 'Maybe'" in caplog.text
    # an empty dataset: a header only, or nothing with a known label
    path.write_text("sentence1\tsentence2\tgold_label\n", encoding="utf-8")
    with pytest.raises(LRPPruneError) as info:
        read_glue_mnli_tsv(path)
    assert str(info.value).startswith(f"{path}: expected at least one example labelled")
    assert str(info.value).endswith("got none (dropped {})")
    path.write_text("sentence1\tsentence2\tgold_label\nb\tc\t5\n", encoding="utf-8")
    with pytest.raises(LRPPruneError, match=r"got none \(dropped \{\"unknown label '5'\": 1\}\)"):
        read_glue_mnli_tsv(path)
    (tmp_path / "dev_matched.tsv").write_text("sentence1\tsentence2\tgold_label\na\tb\tneutral\n", encoding="utf-8")
    with pytest.raises(LRPPruneError, match="train.tsv: expected at least one example"):
        load_task("mnli", tmp_path)


def test_empty_arrays_and_batch_larger_than_dataset():
    empty = {"input_ids": np.zeros((0, 8), np.int32), "label_ids": np.zeros((0,), np.int32)}
    for call in (lambda: batches(empty, 2), lambda: num_batches(empty, 2),
                 lambda: batches(empty, 2, drop_remainder=False)):
        with pytest.raises(LRPPruneError) as info:
            call()
        assert str(info.value) == "arrays: expected at least one example, got 0"
    five = {"input_ids": np.ones((5, 8), np.int32), "label_ids": np.arange(5, dtype=np.int32) % 3}
    with pytest.raises(LRPPruneError) as info:
        num_batches(five, 6)  # the same check as batches(), so step counts never disagree
    assert str(info.value) == "batch_size: expected at most the dataset size 5 when drop_remainder=True, got 6"
    assert num_batches(five, 6, drop_remainder=False) == 1
    assert [len(b["label_ids"]) for b in batches(five, 6, drop_remainder=False)] == [5]


# ============================================================================== 2. nothing lost
def test_every_file_of_a_save_is_renamed_from_a_temporary_name(tmp_path, monkeypatch):
    cfg = tiny_config(num_hidden_layers=2)
    pruner = make_pruner()
    gated = pruner.apply(random_model(cfg))
    set_log_a(gated, np.array([[OPEN, CLOSED, 0.4, OPEN], [CLOSED, OPEN, OPEN, -0.5]]))
    save_dir = tmp_path / "save"
    renames = []
    real_replace = os.replace

    def recording_replace(src, dst, *args, **kwargs):
        renames.append((Path(src), Path(dst)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", recording_replace)
    pruner.convert(gated, save_dir)
    monkeypatch.undo()
    finals = {dst.name: src for src, dst in renames if dst.parent == save_dir}
    assert set(FILES.values()) <= set(finals), f"written in place: {set(FILES.values()) - set(finals)}"
    for name in FILES.values():  # from a temporary file, or a file in a temporary (staging) directory
        inside = finals[name].resolve().relative_to(save_dir.resolve())
        assert any(part.endswith(".tmp") for part in inside.parts), (name, finals[name])
    assert sorted(p.name for p in save_dir.iterdir()) == sorted(FILES.values())
    assert temp_leftovers(save_dir) == []


_INTERRUPT_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ.setdefault("GLOG_v", "3")
    sys.path.insert(0, {tests!r})
    import numpy as np
    import mindspore as ms
    from mindspore import Tensor
    ms.set_context(mode=ms.GRAPH_MODE)
    from helpers import random_model, tiny_config
    import lrp_prune.serialization as serialization
    from lrp_prune import HeadPruningFactory

    cfg = tiny_config(num_hidden_layers=2)
    pruner = HeadPruningFactory.get_pruner({{"prune_type": "LRP", "arch_type": "BERT",
                                             "config": {{"l0_penalty": 0.01}}}})
    gated = pruner.apply(random_model(cfg, seed=1))  # other weights, and every head kept
    real = serialization.atomic_write_text
    calls = []

    def interrupting_write(path, text):
        calls.append(str(path))
        if len(calls) == 2:
            print("INTERRUPTING at", path, flush=True)
            raise KeyboardInterrupt
        return real(path, text)

    serialization.atomic_write_text = interrupting_write
    print("CONVERTING", flush=True)
    pruner.convert(gated, sys.argv[1])
    print("FINISHED", flush=True)
""")


@pytest.fixture(scope="module")
def interrupted_save(tmp_path_factory):
    """A complete save, then a subprocess whose save into the same directory gets a KeyboardInterrupt."""
    root = tmp_path_factory.mktemp("interrupted")
    save_dir = root / "save"
    cfg = tiny_config(num_hidden_layers=2)
    pruner = make_pruner()
    gated = pruner.apply(random_model(cfg, seed=0))
    set_log_a(gated, np.array([[OPEN, CLOSED, 0.4, OPEN], [CLOSED] * 4]))
    inputs = as_tensors(random_inputs(cfg))
    pruned = pruner.convert(gated, save_dir)
    pruned.set_train(False)
    earlier = [o.asnumpy() for o in pruned(*inputs)[:2]]
    snapshot = {p.name: p.read_bytes() for p in save_dir.iterdir()}
    script = root / "interrupt.py"
    script.write_text(_INTERRUPT_SCRIPT.format(tests=str(TESTS_DIR)), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), str(save_dir)], capture_output=True, text=True,
                          timeout=180, cwd=root, env=dict(os.environ, GLOG_v="3"))
    return {"dir": save_dir, "cfg": cfg, "inputs": inputs, "earlier": earlier, "snapshot": snapshot,
            "heads": {0: [1], 1: [0, 1, 2, 3]}, "proc": proc}


def test_keyboard_interrupt_mid_save_leaves_no_temp_files(interrupted_save):
    proc, save_dir = interrupted_save["proc"], interrupted_save["dir"]
    assert "CONVERTING" in proc.stdout and "INTERRUPTING" in proc.stdout, proc.stderr[-2000:]
    assert "FINISHED" not in proc.stdout
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    assert temp_leftovers(save_dir) == []
    assert sorted(p.name for p in save_dir.iterdir()) == sorted(interrupted_save["snapshot"])
    # the config, the commit point, still describes the earlier save
    assert (save_dir / FILES["config"]).read_bytes() == interrupted_save["snapshot"][FILES["config"]]


def test_keyboard_interrupt_mid_save_keeps_the_earlier_save_loadable(interrupted_save):
    save_dir = interrupted_save["dir"]
    assert "INTERRUPTING" in interrupted_save["proc"].stdout
    again = load_pruned(save_dir)
    outputs = again(*interrupted_save["inputs"])
    assert max_diff(outputs[0], interrupted_save["earlier"][0]) == 0.0
    assert max_diff(outputs[1], interrupted_save["earlier"][1]) == 0.0
    assert read_heads_to_prune(save_dir) == interrupted_save["heads"]
    changed = [name for name, data in interrupted_save["snapshot"].items() if (save_dir / name).read_bytes() != data]
    assert changed == []


def _prune_options(tiny, **overrides):
    from lrp_prune.flow import PruneOptions

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
    from lrp_prune.flow import run_prune

    reports = []
    for _ in range(2):
        report = run_prune(_prune_options(tiny_nli, dropout=False))
        report.pop("_pruned_model", None)
        reports.append(report)
        gc.collect()
    first, second = reports
    assert first["gate_history"]["loss"] == second["gate_history"]["loss"]
    assert first["final_log_a"] == second["final_log_a"]
    assert first["heads_removed"] == second["heads_removed"]
    assert first["heads_kept_per_layer"] == second["heads_kept_per_layer"]
    assert first["final_log_a"] != {str(i): [3.0] * 4 for i in range(3)}  # the gates did train


def test_finetuned_checkpoint_is_saved_then_reused(tiny_nli, tmp_path):
    from lrp_prune.flow import run_prune

    ckpt = tmp_path / "finetuned.ckpt"
    opts = dict(dropout=False, finetune_steps=6, finetune_lr=1e-3, train_steps=3, finetuned_checkpoint=str(ckpt))
    first = run_prune(_prune_options(tiny_nli, **opts))
    assert ckpt.is_file() and "finetuned_from" not in first and "finetune_s" in first["timings"]
    gc.collect()
    second = run_prune(_prune_options(tiny_nli, **opts))
    assert second["finetuned_from"] == str(ckpt) and "finetune_s" not in second["timings"]
    # the same fine-tuned classifier: the same unpruned accuracy on the same pairs
    assert second["accuracy_before"] == first["accuracy_before"]


def test_training_mode_dropout_is_reproducible_under_a_seed():
    cfg = tiny_config(num_hidden_layers=1, hidden_size=256, seq_length=16, max_position_embeddings=16)
    # the cause, checked deterministically: the race itself shows up in most runs, not all
    racy = [name for name, cell in BertClassifier(cfg, True, num_labels=3).cells_and_names()
            if isinstance(cell, ms.nn.Dropout)]
    assert racy == [], f"cells on MindSpore's CPU Dropout kernel: {racy}"
    inputs = as_tensors(random_inputs(cfg, batch=16))

    def run():
        ms.set_seed(11)
        model = random_model(cfg, seed=0, is_training=True)
        model.set_train(True)
        return [model(*inputs)[0].asnumpy() for _ in range(30)]

    first, second = run(), run()
    assert not np.array_equal(first[0], first[1])  # dropout is on
    same = [bool(np.array_equal(a, b)) for a, b in zip(first, second)]
    assert all(same), f"calls that differ: {[i for i, s in enumerate(same) if not s]}"


# ============================================================================= 3. pickle safety
class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.target}",)


def evil_pickle(target: Path) -> bytes:
    data = pickle.dumps({0: [1], 1: _Evil(target)}, protocol=4)
    # it really would run code: it references os.system (posix.system)
    assert any(op.name == "STACK_GLOBAL" for op, _, _ in pickletools.genops(data))
    assert b"system" in data
    return data


def test_safe_unpickle_refuses_code(tmp_path):
    marker = tmp_path / "pwned.txt"
    with pytest.raises(LRPPruneError) as info:
        safe_unpickle_heads(evil_pickle(marker))
    assert not marker.exists()
    message = str(info.value)
    assert message.startswith("heads_to_prune pickle: expected only dicts, lists and ints")
    assert "system" in message and "refusing" in message


def test_read_heads_to_prune_reads_the_json_twin_never_the_pickle(tmp_path):
    directory, _, _ = saved_dir(tmp_path, {0: [1], 1: [0, 2]})
    marker = tmp_path / "pwned.txt"
    (directory / FILES["heads_pkl"]).write_bytes(evil_pickle(marker))
    expected = {0: [1], 1: [0, 2]}
    assert read_heads_to_prune(directory) == expected
    assert read_heads_to_prune(directory / FILES["heads_pkl"]) == expected  # .pkl path -> its twin
    assert read_heads_to_prune(directory / FILES["heads_json"]) == expected
    assert not marker.exists()
    # without the twin the pickle goes through the safe unpickler, which refuses it
    (directory / FILES["heads_json"]).unlink()
    with pytest.raises(LRPPruneError, match="refusing to load it"):
        read_heads_to_prune(directory / FILES["heads_pkl"])
    with pytest.raises(LRPPruneError, match="got no such file"):
        read_heads_to_prune(directory)
    assert not marker.exists()
    # load_pruned never touches the pickle either
    assert load_pruned(directory).config.heads_per_layer == (3, 2)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_heads_pickle_is_accepted(tmp_path, protocol):
    data = pickle.dumps({0: [1, 2]}, protocol=protocol)
    assert safe_unpickle_heads(data) == {0: [1, 2]}
    path = tmp_path / "heads.pkl"
    path.write_bytes(data)
    assert read_heads_to_prune(path) == {0: [1, 2]}  # no JSON twin: the safe unpickler


@pytest.mark.parametrize("value,needle", [
    ({0: ["x"]}, "expected a dict {int: [int, ...]}"),
    ([0, 1], "expected a dict {int: [int, ...]}"),
    ({0: (1, 2)}, "expected a dict {int: [int, ...]}"),
])
def test_heads_pickle_of_the_wrong_shape_is_refused(value, needle):
    with pytest.raises(LRPPruneError) as info:
        safe_unpickle_heads(pickle.dumps(value, protocol=4))
    assert needle in str(info.value)


def test_heads_pickle_garbage_is_refused():
    with pytest.raises(LRPPruneError, match="heads_to_prune pickle: expected a valid pickle, got"):
        safe_unpickle_heads(b"\x80\x04not a pickle")


# ========================================================================== 4. extreme pruning
def _assert_graph_mode():
    assert ms.get_context("mode") == ms.GRAPH_MODE


def test_every_head_removed_by_convert_runs_saves_reloads_and_exports(tmp_path):
    _assert_graph_mode()
    cfg = tiny_config(num_hidden_layers=2)
    model = random_model(cfg, seed=3)
    original = {n: v.copy() for n, v in param_dict(model).items()}
    raw = random_inputs(cfg, seed=3)
    inputs = as_tensors(raw)
    pruner = make_pruner()
    gated = pruner.apply(model)
    set_log_a(gated, np.full((2, 4), CLOSED))
    gated.set_train(False)
    gated_out = [o.asnumpy() for o in gated(*inputs)[:2]]
    save_dir = tmp_path / "save"
    pruned = pruner.convert(gated, save_dir)
    assert pruned.config.heads_per_layer == (0, 0) and pruned.config.total_heads == 0
    assert not any(".attention.attention." in n for n, _ in pruned.parameters_and_names())
    pruned.set_train(False)
    out = pruned(*inputs)
    assert len(out) == 3
    assert max_diff(out[0], gated_out[0]) < 1e-5 and max_diff(out[1], gated_out[1]) < 1e-5
    # every attention block is LayerNorm(x + b_O): the reference with every gate at 0
    ref_seq, ref_pooled = bert_forward(original, cfg.to_dict(), *raw, gates=np.zeros((2, 4)))
    assert max_diff(out[0], ref_seq) < 1e-5 and max_diff(out[1], ref_pooled) < 1e-5
    assert read_heads_to_prune(save_dir) == {0: [0, 1, 2, 3], 1: [0, 1, 2, 3]}
    again = load_pruned(save_dir)
    assert again.config == pruned.config
    again_out = again(*inputs)
    assert max_diff(again_out[0], out[0]) == 0.0 and max_diff(again_out[1], out[1]) == 0.0
    path = export_mindir(pruned, tmp_path / "mindir" / "all_pruned", batch_size=2, seq_length=cfg.seq_length)
    graph_out = load_mindir(path)(*inputs)
    assert max_diff(graph_out[0], out[0]) < 1e-6 and max_diff(graph_out[1], out[1]) < 1e-6
    assert temp_leftovers(save_dir) == [] and temp_leftovers(path.parent) == []
    # nothing left to gate: apply() says so, on the converted and on the reloaded model
    for zero_heads in (pruned, again):
        with pytest.raises(LRPPruneError) as info:
            make_pruner().apply(zero_heads)
        assert str(info.value).startswith("apply: expected a model with at least one head, got")
        assert "no heads" in str(info.value)
        assert not zero_heads.is_gated


def test_every_head_removed_by_prune_heads_in_a_classifier(tmp_path):
    _assert_graph_mode()
    cfg = tiny_config(num_hidden_layers=2)
    clf = BertClassifier(cfg, False, num_labels=3)
    from lrp_prune.checkpoint import load_param_dict
    from reference import random_params

    load_param_dict(clf.bert, random_params(cfg.to_dict(), 5))
    inputs = as_tensors(random_inputs(cfg, seed=5))
    prune_heads(clf, {0: [0, 1, 2, 3], 1: [0, 1, 2, 3]})
    assert clf.config.heads_per_layer == (0, 0)
    clf.set_train(False)
    logits = clf(*inputs).asnumpy()
    assert logits.shape == (2, 3) and np.all(np.isfinite(logits))
    save_dir = save_pruned(clf, tmp_path / "save")
    again = load_pruned(save_dir)
    assert isinstance(again, BertClassifier) and again.config == clf.config
    assert max_diff(again(*inputs), logits) == 0.0
    graph = load_mindir(export_mindir(clf, tmp_path / "clf", batch_size=2, seq_length=cfg.seq_length))
    assert max_diff(graph(*inputs), logits) < 1e-6
    with pytest.raises(LRPPruneError, match="apply: expected a model with at least one head"):
        make_pruner().apply(clf)


# ==================================================================== 5. save/reload property
GATE_CHOICES = [CLOSED, OPEN, 0.0, -2.0, 1.0, -2.39, -2.4]  # -2.39 is barely open, -2.4 barely closed


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_heads=st.integers(1, 4), head_size=st.integers(2, 6), layers=st.integers(1, 3),
       ffn=st.integers(3, 19), data=st.data())
def test_property_convert_save_reload_equals_gated_eval(n_heads, head_size, layers, ffn, data):
    cfg = BertConfig(vocab_size=23, hidden_size=n_heads * head_size, num_hidden_layers=layers,
                     num_attention_heads=n_heads, intermediate_size=ffn, seq_length=6,
                     max_position_embeddings=8, type_vocab_size=2)
    log_a = np.array(data.draw(st.lists(st.lists(st.sampled_from(GATE_CHOICES), min_size=n_heads,
                                                 max_size=n_heads), min_size=layers, max_size=layers), "log_a"))
    seed = data.draw(st.integers(0, 3), "seed")
    inputs = as_tensors(random_inputs(cfg, seed=seed, pad_from=4))
    pruner = make_pruner()
    gated = pruner.apply(random_model(cfg, seed=seed))
    set_log_a(gated, log_a)
    gated.set_train(False)
    gates = gated.get_gate_values()
    gated_out = [o.asnumpy() for o in gated(*inputs)[:2]]
    with tempfile.TemporaryDirectory() as tmp:
        save_dir = Path(tmp) / "pruned"
        pruned = pruner.convert(gated, save_dir)
        again = load_pruned(save_dir)
        assert isinstance(again, BertModel) and again.config == pruned.config
        out = again(*inputs)
        assert max_diff(out[0], gated_out[0]) < 1e-5 and max_diff(out[1], gated_out[1]) < 1e-5
        heads = read_heads_to_prune(save_dir)
        from_config = {i: [h for h in range(n_heads) if h not in again.config.heads_of(i)] for i in range(layers)}
        from_gates = {i: [h for h in range(n_heads) if gates[i, h] == 0.0] for i in range(layers)}
        assert heads == from_config == from_gates
        assert safe_unpickle_heads((save_dir / FILES["heads_pkl"]).read_bytes()) == heads
        assert temp_leftovers(save_dir) == []
    del gated, pruned, again

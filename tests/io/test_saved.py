"""The pruned-model directory: clear errors for broken saves, nothing lost on interrupt, pickle safety."""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from lrp_prune import (BertConfig, BertModel, LRPPruneError, export_mindir, load_pruned, prune_heads,
                       read_heads_to_prune, save_pruned)
from lrp_prune.io.saved import FILES, safe_unpickle_heads
from lrp_prune.io.store import STORE_DIR, committed_files

from helpers import (CLOSED, OPEN, as_tensors, make_pruner, max_diff, random_inputs, random_model, set_log_a,
                     temp_leftovers, tiny_config)

TESTS_DIR = Path(__file__).resolve().parents[1]  # tests/: helpers.py, reference.py


def saved_dir(root: Path, layout=None) -> tuple[Path, BertModel, BertConfig]:
    """A pruned BertModel saved with save_pruned (no graph is compiled)."""
    cfg = tiny_config(num_hidden_layers=2)
    model = prune_heads(random_model(cfg), layout or {0: [1], 1: [0, 2]})
    return save_pruned(model, root / "pruned"), model, cfg


@pytest.mark.parametrize("missing", ["model", "config"])
def test_load_pruned_names_the_missing_file(tmp_path, missing):
    # a save of the first format (files only): the top-level file is the one read
    directory, _, _ = saved_dir(tmp_path / "first")
    shutil.rmtree(directory / STORE_DIR)
    path = directory / FILES[missing]
    path.unlink()
    with pytest.raises(LRPPruneError) as info:
        load_pruned(directory)
    message = str(info.value)
    assert message.startswith(f"{FILES[missing]}: expected the file")  # the thing and the expectation
    assert str(path) in message and "got no such file" in message  # what was received
    # a committed save reads the committed file (the top-level name is a link to it)
    directory, _, _ = saved_dir(tmp_path / "store")
    (directory / FILES[missing]).unlink()
    assert load_pruned(directory).config.heads_per_layer == (3, 2)
    path = committed_files(directory)[FILES[missing]]
    path.unlink()
    with pytest.raises(LRPPruneError) as info:
        load_pruned(directory)
    message = str(info.value)
    assert message.startswith(f"{FILES[missing]}: expected the file")
    assert str(path) in message and "got no such file" in message


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
    committed_files(directory)[FILES["heads_json"]].unlink()  # the committed JSON twin itself is gone
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
    visible = sorted(p.name for p in save_dir.iterdir() if not p.name.startswith("."))
    assert visible == sorted(FILES.values())  # beside them only the committed store, .lrp_prune/
    assert [p.name for p in save_dir.iterdir() if p.name.startswith(".")] == [STORE_DIR]
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
    import lrp_prune.io.saved as serialization
    from lrp_prune import HeadPruningFactory

    cfg = tiny_config(num_hidden_layers=2)
    pruner = HeadPruningFactory.get_pruner({{"prune_type": "LRP", "arch_type": "BERT",
                                             "config": {{"l0_penalty": 0.01}}}})
    gated = pruner.apply(random_model(cfg, seed=1))  # other weights, and every head kept
    import lrp_prune.io.store as store
    real = store._write
    calls = []

    def interrupting_write(path, source):
        calls.append(str(path))
        if len(calls) == 4:  # the checkpoints, the heads JSON, then the pickle: interrupted
            print("INTERRUPTING at", path, flush=True)
            raise KeyboardInterrupt
        return real(path, source)

    store._write = interrupting_write
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
    snapshot = {p.name: p.read_bytes() for p in save_dir.iterdir() if p.is_file()}
    script = root / "interrupt.py"
    script.write_text(_INTERRUPT_SCRIPT.format(tests=str(TESTS_DIR)), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), str(save_dir)], capture_output=True, text=True,
                          timeout=180, cwd=root, env=dict(os.environ, GLOG_v="3"))
    return {"dir": save_dir, "cfg": cfg, "inputs": inputs, "earlier": earlier, "snapshot": snapshot,
            "heads": {0: [1], 1: [0, 1, 2, 3]}, "proc": proc}


@pytest.mark.slow
def test_keyboard_interrupt_mid_save_leaves_no_temp_files(interrupted_save):
    proc, save_dir = interrupted_save["proc"], interrupted_save["dir"]
    assert "CONVERTING" in proc.stdout and "INTERRUPTING" in proc.stdout, proc.stderr[-2000:]
    assert "FINISHED" not in proc.stdout
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    assert temp_leftovers(save_dir) == []
    assert sorted(p.name for p in save_dir.iterdir() if p.is_file()) == sorted(interrupted_save["snapshot"])
    # the config, the commit point, still describes the earlier save
    assert (save_dir / FILES["config"]).read_bytes() == interrupted_save["snapshot"][FILES["config"]]


@pytest.mark.slow
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
    committed = committed_files(directory)
    (directory / FILES["heads_pkl"]).write_bytes(evil_pickle(marker))
    expected = {0: [1], 1: [0, 2]}
    # the JSON twin is what is read; the pickle is only checked against it, by the safe unpickler,
    # which refuses the code reference: an error naming both files, and no code ran
    for path in (directory, directory / FILES["heads_pkl"], directory / FILES["heads_json"]):
        with pytest.raises(LRPPruneError, match=r"heads_to_prune\.pkl.*pickle twin of .*heads_to_prune\.json"):
            read_heads_to_prune(path)
    assert not marker.exists()
    (directory / FILES["heads_pkl"]).unlink()  # with no pickle beside it, the twin alone is read
    committed[FILES["heads_pkl"]].unlink()
    assert read_heads_to_prune(directory / FILES["heads_json"]) == expected
    # without the twin the pickle goes through the safe unpickler, which refuses it
    (directory / FILES["heads_pkl"]).write_bytes(evil_pickle(marker))
    (directory / FILES["heads_json"]).unlink()
    with pytest.raises(LRPPruneError, match="refusing to load it"):
        read_heads_to_prune(directory / FILES["heads_pkl"])
    committed[FILES["heads_json"]].unlink()
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


def test_a_json_twin_that_disagrees_with_its_pickle_is_an_error_naming_both(tmp_path):
    directory, _, _ = saved_dir(tmp_path, {0: [1], 1: [0, 2]})
    (directory / FILES["heads_json"]).unlink()  # a hand edit: a new file, the pickle left as saved
    (directory / FILES["heads_json"]).write_text(json.dumps({"0": [1, 2], "1": [0, 2]}), encoding="utf-8")
    for path in (directory / FILES["heads_json"], directory / FILES["heads_pkl"]):
        with pytest.raises(LRPPruneError) as info:
            read_heads_to_prune(path)
        message = str(info.value)
        assert "heads_to_prune.json" in message and "heads_to_prune.pkl" in message and "say the same" in message


def test_a_failed_save_leaves_both_models_as_they_were(tmp_path, monkeypatch):
    cfg = tiny_config(num_hidden_layers=2)
    pruner = make_pruner()
    gated = pruner.apply(random_model(cfg, seed=4))
    set_log_a(gated, np.array([[OPEN, CLOSED, 0.4, OPEN], [CLOSED] * 4]))
    inputs = as_tensors(random_inputs(cfg))
    gated.set_train(False)
    before = gated(*inputs)[0].asnumpy()
    import lrp_prune.io.store as store

    def full_disk(path, source):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(store, "_write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        pruner.convert(gated, tmp_path / "save")
    monkeypatch.undo()
    assert gated.is_gated and max_diff(gated(*inputs)[0], before) == 0.0  # free space and call again:
    pruned = pruner.convert(gated, tmp_path / "save")
    assert max_diff(load_pruned(tmp_path / "save")(*inputs)[0], pruned(*inputs)[0]) == 0.0
    assert temp_leftovers(tmp_path / "save") == []

"""Crash-safe file sets: commit, conflicts, clean-up, and a save killed at every file-system operation."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lrp_prune.io.store as store
from helpers import REPO, as_tensors, max_diff, random_inputs, random_model, tiny_config
from lrp_prune import LRPPruneError, load_pruned, prune_heads, read_heads_to_prune, save_pruned
from lrp_prune.io.checkpoint import param_dict
from lrp_prune.io.store import STORE_DIR, commit_files, committed_files, has_store


def test_commit_publishes_links_and_a_verified_manifest(tmp_path):
    commit_files(tmp_path, {"a.bin": b"\x00\x01", "b.json": b"{}"})
    files = committed_files(tmp_path)
    assert sorted(files) == ["a.bin", "b.json"] and has_store(tmp_path)
    assert os.path.samefile(tmp_path / "a.bin", files["a.bin"])  # the top-level name is the committed file
    gens = [p.name for p in (tmp_path / STORE_DIR).iterdir() if p.name.startswith("gen-")]
    assert len(gens) == 1


def test_a_second_commit_replaces_the_whole_set_and_removes_the_old_generation(tmp_path):
    commit_files(tmp_path, {"a.bin": b"old", "extra.txt": b"x"}, ours=("a.bin", "extra.txt"))
    commit_files(tmp_path, {"a.bin": b"new"}, ours=("a.bin", "extra.txt"))
    assert (tmp_path / "a.bin").read_bytes() == b"new" and not (tmp_path / "extra.txt").exists()
    assert sorted(committed_files(tmp_path)) == ["a.bin"]
    assert len([p for p in (tmp_path / STORE_DIR).iterdir() if p.name.startswith("gen-")]) == 1


def test_files_the_library_did_not_write_are_refused_and_nothing_changes(tmp_path):
    (tmp_path / "summary.json").write_text("my own notes")
    with pytest.raises(LRPPruneError, match=r"summary.json.*did not write"):
        commit_files(tmp_path, {"summary.json": b"{}"})
    assert (tmp_path / "summary.json").read_text() == "my own notes" and not has_store(tmp_path)
    # an optional file of ours that a user replaced after the save is not deleted either
    other = tmp_path / "other"
    commit_files(other, {"a": b"1", "b": b"2"}, ours=("a", "b"))
    (other / "b").unlink()
    (other / "b").write_text("the user's")
    with pytest.raises(LRPPruneError, match=r"\['b'\]"):
        commit_files(other, {"a": b"3"}, ours=("a", "b"))
    assert (other / "b").read_text() == "the user's" and (other / "a").read_bytes() == b"1"


def test_a_file_edited_after_the_save_is_reported(tmp_path, caplog):
    commit_files(tmp_path, {"a": b"12345"})
    (tmp_path / "a").write_bytes(b"54321")  # the same size, other content, through the published name
    with caplog.at_level("WARNING", logger="lrp_prune.io.store"):
        files = committed_files(tmp_path)
    assert files["a"].read_bytes() == b"54321" and "changed after the save" in caplog.text


def test_staging_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    commit_files(tmp_path, {"a": b"1"})
    dead = tmp_path / STORE_DIR / "staging-999999-deadbeef"
    dead.mkdir()
    (dead / "a").write_bytes(b"partial" * 1000)
    legacy = tmp_path / ".staging.abc.tmp"  # the first format's staging folder
    legacy.mkdir()
    commit_files(tmp_path, {"a": b"2"})
    assert not dead.exists() and not legacy.exists()
    assert (tmp_path / "a").read_bytes() == b"2"


def test_every_operation_goes_through_the_hook(tmp_path, monkeypatch):
    ops = []
    monkeypatch.setattr(store, "_HOOK", lambda op, path: ops.append(op))
    commit_files(tmp_path, {"a": b"1", "b": b"2"})
    assert ops.count("replace") == 1 + 1 + 2  # staging -> gen, CURRENT, two published names
    assert ops.count("write") == 4 and ops.count("link") == 2 and ops[0] == "mkdir"


# ------------------------------------------------------------------------------------ the kill test
_CHILD = textwrap.dedent("""
    import os, signal, sys
    os.environ["GLOG_v"] = "3"
    sys.path.insert(0, {tests!r})
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    from helpers import make_pruner, random_model, tiny_config
    from lrp_prune import ModelGates
    import lrp_prune.io.store as store

    target, kill_at = sys.argv[1], int(sys.argv[2])
    count = [0]

    def hook(op, path):
        count[0] += 1
        if count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    pruner = make_pruner()
    gated = pruner.apply(random_model(tiny_config(num_hidden_layers=2), seed=2))
    ModelGates(gated).close([(0, 0), (0, 3)])  # the open heads' eval gates are exactly 1
    store._HOOK = hook
    pruner.convert(gated, target)  # a real save: convert(..., save_dir_path)
    print("OPS", count[0])
""")


def _old_and_new(tmp_path):
    cfg = tiny_config(num_hidden_layers=2)
    old = random_model(cfg, seed=1)
    old_gated = param_dict(old)
    prune_heads(old, {1: [1, 2]})
    new = prune_heads(random_model(cfg, seed=2), {0: [0, 3]})  # what the child saves
    template = tmp_path / "template"
    save_pruned(old, template, gated_params=old_gated)
    return cfg, old, new, template


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_save_killed_after_any_operation_leaves_the_old_or_the_new_save(tmp_path):
    cfg, old, new, template = _old_and_new(tmp_path)
    inputs = as_tensors(random_inputs(cfg))
    old.set_train(False)
    new.set_train(False)
    want_old, want_new = old(*inputs)[0].asnumpy(), new(*inputs)[0].asnumpy()
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests=str(REPO / "tests")), encoding="utf-8")
    env = dict(os.environ, GLOG_v="3")

    def run(k: int) -> tuple[int, subprocess.CompletedProcess]:
        target = tmp_path / f"kill_{k}"
        shutil.copytree(template, target, symlinks=True)
        proc = subprocess.run([sys.executable, str(script), str(target), str(k)], capture_output=True, text=True,
                              timeout=240, env=env)
        return k, proc

    _, full = run(0)  # no kill: count the operations of the save
    assert full.returncode == 0, full.stderr[-2000:]
    total = int(full.stdout.split("OPS")[1])
    assert total >= 50, f"only {total} file-system operations in a real save"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, range(1, total + 1)))
    outcomes = {}
    for k, proc in results:
        assert proc.returncode == -signal.SIGKILL, (k, proc.returncode, proc.stderr[-1000:])
        target = tmp_path / f"kill_{k}"
        loaded = load_pruned(target)
        loaded.set_train(False)
        got = loaded(*inputs)[0].asnumpy()
        if loaded.config.layer_heads == old.config.layer_heads:
            assert max_diff(got, want_old) == 0.0, k
            outcomes[k] = "old"
        else:
            assert loaded.config.layer_heads == new.config.layer_heads and max_diff(got, want_new) == 0.0, k
            outcomes[k] = "new"
        heads = read_heads_to_prune(target)
        assert heads == {i: [h for h in range(4) if h not in loaded.config.heads_of(i)] for i in range(2)}, k
        shutil.rmtree(target)
    # the kills straddle the commit: the old save up to it, the new one after it
    kinds = [outcomes[k] for k in sorted(outcomes)]
    first_new = kinds.index("new")
    assert set(kinds[:first_new]) == {"old"} and set(kinds[first_new:]) == {"new"}
    assert 10 < first_new < total


def test_the_next_save_after_a_kill_cleans_up_and_commits(tmp_path):
    cfg, old, new, template = _old_and_new(tmp_path)
    staging = template / STORE_DIR / f"staging-{2 ** 22 + 7}-cafe"
    staging.mkdir()
    (staging / "pruned_model.ckpt").write_bytes(os.urandom(4096))  # a killed save's leftovers
    save_pruned(new, template)
    assert not staging.exists()
    assert load_pruned(template).config.layer_heads == new.config.layer_heads
    assert not (template / "gated_model.ckpt").exists()  # the old save's optional file went with it
    assert np.isfinite(list(committed_files(template).values())[0].stat().st_size)

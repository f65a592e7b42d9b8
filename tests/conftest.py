"""Shared test set-up: quiet MindSpore, GRAPH_MODE by default, tests/ importable."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("GLOG_v", "3")
sys.path.insert(0, os.path.dirname(__file__))  # tests/reference.py, tests/helpers.py

import mindspore as ms  # noqa: E402
import pytest  # noqa: E402

ms.set_context(mode=ms.GRAPH_MODE)


@pytest.fixture(autouse=True)
def _graph_mode():
    """Every test starts in GRAPH_MODE, whatever an earlier test switched to."""
    ms.set_context(mode=ms.GRAPH_MODE)
    yield


@pytest.fixture(autouse=True)
def _private_control_cache(tmp_path_factory, monkeypatch):
    """Runs in this process cache their controls in a directory of the session, not the user's cache."""
    import lrp_prune.app.controls as controls

    cache = tmp_path_factory.getbasetemp() / "control_cache"
    monkeypatch.setattr(controls, "default_cache_dir", lambda: cache)


@pytest.fixture(scope="session")
def tiny_nli(tmp_path_factory):
    """A tiny GLUE-MNLI layout, vocab and random ModelZoo checkpoint (helpers.write_tiny_nli), shared."""
    from helpers import write_tiny_nli

    return write_tiny_nli(tmp_path_factory.mktemp("tiny_nli"), n_train=48, n_dev=16)

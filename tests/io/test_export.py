"""MindIR export: its input checks."""

from __future__ import annotations

import pytest
from lrp_prune import BertModel, LRPPruneError, export_mindir

from helpers import tiny_config


def test_sequence_longer_than_positions_refused_by_export_mindir():
    cfg = tiny_config(num_hidden_layers=1)
    model = BertModel(cfg, False)
    with pytest.raises(LRPPruneError) as info:
        export_mindir(model, "/nonexistent/never/written", batch_size=1, seq_length=cfg.max_position_embeddings + 1)
    assert str(info.value) == (f"seq_length: expected an integer in [1, {cfg.max_position_embeddings}], "
                               f"got {cfg.max_position_embeddings + 1}")

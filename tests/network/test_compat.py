"""The one private MindSpore API the library uses: fails loudly if a MindSpore upgrade moves it."""

from __future__ import annotations

import mindspore as ms
import numpy as np
from lrp_prune import prune_heads
from lrp_prune.network.compat import drop_compiled_graphs, graph_executor

from helpers import as_tensors, random_inputs, random_model, tiny_config


def test_the_private_graph_executor_is_where_the_library_expects_it():
    executor = graph_executor()  # ImportError naming the MindSpore version if it moved
    assert callable(getattr(executor, "del_net_res", None))


def test_dropping_graphs_makes_a_changed_cell_recompile():
    cfg = tiny_config()
    model = random_model(cfg)
    inputs = as_tensors(random_inputs(cfg))
    model(*inputs)
    assert any(cell.compile_cache for _, cell in model.cells_and_names())
    drop_compiled_graphs(model)
    assert not any(cell.compile_cache for _, cell in model.cells_and_names())
    prune_heads(model, {0: [0, 1]})  # changes the structure in place, then drops the graphs itself
    out = model(*inputs)[0].asnumpy()
    assert out.shape == (2, cfg.seq_length, cfg.hidden_size) and np.isfinite(out).all()


def test_only_compat_touches_the_private_executor():
    from pathlib import Path

    import lrp_prune

    root = Path(lrp_prune.__file__).parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "_cell_graph_executor" in p.read_text())
    assert users == ["network/compat.py"]
    assert ms.GRAPH_MODE is not None

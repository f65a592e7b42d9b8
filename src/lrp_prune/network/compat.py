"""The one place this library touches a private MindSpore API.

MindSpore caches a compiled graph per Cell object (keyed by phase, creation time and
id). When :func:`~lrp_prune.network.bert.refresh_cell` changes a Cell's structure in
place (``apply()`` installs gates, ``prune_heads()`` slices weights), the old graph
must be dropped or MindSpore silently keeps running it. The only way to drop it in
MindSpore 2.10 is the private executor below; ``tests/network/test_compat.py``
fails loudly if a MindSpore upgrade moves or renames it.
"""

from __future__ import annotations

from mindspore import nn

__all__ = ["graph_executor", "drop_compiled_graphs"]


def graph_executor():
    """MindSpore's private cell graph executor (``mindspore.graph.api._cell_graph_executor``).

    Raises:
        ImportError: naming the MindSpore version, if the private name moved.
    """
    try:
        from mindspore.graph.api import _cell_graph_executor
    except ImportError as err:  # pragma: no cover - only on an incompatible MindSpore
        import mindspore

        raise ImportError(f"lrp_prune needs mindspore.graph.api._cell_graph_executor (MindSpore 2.10); "
                          f"MindSpore {mindspore.__version__} does not have it: {err}") from err
    return _cell_graph_executor


def drop_compiled_graphs(root: nn.Cell) -> None:
    """Forget the compiled graphs of ``root`` and every sub-cell, so the next call recompiles."""
    executor = graph_executor()
    for _, cell in root.cells_and_names():
        cache = cell.compile_cache
        if cache:
            executor.del_net_res(cell, set(cache))
            cache.clear()

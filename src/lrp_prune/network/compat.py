"""The one place this library touches private MindSpore state.

MindSpore caches a compiled graph per Cell object (keyed by phase, creation time and
id). When :func:`~lrp_prune.network.bert.refresh_cell` changes a Cell's structure in
place (``apply()`` installs gates, ``prune_heads()`` slices weights), the old graph
must be dropped or MindSpore silently keeps running it. The only way to drop it in
MindSpore 2.10 is the private executor below.

``copy.deepcopy`` of a Cell copies its compile-cache keys too (they name the *original*'s
graph): when the copy is changed or garbage-collected, MindSpore deletes the original's
graph, which then silently recompiles on its next call. :func:`copy_cell` gives the copy
caches of its own. ``tests/network/test_compat.py`` fails loudly if a MindSpore upgrade
moves or renames any of this.
"""

from __future__ import annotations

import copy
import time

from mindspore import nn

__all__ = ["graph_executor", "drop_compiled_graphs", "copy_cell", "cpu_threads_configured"]


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


def copy_cell(root: nn.Cell) -> nn.Cell:
    """``copy.deepcopy(root)`` whose sub-cells own fresh (empty) compile caches.

    Raises:
        TypeError: a sub-cell holds something Python cannot copy (a generator, an open file,
            a lock); the caller turns it into a clear error.
    """
    from mindspore.graph.api import cells_compile_cache

    clone = copy.deepcopy(root)
    now = time.time_ns()
    for _, cell in clone.cells_and_names():
        object.__setattr__(cell, "_compile_cache", set())
        object.__setattr__(cell, "_phase_cache", {})
        object.__setattr__(cell, "_create_time", now)
        cells_compile_cache[id(cell)] = cell.compile_cache
    return clone


def cpu_threads_configured() -> bool:
    """Whether MindSpore's CPU kernel thread count was already set in this process (it can be set once)."""
    try:
        from mindspore._c_expression import RuntimeConf
    except ImportError:  # pragma: no cover - a MindSpore without it: assume set, never fail
        return True
    return bool(RuntimeConf.get_instance().is_op_threads_num_configured())

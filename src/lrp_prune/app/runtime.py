"""Where a run stands in the process: its rank, and a check that MindSpore is set up for it.

Library functions never change process-wide MindSpore state (mode, device, seed,
communication): those belong to the entry points, which call
:func:`lrp_prune.app.cli.configure_mindspore` (the CLI and the sample do; a Python caller of
:func:`~lrp_prune.app.pipeline.run_prune` does the same, or sets the context itself)::

    from lrp_prune.app.cli import configure_mindspore
    from lrp_prune.app.pipeline import run_prune
    from lrp_prune.app.recipes import DEMO

    options = DEMO.options(seed=3)
    runtime = configure_mindspore(options)  # GRAPH_MODE on the device, the seed, data parallelism
    report = run_prune(options, runtime)

:func:`current_runtime` only reads that state and says how to fix it when it is missing.

Example:
    >>> from lrp_prune.app.options import PruneOptions
    >>> current_runtime(PruneOptions()).rank   # the test session runs in GRAPH_MODE on CPU
    0
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import mindspore as ms
from mindspore import nn

from lrp_prune.app.options import PruneOptions
from lrp_prune.errors import LRPPruneError

__all__ = ["Runtime", "current_runtime"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """Where this process stands in a (possibly data-parallel) run.

    Attributes:
        rank: this process's rank (0 when not distributed).
        group: number of ranks.
        distributed: whether gradients are averaged over ranks.
    """

    rank: int = 0
    group: int = 1
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that evaluates, converts and writes."""
        return self.rank == 0

    def reducer(self, params: Any) -> nn.Cell | None:
        """A gradient reducer over the ranks (``None`` when not distributed)."""
        if not self.distributed:
            return None
        return nn.DistributedGradReducer(params, mean=True, degree=self.group)


def current_runtime(options: PruneOptions) -> Runtime:
    """The :class:`Runtime` of this process, checking that MindSpore is set up as ``options`` need.

    Raises:
        LRPPruneError: not in GRAPH_MODE, on another device than ``options.device_target``,
            or ``distribute`` without MindSpore's communication initialised; the message says
            to call :func:`lrp_prune.app.cli.configure_mindspore`.
    """
    fix = ("call lrp_prune.app.cli.configure_mindspore(options) first (it sets GRAPH_MODE, the device and "
           "the seed)")
    mode = ms.get_context("mode")
    if mode != ms.GRAPH_MODE:
        raise LRPPruneError(f"MindSpore mode: expected GRAPH_MODE (the flow compiles its steps), got "
                            f"{'PYNATIVE_MODE' if mode == ms.PYNATIVE_MODE else mode}; {fix}")
    device = ms.get_context("device_target")
    if device != options.device_target:
        raise LRPPruneError(f"MindSpore device_target: expected {options.device_target!r} (the options'), got "
                            f"{device!r}; {fix}")
    if not options.distribute:
        return Runtime()
    from mindspore import communication

    try:
        rank, group = communication.get_rank(), communication.get_group_size()
    except Exception:  # MindSpore raises RuntimeError/ValueError before init()
        raise LRPPruneError(f"distribute: expected MindSpore communication to be initialised, got none; {fix}") \
            from None
    logger.info("data parallel: rank %d of %d", rank, group)
    return Runtime(rank=rank, group=group, distributed=True)

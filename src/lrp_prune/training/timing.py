"""Latency: seconds per forward on a fixed input shape, and an interleaved A/B comparison."""

from __future__ import annotations

import time

import numpy as np
from mindspore import Tensor, nn

__all__ = ["measure_latency", "compare_latency"]


def measure_latency(model: nn.Cell, batch_size: int, seq_length: int, *, repeats: int = 5,
                    warmup: int = 1) -> list[float]:
    """Seconds per forward of ``model`` on a fixed ``(batch_size, seq_length)`` input (eval, graph)."""
    model.set_train(False)
    ids = Tensor(np.ones((batch_size, seq_length), np.int32))
    types = Tensor(np.zeros((batch_size, seq_length), np.int32))
    mask = Tensor(np.ones((batch_size, seq_length), np.int32))

    def run() -> None:
        out = model(ids, types, mask)
        (out[0] if isinstance(out, tuple) else out).asnumpy()

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def compare_latency(original: nn.Cell, pruned: nn.Cell, batch_size: int, seq_length: int,
                    repeats: int) -> dict[str, list[float]]:
    """Forward times of two models on one input shape, both compiled first, then measured in
    alternation (A, B, A, B, ...) so a noisy machine slows both alike.

    Returns ``{"unpruned_s": [...], "pruned_s": [...]}`` with ``repeats`` times each.
    """
    measure_latency(original, batch_size, seq_length, repeats=1)  # compile both first
    measure_latency(pruned, batch_size, seq_length, repeats=1)
    unpruned, pruned_times = [], []
    for _ in range(repeats):
        unpruned += measure_latency(original, batch_size, seq_length, repeats=1, warmup=0)
        pruned_times += measure_latency(pruned, batch_size, seq_length, repeats=1, warmup=0)
    return {"unpruned_s": unpruned, "pruned_s": pruned_times}

"""Sharding and batching of dicts of numpy arrays, with length buckets.

Everything here is plain numpy, so batches can be fed to any framework; sequence
arrays can be cut to a few fixed bucket lengths so a graph-mode model compiles once
per bucket.

Example:
    >>> arrays = {"x": np.arange(5), "y": np.arange(10).reshape(5, 2)}
    >>> [b["x"].tolist() for b in batches(arrays, 2)]
    [[0, 1], [2, 3]]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

import numpy as np

from lrp_prune.data.examples import TextExamples
from lrp_prune.errors import LRPPruneError, expect, is_int

__all__ = ["SEQUENCE_KEYS", "batches", "batch_stream", "num_batches", "shard"]

SEQUENCE_KEYS: tuple[str, ...] = ("input_ids", "token_type_ids", "input_mask")
"""Keys of (N, L) arrays that :func:`batches` cuts to a bucket length."""

_T = TypeVar("_T", TextExamples, Mapping)


def shard(data: _T, num_shards: int, shard_id: int) -> _T:
    """The part of ``data`` that data-parallel rank ``shard_id`` of ``num_shards`` reads.

    Strided: rank r takes examples r, r + num_shards, r + 2 * num_shards, ...; the
    last ``len % num_shards`` examples are dropped so every rank has
    ``len // num_shards`` examples (and so the same number of batches).

    Args:
        data: :class:`~lrp_prune.data.examples.TextExamples`, or a dict of arrays sharing their first dimension.
        num_shards: number of ranks (>= 1).
        shard_id: this rank, in [0, num_shards).

    Returns:
        Same type as ``data``.

    Raises:
        LRPPruneError: bad ``num_shards``/``shard_id``, or fewer examples than shards.

    Example:
        >>> shard({"x": np.arange(7)}, 3, 1)["x"].tolist()
        [1, 4]
    """
    expect(is_int(num_shards) and num_shards >= 1, "num_shards", "an int >= 1", num_shards)
    expect(is_int(shard_id) and 0 <= shard_id < num_shards, "shard_id",
           f"an int in [0, {num_shards})", shard_id)
    n = len(data) if isinstance(data, TextExamples) else _check_arrays(data)
    per_shard = n // num_shards
    expect(per_shard >= 1, "num_shards", f"at most the dataset size {n}", num_shards)
    idx = shard_id + num_shards * np.arange(per_shard)  # (n // num_shards,)
    if isinstance(data, TextExamples):
        return data.subset(idx)
    return {key: np.asarray(value)[idx] for key, value in data.items()}


def _check_arrays(arrays: Mapping[str, np.ndarray]) -> int:
    """Validate a non-empty dict of arrays sharing their first dimension N >= 1; return N."""
    expect(isinstance(arrays, Mapping) and len(arrays) > 0, "arrays",
           "a non-empty dict of numpy arrays", arrays)
    sizes = {key: (np.shape(value)[0] if np.ndim(value) >= 1 else None)
             for key, value in arrays.items()}
    expect(len(set(sizes.values())) == 1 and None not in sizes.values(), "arrays",
           "arrays sharing their first dimension", sizes)
    n = next(iter(sizes.values()))
    expect(n >= 1, "arrays", "at least one example", n)
    return int(n)


def _check_buckets(
    arrays: Mapping[str, np.ndarray], buckets: Sequence[int], seq_keys: Sequence[str]
) -> np.ndarray:
    """Validate buckets against the arrays; return them as an int64 array."""
    values = list(buckets) if not isinstance(buckets, (str, bytes)) else [buckets]
    expect(len(values) >= 1 and all(is_int(b) and b >= 1 for b in values)
           and all(a < b for a, b in zip(values, values[1:])), "buckets",
           "a non-empty, strictly increasing sequence of ints >= 1", buckets)
    expect("lengths" in arrays, "arrays", "a 'lengths' key when buckets are given",
           sorted(arrays))
    bounds = np.asarray(values, dtype=np.int64)
    for key in seq_keys:
        if key in arrays:
            shape = np.shape(arrays[key])
            expect(len(shape) >= 2 and shape[1] >= bounds[-1], f"arrays[{key!r}]",
                   f"shape (N, L) with L >= the largest bucket {int(bounds[-1])}", shape)
    longest = int(np.max(arrays["lengths"]))
    expect(longest <= bounds[-1], "buckets",
           f"a largest bucket >= the longest example ({longest} tokens)", buckets)
    return bounds


def _plan(
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    shuffle: bool,
    seed: int,
    drop_remainder: bool,
    buckets: Sequence[int] | None,
    seq_keys: Sequence[str],
) -> list[tuple[np.ndarray, int | None]]:
    """Validate and return the batches as (example indices, bucket length or None)."""
    n = _check_arrays(arrays)
    expect(is_int(batch_size) and batch_size >= 1, "batch_size", "an int >= 1", batch_size)
    if drop_remainder:
        expect(batch_size <= n, "batch_size",
               f"at most the dataset size {n} when drop_remainder=True", batch_size)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n) if shuffle else np.arange(n)  # (N,)

    def chunks(idx: np.ndarray) -> list[np.ndarray]:
        stop = len(idx) - len(idx) % batch_size if drop_remainder else len(idx)
        return [idx[i : i + batch_size] for i in range(0, stop, batch_size)]

    if buckets is None:
        return [(idx, None) for idx in chunks(order)]
    bounds = _check_buckets(arrays, buckets, seq_keys)
    which = np.searchsorted(bounds, np.asarray(arrays["lengths"])[order], side="left")  # (N,)
    plan = [(idx, int(bound)) for b, bound in enumerate(bounds) for idx in chunks(order[which == b])]
    if not plan:
        sizes = {int(bound): int(np.sum(which == b)) for b, bound in enumerate(bounds)}
        raise LRPPruneError(
            f"batch_size: expected at most the examples of some bucket (dataset size {n}, "
            f"per bucket {sizes}), got {batch_size}"
        )
    if shuffle:
        plan = [plan[i] for i in rng.permutation(len(plan))]
    return plan


def num_batches(
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = True,
    buckets: Sequence[int] | None = None,
    seq_keys: Sequence[str] = SEQUENCE_KEYS,
) -> int:
    """How many batches :func:`batches` yields with the same arguments.

    ``shuffle`` and ``seed`` do not change the count; they are accepted so the same
    keyword dict can be passed to both functions.

    Example:
        >>> num_batches({"x": np.arange(10)}, 4), num_batches({"x": np.arange(10)}, 4,
        ...                                                   drop_remainder=False)
        (2, 3)
    """
    return len(_plan(arrays, batch_size, False, seed, drop_remainder, buckets, seq_keys))


def batches(
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = True,
    buckets: Sequence[int] | None = None,
    seq_keys: Sequence[str] = SEQUENCE_KEYS,
    pad_last: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Iterate over batches of a dict of arrays that share their first dimension N.

    Without ``buckets`` every batch has ``batch_size`` rows (the last may be smaller
    when ``drop_remainder=False``). With ``buckets``, e.g. ``(32, 48, 64)``, each
    example goes to the smallest bucket >= its ``arrays["lengths"]``, a batch holds
    examples of one bucket only, and the arrays named in ``seq_keys`` are cut from
    (N, L) to (batch, bucket); with ``drop_remainder`` each bucket drops its own
    remainder. So there are at most ``len(buckets)`` shapes, one graph compile each.

    Arguments are checked when this is called, not at the first ``next``. To map
    results back to examples, add ``"index": np.arange(N)`` to ``arrays``.

    Args:
        arrays: e.g. the output of ``PairTokenizer.encode`` plus ``"labels"``.
        batch_size: rows per batch (>= 1).
        shuffle: shuffle examples (and the order of bucketed batches).
        seed: seed of the shuffle; pass e.g. ``base_seed + epoch`` per epoch.
        drop_remainder: drop incomplete batches, so every batch has one shape.
        buckets: strictly increasing sequence lengths; the largest must be >= the
            longest example and <= L. Needs a ``"lengths"`` array.
        seq_keys: keys of arrays with a sequence axis 1 to cut to the bucket.
        pad_last: with ``drop_remainder=False``, fill incomplete batches up to
            ``batch_size`` by repeating their first row, and add a bool ``"valid"``
            array marking the real rows (evaluation keeps one shape per bucket).

    Yields:
        Dicts with the keys of ``arrays``; each value is a fresh contiguous array.

    Raises:
        LRPPruneError: bad arguments; ``batch_size`` larger than the dataset with
            ``drop_remainder``; no complete batch in any bucket.

    Example:
        >>> arrays = {"input_ids": np.ones((4, 8), np.int32), "lengths": np.array([3, 7, 4, 8])}
        >>> [(b["input_ids"].shape, b["lengths"].tolist()) for b in batches(arrays, 2, buckets=(4, 8))]
        [((2, 4), [3, 4]), ((2, 8), [7, 8])]
        >>> [b["valid"].tolist() for b in batches({"x": np.arange(3)}, 2, drop_remainder=False, pad_last=True)]
        [[True, True], [True, False]]
    """
    plan = _plan(arrays, batch_size, shuffle, seed, drop_remainder, buckets, seq_keys)
    return _materialise(arrays, plan, batch_size, seq_keys, pad_last)


def _materialise(arrays: Mapping[str, np.ndarray], plan: list[tuple[np.ndarray, int | None]], batch_size: int,
                 seq_keys: Sequence[str], pad_last: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Build the batches of ``plan`` (example indices, bucket length) one at a time."""
    cut = frozenset(seq_keys)
    views = {key: np.asarray(value) for key, value in arrays.items()}

    def generate() -> Iterator[dict[str, np.ndarray]]:
        for idx, bound in plan:
            batch = {}
            if pad_last:
                real = len(idx)
                idx = np.concatenate([idx, np.repeat(idx[:1], batch_size - real)])  # (batch_size,)
                batch["valid"] = np.arange(batch_size) < real
            for key, value in views.items():
                rows = value[idx]  # (B, ...), a copy
                if bound is not None and key in cut:
                    rows = np.ascontiguousarray(rows[:, :bound])  # (B, bucket, ...)
                batch[key] = rows
            yield batch

    return generate()


def batch_stream(arrays: Mapping[str, np.ndarray], batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 buckets: Sequence[int] | None = None, start: int = 0,
                 seq_keys: Sequence[str] = SEQUENCE_KEYS) -> Iterator[dict[str, np.ndarray]]:
    """An endless stream of training batches, epoch after epoch, starting at batch ``start``.

    Epoch ``e`` is ``batches(arrays, batch_size, shuffle=shuffle, seed=seed + e,
    drop_remainder=True, buckets=buckets)``; the stream is the concatenation of the epochs, and
    ``start`` skips its first batches without building them. So phases that share a stream
    continue it instead of replaying it: the gated phase and its control both start where the
    fine-tuning stopped (``start=finetune_steps``) and see the same batches in the same order.

    Example:
        >>> arrays = {"x": np.arange(6)}
        >>> s = batch_stream(arrays, 2, shuffle=False, start=2)
        >>> [next(s)["x"].tolist() for _ in range(3)]   # batch 2, then the next epoch's first two
        [[4, 5], [0, 1], [2, 3]]
    """
    expect(is_int(start) and start >= 0, "start", "an integer >= 0", start)
    per_epoch = num_batches(arrays, batch_size, drop_remainder=True, buckets=buckets, seq_keys=seq_keys)
    epoch, skip = divmod(int(start), per_epoch)
    while True:
        plan = _plan(arrays, batch_size, shuffle, seed + epoch, True, buckets, seq_keys)
        yield from _materialise(arrays, plan[skip:], batch_size, seq_keys)
        epoch, skip = epoch + 1, 0

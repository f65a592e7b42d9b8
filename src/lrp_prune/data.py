"""NLI data: reading SNLI / GLUE MNLI, grouped splits, sharding and batching.

Labels follow GLUE's ``MnliProcessor`` order for both tasks: contradiction = 0,
entailment = 1, neutral = 2. Everything here is plain numpy, so batches can be fed
to any framework; sequence arrays can be cut to a few fixed bucket lengths so a
graph-mode model compiles once per bucket.

Example:
    >>> ex = NLIExamples(("p1", "p1", "p2"), ("h1", "h2", "h3"), [1, 0, 2], ("g1", "g1", "g2"))
    >>> len(ex), ex.subset([2]).hypotheses
    (3, ('h3',))
    >>> arrays = {"x": np.arange(5), "y": np.arange(10).reshape(5, 2)}
    >>> [b["x"].tolist() for b in batches(arrays, 2)]
    [[0, 1], [2, 3]]
"""

from __future__ import annotations

import collections
import csv
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from lrp_prune.errors import LRPPruneError, expect

__all__ = [
    "NLI_LABELS",
    "LABEL_TO_ID",
    "SEQUENCE_KEYS",
    "TASKS",
    "NLIExamples",
    "batches",
    "grouped_split",
    "load_task",
    "num_batches",
    "read_glue_mnli_tsv",
    "read_snli_jsonl",
    "shard",
]

logger = logging.getLogger(__name__)

NLI_LABELS: tuple[str, ...] = ("contradiction", "entailment", "neutral")
"""Class names by label id (GLUE ``MnliProcessor.get_labels`` order), MNLI and SNLI alike."""

LABEL_TO_ID: Mapping[str, int] = {name: i for i, name in enumerate(NLI_LABELS)}

SEQUENCE_KEYS: tuple[str, ...] = ("input_ids", "token_type_ids", "input_mask")
"""Keys of (N, L) arrays that :func:`batches` cuts to a bucket length."""

TASKS: tuple[str, ...] = ("mnli", "snli")
"""Task names known to :func:`load_task`."""

SNLI_TRAIN_FILES = ("snli_1.0_train_subset.jsonl", "snli_1.0_train.jsonl")
SNLI_DEV_FILE = "snli_1.0_dev.jsonl"
SNLI_TEST_FILE = "snli_1.0_test.jsonl"

_T = TypeVar("_T", "NLIExamples", Mapping)


@dataclass(frozen=True, eq=False)
class NLIExamples:
    """Premise/hypothesis pairs with label ids and grouping keys (all of length N).

    Attributes:
        premises: N first sentences.
        hypotheses: N second sentences.
        labels: (N,) int32 ids into :data:`NLI_LABELS`, read-only.
        groups: N keys of the premise each pair belongs to (SNLI ``captionID``,
            MNLI ``promptID``), used by :func:`grouped_split`.
    """

    premises: tuple[str, ...]
    hypotheses: tuple[str, ...]
    labels: np.ndarray
    groups: tuple[str, ...]

    def __post_init__(self) -> None:
        premises, hypotheses, groups = tuple(self.premises), tuple(self.hypotheses), tuple(self.groups)
        labels = np.array(self.labels, dtype=np.int32).reshape(-1)  # (N,), a private copy
        n = len(premises)
        for field, value in (("hypotheses", hypotheses), ("labels", labels), ("groups", groups)):
            expect(len(value) == n, f"NLIExamples.{field}", f"{n} items (as many as premises)",
                   len(value))
        bad = labels[(labels < 0) | (labels >= len(NLI_LABELS))]
        expect(bad.size == 0, "NLIExamples.labels", f"ids in [0, {len(NLI_LABELS)})",
               bad[:5].tolist())
        labels.setflags(write=False)
        object.__setattr__(self, "premises", premises)
        object.__setattr__(self, "hypotheses", hypotheses)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "groups", groups)

    def __len__(self) -> int:
        return len(self.premises)

    def __repr__(self) -> str:
        return f"NLIExamples(n={len(self)}, labels={self.label_counts()})"

    def subset(self, indices: Sequence[int] | np.ndarray) -> NLIExamples:
        """The examples at ``indices`` (ints, in that order) or where a bool mask is True.

        Example:
            >>> ex = NLIExamples(("a", "b"), ("c", "d"), [0, 1], ("g", "h"))
            >>> ex.subset([1, 0]).premises, ex.subset(np.array([False, True])).premises
            (('b', 'a'), ('b',))
        """
        idx = _as_indices(indices, len(self))
        return NLIExamples(
            premises=tuple(self.premises[i] for i in idx),
            hypotheses=tuple(self.hypotheses[i] for i in idx),
            labels=self.labels[idx],
            groups=tuple(self.groups[i] for i in idx),
        )

    def label_counts(self) -> dict[str, int]:
        """Number of examples per label name.

        Example:
            >>> NLIExamples(("a", "b"), ("c", "d"), [2, 2], ("g", "h")).label_counts()
            {'contradiction': 0, 'entailment': 0, 'neutral': 2}
        """
        counts = np.bincount(self.labels, minlength=len(NLI_LABELS))
        return {name: int(c) for name, c in zip(NLI_LABELS, counts)}


def _as_indices(indices: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """Validate ints in [0, n) or a bool mask of length n; return an int64 index array."""
    idx = np.asarray(indices)
    if idx.dtype == bool:
        expect(idx.shape == (n,), "indices", f"a bool mask of shape ({n},)", idx.shape)
        return np.flatnonzero(idx)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    expect(idx.ndim == 1 and np.issubdtype(idx.dtype, np.integer), "indices",
           "a 1-D sequence of ints or a bool mask", indices)
    bad = idx[(idx < 0) | (idx >= n)]
    expect(bad.size == 0, "indices", f"ints in [0, {n})", bad[:5].tolist())
    return idx.astype(np.int64)


# ------------------------------------------------------------------------- reading


def _examples_or_raise(
    path: Path, rows: list[tuple[str, str, int, str]], dropped: collections.Counter[str]
) -> NLIExamples:
    """Log what was kept and dropped; refuse an empty result."""
    if dropped:
        logger.info("%s: kept %d examples, dropped %d: %s", path, len(rows),
                    sum(dropped.values()), dict(dropped))
    else:
        logger.info("%s: kept %d examples", path, len(rows))
    if not rows:
        raise LRPPruneError(
            f"{path}: expected at least one example labelled {list(NLI_LABELS)}, got none "
            f"(dropped {dict(dropped)})"
        )
    premises, hypotheses, labels, groups = zip(*rows)
    return NLIExamples(premises, hypotheses, np.array(labels, dtype=np.int32), groups)


def _label_id(raw: str, dropped: collections.Counter[str]) -> int | None:
    """The id of a gold label, or None (counted in ``dropped``) if it has none."""
    label = raw.strip()
    if label in LABEL_TO_ID:
        return LABEL_TO_ID[label]
    dropped["no gold label ('-')" if label == "-" else f"unknown label {label!r}"] += 1
    return None


def _existing_file(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    expect(path.is_file(), what, "an existing file", str(path))
    return path


def read_snli_jsonl(path: str | os.PathLike[str], limit: int | None = None) -> NLIExamples:
    """Read an SNLI 1.0 jsonl file (keys ``gold_label``, ``sentence1``, ``sentence2``, ``captionID``).

    Pairs whose ``gold_label`` is ``"-"`` (no annotator majority) or not in
    :data:`NLI_LABELS` are dropped; the counts are logged at INFO. The group is the
    ``captionID`` (the premise's image caption), or the premise text if absent.

    Args:
        path: the jsonl file.
        limit: stop after this many kept examples (None: all).

    Returns:
        The labelled examples, in file order.

    Raises:
        LRPPruneError: missing file, invalid JSON or missing keys (naming the line),
            bad ``limit``, or no labelled example.
    """
    path = _existing_file(path, "SNLI file")
    expect(limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1),
           "limit", "None or an int >= 1", limit)
    required = ("gold_label", "sentence1", "sentence2")
    rows: list[tuple[str, str, int, str]] = []
    dropped: collections.Counter[str] = collections.Counter()
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise LRPPruneError(
                    f"{path}:{line_no}: expected a JSON object, got invalid JSON ({err})"
                ) from None
            expect(isinstance(record, dict), f"{path}:{line_no}", "a JSON object", record)
            missing = [k for k in required if k not in record]
            if missing:
                raise LRPPruneError(
                    f"{path}:{line_no}: expected keys {list(required)}, missing {missing} "
                    f"(found {sorted(record)})"
                )
            label = _label_id(str(record["gold_label"]), dropped)
            if label is None:
                continue
            premise, hypothesis = str(record["sentence1"]), str(record["sentence2"])
            rows.append((premise, hypothesis, label, str(record.get("captionID", premise))))
    return _examples_or_raise(path, rows, dropped)


def read_glue_mnli_tsv(path: str | os.PathLike[str]) -> NLIExamples:
    """Read a GLUE MNLI tsv file (``train.tsv``, ``dev_matched.tsv``, ``dev_mismatched.tsv``).

    Columns are found by header name: ``sentence1``, ``sentence2``, ``gold_label``;
    the group is ``promptID`` (else ``pairID``, else the premise text). Quoting is
    off (``csv.QUOTE_NONE``): GLUE's files contain unbalanced quotes. Rows with an
    unknown label or too few fields are dropped and counted.

    Args:
        path: the tsv file, with a header row.

    Returns:
        The labelled examples, in file order.

    Raises:
        LRPPruneError: missing file, empty file, missing columns (naming the
            expected and the found columns), or no labelled example.
    """
    path = _existing_file(path, "MNLI file")
    required = ("sentence1", "sentence2", "gold_label")
    rows: list[tuple[str, str, int, str]] = []
    dropped: collections.Counter[str] = collections.Counter()
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise LRPPruneError(f"{path}: expected a header row, got an empty file") from None
        missing = [name for name in required if name not in header]
        if missing:
            raise LRPPruneError(
                f"columns of {path}: expected {list(required)}, missing {missing}; "
                f"found {header}"
            )
        # GLUE's train.tsv has label1 then gold_label last; dev has label1..label5 then gold_label.
        col_a, col_b, col_label = (header.index(name) for name in required)
        col_group = next((header.index(n) for n in ("promptID", "pairID") if n in header), col_a)
        width = max(col_a, col_b, col_label, col_group) + 1
        try:
            for fields in reader:
                if not fields or fields == [""]:
                    continue
                if len(fields) < width:
                    dropped["too few fields"] += 1
                    continue
                label = _label_id(fields[col_label], dropped)
                if label is not None:
                    rows.append((fields[col_a], fields[col_b], label, fields[col_group]))
        except csv.Error as err:
            raise LRPPruneError(
                f"{path}:{reader.line_num}: expected tab-separated fields, got {err}"
            ) from None
    return _examples_or_raise(path, rows, dropped)


def load_task(task: str, data_dir: str | os.PathLike[str]) -> dict[str, NLIExamples]:
    """Read the splits of an NLI task from a directory.

    - ``"mnli"``: GLUE layout, ``train.tsv`` -> ``"train"``, ``dev_matched.tsv`` ->
      ``"dev_matched"``, ``dev_mismatched.tsv`` -> ``"dev_mismatched"`` (optional).
    - ``"snli"``: ``snli_1.0_train_subset.jsonl`` (or the full ``snli_1.0_train.jsonl``)
      -> ``"train"``, ``snli_1.0_test.jsonl`` -> ``"test"``, ``snli_1.0_dev.jsonl``
      -> ``"dev"`` (optional). SNLI as fetched by ``lrp_prune.assets.fetch_snli``
      has no dev split: carve one with :func:`grouped_split`.

    Args:
        task: ``"mnli"`` or ``"snli"`` (case-insensitive).
        data_dir: the directory holding the files.

    Returns:
        Split name -> examples.

    Raises:
        LRPPruneError: unknown task (listing the known ones), missing directory or
            required file (naming the path), or a file that fails to read.
    """
    expect(isinstance(task, str) and task.lower() in TASKS, "task", f"one of {list(TASKS)}", task)
    data_dir = Path(data_dir)
    expect(data_dir.is_dir(), "data_dir", "an existing directory", str(data_dir))
    splits: dict[str, NLIExamples] = {}
    if task.lower() == "mnli":
        splits["train"] = read_glue_mnli_tsv(data_dir / "train.tsv")
        splits["dev_matched"] = read_glue_mnli_tsv(data_dir / "dev_matched.tsv")
        if (data_dir / "dev_mismatched.tsv").is_file():
            splits["dev_mismatched"] = read_glue_mnli_tsv(data_dir / "dev_mismatched.tsv")
        return splits
    train = next((data_dir / f for f in SNLI_TRAIN_FILES if (data_dir / f).is_file()), None)
    expect(train is not None, "SNLI train file",
           f"one of {list(SNLI_TRAIN_FILES)} in {data_dir}", sorted(os.listdir(data_dir)))
    splits["train"] = read_snli_jsonl(train)
    if (data_dir / SNLI_DEV_FILE).is_file():
        splits["dev"] = read_snli_jsonl(data_dir / SNLI_DEV_FILE)
    splits["test"] = read_snli_jsonl(data_dir / SNLI_TEST_FILE)
    return splits


# ------------------------------------------------------------------ splits, shards


def _premise_components(examples: NLIExamples) -> np.ndarray:
    """(N,) int component ids: examples sharing a group *or* a premise text are joined.

    SNLI has a few premise texts under two captionIDs; joining by both keys keeps
    every premise on one side of a split.
    """
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(key: tuple[str, str]) -> tuple[str, str]:
        root = key
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[key] != root:  # path compression
            parent[key], key = root, parent[key]
        return root

    for group, premise in zip(examples.groups, examples.premises):
        a, b = find(("g", group)), find(("p", premise))
        if a != b:
            parent[b] = a
    ids: dict[tuple[str, str], int] = {}
    return np.array([ids.setdefault(find(("g", g)), len(ids)) for g in examples.groups],
                    dtype=np.int64)


def grouped_split(
    examples: NLIExamples, dev_fraction: float, seed: int
) -> tuple[NLIExamples, NLIExamples]:
    """Split into (train, dev) by premise so that no premise is on both sides.

    Examples sharing a group key or a premise text stay together. A seeded random
    ``dev_fraction`` of those premise groups (at least one, never all) forms dev;
    both sides keep the original order.

    Args:
        examples: what to split; needs at least two premise groups.
        dev_fraction: fraction of premise groups for dev, in (0, 1).
        seed: random seed; the same seed gives the same split.

    Returns:
        (train, dev).

    Raises:
        LRPPruneError: bad ``dev_fraction``, or fewer than two premise groups.

    Example:
        >>> ex = NLIExamples(("a", "a", "b", "c"), ("1", "2", "3", "4"), [0, 1, 2, 0],
        ...                  ("ga", "ga", "gb", "gc"))
        >>> train, dev = grouped_split(ex, 0.34, seed=0)
        >>> len(train) + len(dev), set(train.premises) & set(dev.premises)
        (4, set())
    """
    expect(isinstance(dev_fraction, (int, float)) and not isinstance(dev_fraction, bool)
           and 0.0 < dev_fraction < 1.0, "dev_fraction", "a number in (0, 1)", dev_fraction)
    component = _premise_components(examples)  # (N,)
    n_groups = int(component.max()) + 1 if len(component) else 0
    expect(n_groups >= 2, "examples", "at least 2 premise groups to split", n_groups)
    n_dev = min(max(round(dev_fraction * n_groups), 1), n_groups - 1)
    dev_groups = np.random.default_rng(seed).permutation(n_groups)[:n_dev]
    is_dev = np.isin(component, dev_groups)  # (N,) bool
    train, dev = examples.subset(~is_dev), examples.subset(is_dev)
    logger.info("grouped split (seed %s): %d premise groups -> train %d examples, dev %d "
                "examples (%d groups)", seed, n_groups, len(train), len(dev), n_dev)
    return train, dev


def shard(data: _T, num_shards: int, shard_id: int) -> _T:
    """The part of ``data`` that data-parallel rank ``shard_id`` of ``num_shards`` reads.

    Strided: rank r takes examples r, r + num_shards, r + 2 * num_shards, ...; the
    last ``len % num_shards`` examples are dropped so every rank has
    ``len // num_shards`` examples (and so the same number of batches).

    Args:
        data: :class:`NLIExamples`, or a dict of arrays sharing their first dimension.
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
    expect(_is_int(num_shards) and num_shards >= 1, "num_shards", "an int >= 1", num_shards)
    expect(_is_int(shard_id) and 0 <= shard_id < num_shards, "shard_id",
           f"an int in [0, {num_shards})", shard_id)
    n = len(data) if isinstance(data, NLIExamples) else _check_arrays(data)
    per_shard = n // num_shards
    expect(per_shard >= 1, "num_shards", f"at most the dataset size {n}", num_shards)
    idx = shard_id + num_shards * np.arange(per_shard)  # (n // num_shards,)
    if isinstance(data, NLIExamples):
        return data.subset(idx)
    return {key: np.asarray(value)[idx] for key, value in data.items()}


# ------------------------------------------------------------------------ batching


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


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
    expect(len(values) >= 1 and all(_is_int(b) and b >= 1 for b in values)
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
    expect(_is_int(batch_size) and batch_size >= 1, "batch_size", "an int >= 1", batch_size)
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

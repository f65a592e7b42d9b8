"""Labelled sentence pairs and premise-grouped splits.

Labels follow GLUE's ``MnliProcessor`` order for both NLI tasks: contradiction = 0,
entailment = 1, neutral = 2.

Example:
    >>> ex = NLIExamples(("p1", "p1", "p2"), ("h1", "h2", "h3"), [1, 0, 2], ("g1", "g1", "g2"))
    >>> len(ex), ex.subset([2]).hypotheses
    (3, ('h3',))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np

from lrp_prune.errors import check_fraction, expect

__all__ = ["NLI_LABELS", "LABEL_TO_ID", "NLIExamples", "grouped_split"]

logger = logging.getLogger(__name__)

NLI_LABELS: tuple[str, ...] = ("contradiction", "entailment", "neutral")
"""Class names by label id (GLUE ``MnliProcessor.get_labels`` order), MNLI and SNLI alike."""

LABEL_TO_ID: Mapping[str, int] = {name: i for i, name in enumerate(NLI_LABELS)}



@dataclass(frozen=True, eq=False)
class NLIExamples:
    """Premise/hypothesis pairs with label ids and grouping keys (all of length N).

    Attributes:
        premises: N first sentences.
        hypotheses: N second sentences.
        labels: (N,) int32 ids into :data:`NLI_LABELS`, read-only.
        groups: N keys of the premise each pair belongs to (SNLI ``captionID``,
            MNLI ``promptID``), used by :func:`grouped_split`.
        skipped: rows the reader skipped, counted by reason (``{"no gold label ('-')": 785}``);
            only the examples a reader returns carry it (a subset starts empty).
    """

    premises: tuple[str, ...]
    hypotheses: tuple[str, ...]
    labels: np.ndarray
    groups: tuple[str, ...]
    skipped: Mapping[str, int] = dataclass_field(default_factory=dict)

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
        object.__setattr__(self, "skipped", dict(self.skipped))

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
    check_fraction(dev_fraction, "dev_fraction", expected="a number in (0, 1)")
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

"""Labelled texts (single sentences or pairs) of any classification task, and grouped splits.

:class:`TextExamples` holds N examples: one or two texts each, an integer label into
``label_names``, and a group key (examples of one group never straddle a held-out split:
an NLI premise, a review's product, ...). :class:`NLIExamples` builds one with the NLI
label order of GLUE's ``MnliProcessor`` (contradiction = 0, entailment = 1, neutral = 2),
which MNLI and SNLI share.

Example:
    >>> ex = NLIExamples(("p1", "p1", "p2"), ("h1", "h2", "h3"), [1, 0, 2], ("g1", "g1", "g2"))
    >>> len(ex), ex.subset([2]).hypotheses, ex.label_names[1]
    (3, ('h3',), 'entailment')
    >>> reviews = TextExamples(("great", "dull"), None, [1, 0], label_names=("negative", "positive"))
    >>> reviews.is_pair, reviews.label_counts()
    (False, {'negative': 1, 'positive': 1})
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np

from lrp_prune.errors import check_fraction, expect

__all__ = ["NLI_LABELS", "LABEL_TO_ID", "TextExamples", "NLIExamples", "grouped_split"]

logger = logging.getLogger(__name__)

NLI_LABELS: tuple[str, ...] = ("contradiction", "entailment", "neutral")
"""Class names by label id (GLUE ``MnliProcessor.get_labels`` order), MNLI and SNLI alike."""

LABEL_TO_ID: Mapping[str, int] = {name: i for i, name in enumerate(NLI_LABELS)}


@dataclass(frozen=True, eq=False)
class TextExamples:
    """N labelled examples of one text or a pair of texts.

    Attributes:
        first: N first texts (a sentence, a review, an NLI premise).
        second: N second texts (an NLI hypothesis), or ``None`` for single-text tasks.
        labels: (N,) int32 ids into ``label_names``, read-only.
        groups: N keys of the group each example belongs to (default: its first text), used by
            :func:`grouped_split`.
        label_names: class names by id (at least 2).
        skipped: rows the reader skipped, counted by reason; only the examples a reader returns
            carry it (a subset starts empty).
    """

    first: tuple[str, ...]
    second: tuple[str, ...] | None
    labels: np.ndarray
    groups: tuple[str, ...] | None = None
    label_names: tuple[str, ...] = NLI_LABELS
    skipped: Mapping[str, int] = dataclass_field(default_factory=dict)
    kind: str = dataclass_field(default="TextExamples", repr=False, compare=False)  # how errors name it

    def __post_init__(self) -> None:
        first = tuple(self.first)
        second = None if self.second is None else tuple(self.second)
        groups = first if self.groups is None else tuple(self.groups)
        labels = np.array(self.labels, dtype=np.int32).reshape(-1)  # (N,), a private copy
        names = tuple(str(name) for name in self.label_names)
        expect(len(names) >= 2 and len(set(names)) == len(names), "label_names",
               "at least two distinct class names", names)
        n = len(first)
        for field, value in (("second", second), ("labels", labels), ("groups", groups)):
            if value is not None:
                expect(len(value) == n, f"{self.kind}.{field}", f"{n} items (as many as premises)"
                       if self.kind == "NLIExamples" else f"{n} items (as many as texts)", len(value))
        bad = labels[(labels < 0) | (labels >= len(names))]
        expect(bad.size == 0, f"{self.kind}.labels", f"ids in [0, {len(names)})", bad[:5].tolist())
        labels.setflags(write=False)
        for name, value in (("first", first), ("second", second), ("labels", labels), ("groups", groups),
                            ("label_names", names), ("skipped", dict(self.skipped))):
            object.__setattr__(self, name, value)

    @property
    def is_pair(self) -> bool:
        """Whether each example has two texts."""
        return self.second is not None

    @property
    def premises(self) -> tuple[str, ...]:
        """The first texts (the NLI name)."""
        return self.first

    @property
    def hypotheses(self) -> tuple[str, ...] | None:
        """The second texts (the NLI name)."""
        return self.second

    def __len__(self) -> int:
        return len(self.first)

    def __repr__(self) -> str:
        return f"{self.kind}(n={len(self)}, labels={self.label_counts()})"

    def subset(self, indices: Sequence[int] | np.ndarray) -> "TextExamples":
        """The examples at ``indices`` (ints, in that order) or where a bool mask is True.

        Example:
            >>> ex = NLIExamples(("a", "b"), ("c", "d"), [0, 1], ("g", "h"))
            >>> ex.subset([1, 0]).premises, ex.subset(np.array([False, True])).premises
            (('b', 'a'), ('b',))
        """
        idx = _as_indices(indices, len(self))
        return TextExamples(
            first=tuple(self.first[i] for i in idx),
            second=None if self.second is None else tuple(self.second[i] for i in idx),
            labels=self.labels[idx],
            groups=tuple(self.groups[i] for i in idx),
            label_names=self.label_names,
            kind=self.kind,
        )

    def relabel(self, names: Sequence[str]) -> "TextExamples":
        """The same examples with class ids in the order of ``names`` (a permutation of ``label_names``).

        For a head trained with its own class order (HF's MNLI heads: entailment, neutral,
        contradiction).

        Example:
            >>> ex = NLIExamples(("p", "q"), ("h", "i"), [0, 1])
            >>> again = ex.relabel(["entailment", "neutral", "contradiction"])
            >>> again.labels.tolist(), again.label_names[0]
            ([2, 0], 'entailment')
        """
        names = tuple(str(n) for n in names)
        expect(sorted(names) == sorted(self.label_names), "labels",
               f"an order of the task's classes {list(self.label_names)}", list(names))
        new_id = np.array([names.index(old) for old in self.label_names], np.int32)
        return dataclasses.replace(self, labels=new_id[self.labels], label_names=names)

    def label_counts(self) -> dict[str, int]:
        """Number of examples per label name.

        Example:
            >>> NLIExamples(("a", "b"), ("c", "d"), [2, 2], ("g", "h")).label_counts()
            {'contradiction': 0, 'entailment': 0, 'neutral': 2}
        """
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {name: int(c) for name, c in zip(self.label_names, counts)}


def NLIExamples(premises: Sequence[str], hypotheses: Sequence[str], labels, groups: Sequence[str] | None = None,
                skipped: Mapping[str, int] | None = None) -> TextExamples:  # noqa: N802 - the 0.1 class name
    """Premise/hypothesis pairs with NLI labels (:data:`NLI_LABELS` order) as :class:`TextExamples`."""
    return TextExamples(tuple(premises), tuple(hypotheses), labels, None if groups is None else tuple(groups),
                        NLI_LABELS, dict(skipped or {}), kind="NLIExamples")


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



def _premise_components(examples: TextExamples) -> np.ndarray:
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
    examples: TextExamples, dev_fraction: float, seed: int
) -> tuple[TextExamples, TextExamples]:
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

"""Classification data from files: the GLUE tasks in their standard layout, and plain CSV / TSV / JSONL.

A *table* is rows of named columns: one or two text columns, a label column and optionally a
group column. :func:`read_table` reads one file (the format from its extension: ``.csv``,
``.tsv``, ``.jsonl``/``.json``), skipping and counting malformed rows (a row with more or fewer
fields than the header, an empty text, a missing label) and never reading one misaligned.
:func:`label_order` fixes the class ids deterministically: integer labels by value (they
must be exactly 0..K-1), string labels sorted, or the order you give (``--labels a,b,c``,
for a head trained with its own order). :data:`GLUE` writes down each GLUE task's columns,
label order and metric.

Example:
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "train.csv").write_text("text,label\\ngreat film,pos\\ndull,neg\\nfine,pos\\n")
    >>> rows = read_table(d / "train.csv", ("text",), "label")
    >>> rows.texts[0], rows.labels, rows.skipped
    (('great film', 'dull', 'fine'), ('pos', 'neg', 'pos'), {})
    >>> label_order([rows], "label")
    ('neg', 'pos')
"""

from __future__ import annotations

import collections
import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lrp_prune.data.examples import NLI_LABELS, TextExamples
from lrp_prune.errors import LRPPruneError, expect, is_int
from lrp_prune.textfiles import json_lines, read_text

__all__ = ["Table", "GlueTask", "GLUE", "read_table", "label_order", "to_examples", "load_glue", "load_files",
           "FORMATS"]

logger = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class Table:
    """The rows of one file: texts (one tuple per text column), raw labels, groups, skipped rows."""

    path: str
    texts: tuple[tuple[str, ...], ...]
    labels: tuple[Any, ...] | None
    groups: tuple[str, ...]
    skipped: Mapping[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.groups)


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task's layout: files, columns (names, or indices for a file without a header),
    label names in id order, the group column, and its metric.

    Attributes:
        files: split -> file name in the task's directory (the first one is the training split).
        text_columns: one or two text columns.
        label_column: the label's column.
        label_names: the raw label values, in id order.
        group_column: examples sharing it stay on one side of a held-out split (default: the
            first text column).
        header: whether the files start with a header row.
        metric: ``"accuracy"``, ``"f1"`` (of class 1, with accuracy) or ``"mcc"`` (Matthews).
    """

    files: Mapping[str, str]
    text_columns: tuple[str | int, ...]
    label_column: str | int
    label_names: tuple[str, ...]
    group_column: str | int | None = None
    header: bool = True
    metric: str = "accuracy"

    @property
    def eval_split(self) -> str:
        """The split evaluated by default (the second file: GLUE's dev set)."""
        return list(self.files)[1]


#: The GLUE classification tasks (test files carry no labels: only train and dev are read).
GLUE: Mapping[str, GlueTask] = {
    "mnli": GlueTask({"train": "train.tsv", "dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"},
                     ("sentence1", "sentence2"), "gold_label", NLI_LABELS, "promptID"),
    "qnli": GlueTask({"train": "train.tsv", "dev": "dev.tsv"}, ("question", "sentence"), "label",
                     ("entailment", "not_entailment"), "question"),
    "qqp": GlueTask({"train": "train.tsv", "dev": "dev.tsv"}, ("question1", "question2"), "is_duplicate",
                    ("0", "1"), "question1", metric="f1"),
    "rte": GlueTask({"train": "train.tsv", "dev": "dev.tsv"}, ("sentence1", "sentence2"), "label",
                    ("entailment", "not_entailment"), "sentence1"),
    "mrpc": GlueTask({"train": "train.tsv", "dev": "dev.tsv"}, ("#1 String", "#2 String"), "Quality", ("0", "1"),
                     "#1 ID", metric="f1"),
    "sst2": GlueTask({"train": "train.tsv", "dev": "dev.tsv"}, ("sentence",), "label", ("0", "1"), "sentence"),
    "cola": GlueTask({"train": "train.tsv", "dev": "dev.tsv"}, (3,), 1, ("0", "1"), 3, header=False, metric="mcc"),
    "wnli": GlueTask({"train": "train.tsv", "dev": "dev.tsv"}, ("sentence1", "sentence2"), "label", ("0", "1"),
                     "sentence1"),
}


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    expect(fmt is not None, str(path), f"a file ending in one of {sorted(FORMATS)} (the format comes from it)",
           path.suffix or "no extension")
    return fmt


def _records(path: Path, fmt: str, header: bool, skipped: collections.Counter) -> tuple[list, list]:
    """(column names, rows): rows are dicts for JSONL, lists for CSV/TSV."""
    text = read_text(path, str(path))
    if not text.strip():
        wanted = "a header row and examples" if fmt != "jsonl" and header else "examples"
        raise LRPPruneError(f"{path}: expected {wanted}, got an empty file")
    if fmt == "jsonl":
        rows = []
        for _, record in json_lines(text, path):
            if not isinstance(record, dict):
                skipped["a line that is not a JSON object"] += 1
                continue
            rows.append(record)
        return sorted({k for r in rows for k in r}), rows
    delimiter = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL  # GLUE's TSVs hold unbalanced quotes
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    try:
        lines = [row for row in reader if row and row != [""]]
    except csv.Error as err:
        raise LRPPruneError(f"{path}:{reader.line_num}: expected {fmt.upper()} fields, got {err}") from None
    if not header:
        return [], lines
    expect(bool(lines), str(path), "a header row and at least one example", "an empty file")
    return [name.strip() for name in lines[0]], lines[1:]


def read_table(path: str | Path, text_columns: Sequence[str | int], label_column: str | int | None,
               group_column: str | int | None = None, *, header: bool = True) -> Table:
    """Read one CSV / TSV / JSONL file of labelled (or unlabelled) texts.

    Args:
        path: the file; its extension gives the format.
        text_columns: one or two text columns (names; indices for a file without a header).
        label_column: the label's column, or ``None`` for unlabelled data.
        group_column: the group key (default: the first text column).
        header: CSV/TSV only: whether the first row names the columns.

    Returns:
        A :class:`Table` of the rows kept; malformed rows are skipped and counted by reason.

    Raises:
        LRPPruneError: a missing or empty file, a missing column (naming the file and column),
            mixed label types in JSON Lines, or no row left.
    """
    path = Path(path)
    expect(path.is_file(), "data file", "an existing file", str(path))
    fmt = _format(path)
    expect(1 <= len(text_columns) <= 2, "text_columns", "one or two text columns", list(text_columns))
    skipped: collections.Counter = collections.Counter()
    columns, rows = _records(path, fmt, header, skipped)
    wanted = [*text_columns, *(c for c in (label_column, group_column) if c is not None)]
    if fmt == "jsonl" or header:
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise LRPPruneError(f"{path}: expected the column(s) {missing}, got columns {columns}")
    group_column = text_columns[0] if group_column is None else group_column
    width = len(columns) if (fmt != "jsonl" and header) else None
    index = {c: (columns.index(c) if isinstance(c, str) and fmt != "jsonl" else c) for c in wanted + [group_column]}
    texts: list[list[str]] = [[] for _ in text_columns]
    labels, groups = [], []
    for row in rows:
        if fmt != "jsonl":
            if width is not None and len(row) != width:  # a separator inside a field: never read misaligned
                skipped["more fields than the header" if len(row) > width else "fewer fields than the header"] += 1
                continue
            if width is None and len(row) <= max(i for i in index.values() if isinstance(i, int)):
                skipped["fewer fields than expected"] += 1
                continue
        values = [row.get(c) if fmt == "jsonl" else row[index[c]] for c in text_columns]
        if any(not isinstance(v, str) or not v.strip() for v in values):
            skipped["an empty or non-text text"] += 1
            continue
        if label_column is not None:
            label = row.get(label_column) if fmt == "jsonl" else row[index[label_column]].strip()
            if label is None or (isinstance(label, str) and not label):
                skipped["no label"] += 1
                continue
            labels.append(label)
        for k, v in enumerate(values):
            texts[k].append(v)
        group = row.get(group_column) if fmt == "jsonl" else row[index[group_column]]
        groups.append(str(group))
    if label_column is not None and fmt == "jsonl":
        kinds = {("int" if is_int(v) else "str" if isinstance(v, str) else type(v).__name__) for v in labels}
        if len(kinds) > 1:
            raise LRPPruneError(f"{path}: expected labels of one type in column {label_column!r}, got {sorted(kinds)} "
                                "(e.g. 1 and \"1\"): make them all numbers or all strings")
    if skipped:
        logger.info("%s: kept %d rows, skipped %d: %s", path, len(groups), sum(skipped.values()), dict(skipped))
    if not groups:
        raise LRPPruneError(f"{path}: expected at least one labelled example in columns {list(wanted)}, got none "
                            f"(skipped {dict(skipped)})")
    return Table(str(path), tuple(tuple(t) for t in texts), None if label_column is None else tuple(labels),
                 tuple(groups), dict(skipped))


def _as_int(value: Any) -> int | None:
    if is_int(value):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def label_order(tables: Sequence[Table], column: str | int, labels: Sequence[str] | None = None) -> tuple[str, ...]:
    """The class names in id order, from the training table (the first of ``tables``).

    Integer labels are ordered by value and must be exactly ``0..K-1``; string labels are
    sorted; ``labels`` gives the order explicitly. Every other table's labels must be among
    the training ones.

    Raises:
        LRPPruneError: integer labels that are not 0..K-1, a label of another table unseen in
            training, or an explicit order that misses a label (each naming the file and column).

    Example:
        >>> t = Table("t.csv", (("a", "b", "c"),), ("2", "0", "1"), ("a", "b", "c"))
        >>> label_order([t], "y"), label_order([t], "y", ["2", "1", "0"])
        (('0', '1', '2'), ('2', '1', '0'))
    """
    train = tables[0]
    found = [str(v) for v in train.labels]
    if labels is not None:
        names = tuple(str(v) for v in labels)
        expect(len(set(names)) == len(names) and len(names) >= 2, "labels", "two or more distinct names", list(names))
        unknown = sorted(set(found) - set(names))
        if unknown:
            raise LRPPruneError(f"{train.path}: expected the labels of column {column!r} among --labels {list(names)}, "
                                f"got also {unknown[:5]}")
    else:
        ints = [_as_int(v) for v in train.labels]
        if all(i is not None for i in ints):
            values = sorted(set(ints))
            if values != list(range(len(values))):
                raise LRPPruneError(f"{train.path}: expected integer labels 0..K-1 in column {column!r}, got "
                                    f"{values[:10]}; renumber them or give the order with --labels")
            names = tuple(str(v) for v in values)
        else:
            names = tuple(sorted(set(found)))
    expect(len(names) >= 2, f"{train.path} column {column!r}", "at least two classes", list(names))
    for table in tables[1:]:
        if table.labels is None:
            continue
        unseen = sorted({str(v) for v in table.labels} - set(names))
        if unseen:
            raise LRPPruneError(f"{table.path}: expected labels of column {column!r} seen in training {list(names)}, "
                                f"got {unseen[:5]}")
    return names


def to_examples(table: Table, names: Sequence[str]) -> TextExamples:
    """The table as :class:`~lrp_prune.data.examples.TextExamples` with class ids in ``names``' order."""
    ids = {name: i for i, name in enumerate(names)}
    labels = np.array([ids[str(v)] for v in table.labels], np.int32)
    second = table.texts[1] if len(table.texts) > 1 else None
    return TextExamples(table.texts[0], second, labels, table.groups, tuple(names), table.skipped)


def load_glue(task: str, data_dir: str | Path) -> dict[str, TextExamples]:
    """The labelled splits of a GLUE task in its standard directory layout (see :data:`GLUE`).

    Rows whose label is not one of the task's classes are skipped and counted (QQP's malformed
    rows, MNLI's ``-`` gold labels); MNLI goes through
    :func:`~lrp_prune.data.readers.read_glue_mnli_tsv`.
    """
    from lrp_prune.data.readers import read_glue_mnli_tsv

    spec = GLUE[task]
    data_dir = Path(data_dir)
    splits = {}
    for split, name in spec.files.items():
        path = data_dir / name
        if not path.is_file() and split not in ("train", spec.eval_split):
            continue  # an optional split (MNLI's dev_mismatched)
        if task == "mnli":  # dev rows carry five annotator labels: the reader knows its columns
            splits[split] = read_glue_mnli_tsv(path)
            continue
        table = read_table(path, spec.text_columns, spec.label_column, spec.group_column, header=spec.header)
        keep = [i for i, v in enumerate(table.labels) if str(v) in spec.label_names]
        if len(keep) < len(table):
            skipped = dict(table.skipped)
            skipped["a label outside the task's classes"] = len(table) - len(keep)
            table = Table(table.path, tuple(tuple(t[i] for i in keep) for t in table.texts),
                          tuple(table.labels[i] for i in keep), tuple(table.groups[i] for i in keep), skipped)
        expect(len(table) > 0, str(path), f"examples labelled {list(spec.label_names)}", "none")
        splits[split] = to_examples(table, spec.label_names)
    return splits


def load_files(train_file: str | Path, eval_file: str | Path, *, text_columns: Sequence[str],
               label_column: str, test_file: str | Path | None = None, group_column: str | None = None,
               labels: Sequence[str] | None = None) -> dict[str, TextExamples]:
    """A task of your own: ``{"train", "eval"[, "test"]}`` from CSV / TSV / JSONL files.

    Class ids come from the training file (:func:`label_order`); the evaluation and test
    files must use the same labels.
    """
    tables = {"train": read_table(train_file, text_columns, label_column, group_column),
              "eval": read_table(eval_file, text_columns, label_column, group_column)}
    if test_file is not None:
        tables["test"] = read_table(test_file, text_columns, label_column, group_column)
    names = label_order(list(tables.values()), label_column, labels)
    return {split: to_examples(table, names) for split, table in tables.items()}

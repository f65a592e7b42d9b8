"""Reading a task's splits: SNLI jsonl, GLUE MNLI tsv, the other GLUE tasks and your own files.

Rows without a gold label are dropped and counted (logged at INFO); the GLUE tasks and plain
files go through :mod:`lrp_prune.data.tables`.
"""

from __future__ import annotations

import collections
import csv
import io
import logging
import os
from pathlib import Path

import numpy as np

from lrp_prune.data.examples import LABEL_TO_ID, NLI_LABELS, NLIExamples, TextExamples
from lrp_prune.errors import LRPPruneError, check_int, expect
from lrp_prune.textfiles import json_lines, read_text

__all__ = ["TASKS", "load_task", "read_glue_mnli_tsv", "read_snli_jsonl"]

logger = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("mnli", "snli", "qnli", "qqp", "rte", "mrpc", "sst2", "cola", "wnli", "file")
"""Task names known to :func:`load_task`: SNLI, the GLUE classification tasks, and ``file`` (your own)."""

SNLI_TRAIN_FILES = ("snli_1.0_train_subset.jsonl", "snli_1.0_train.jsonl")
SNLI_DEV_FILE = "snli_1.0_dev.jsonl"
SNLI_TEST_FILE = "snli_1.0_test.jsonl"



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
    return NLIExamples(premises, hypotheses, np.array(labels, dtype=np.int32), groups, skipped=dict(dropped))


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
    :data:`NLI_LABELS`, or whose sentence is null, are skipped; the counts by reason are
    logged at INFO and kept in ``examples.skipped``. The group is the ``captionID`` (the
    premise's image caption), or the premise text if absent.

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
    check_int(limit, "limit", minimum=1, optional=True, expected="None or an int >= 1")
    required = ("gold_label", "sentence1", "sentence2")
    rows: list[tuple[str, str, int, str]] = []
    dropped: collections.Counter[str] = collections.Counter()
    for line_no, record in json_lines(read_text(path, "SNLI file"), path):
        expect(isinstance(record, dict), f"{path}:{line_no}", "a JSON object", record)
        missing = [k for k in required if k not in record]
        if missing:
            raise LRPPruneError(
                f"{path}:{line_no}: expected keys {list(required)}, missing {missing} "
                f"(found {sorted(record)})"
            )
        premise, hypothesis = record["sentence1"], record["sentence2"]
        if not isinstance(premise, str) or not isinstance(hypothesis, str):
            dropped["a null or non-text sentence"] += 1
            continue
        label = _label_id(str(record["gold_label"]), dropped)
        if label is None:
            continue
        rows.append((premise, hypothesis, label, str(record.get("captionID") or premise)))
        if limit is not None and len(rows) >= limit:  # stop before parsing the next line
            break
    return _examples_or_raise(path, rows, dropped)


def read_glue_mnli_tsv(path: str | os.PathLike[str]) -> NLIExamples:
    """Read a GLUE MNLI tsv file (``train.tsv``, ``dev_matched.tsv``, ``dev_mismatched.tsv``).

    Columns are found by header name: ``sentence1``, ``sentence2``, ``gold_label``;
    the group is ``promptID`` (else ``pairID``, else the premise text). Quoting is
    off (``csv.QUOTE_NONE``): GLUE's files contain unbalanced quotes. Rows with an
    unknown label, or with more or fewer fields than the header (a tab inside a field would
    shift every column after it), are skipped and counted by reason, never read misaligned.

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
    reader = csv.reader(io.StringIO(read_text(path, "MNLI file"), newline=""), delimiter="\t",
                        quoting=csv.QUOTE_NONE)
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
    try:
        for fields in reader:
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):  # a tab inside a field, or a cut line: never read misaligned
                dropped["more fields than the header (a tab inside a field?)" if len(fields) > len(header)
                        else "fewer fields than the header"] += 1
                continue
            label = _label_id(fields[col_label], dropped)
            if label is not None:
                rows.append((fields[col_a], fields[col_b], label, fields[col_group]))
    except csv.Error as err:
        raise LRPPruneError(
            f"{path}:{reader.line_num}: expected tab-separated fields, got {err}"
        ) from None
    return _examples_or_raise(path, rows, dropped)


def load_task(task: str, data_dir: str | os.PathLike[str] | None = None, **files) -> dict[str, TextExamples]:
    """Read the labelled splits of a task.

    - ``"snli"``: ``snli_1.0_train_subset.jsonl`` (or the full ``snli_1.0_train.jsonl``)
      -> ``"train"``, ``snli_1.0_test.jsonl`` -> ``"test"``, ``snli_1.0_dev.jsonl``
      -> ``"dev"`` (optional). SNLI as fetched by ``lrp_prune.io.assets.fetch_snli``
      has no dev split: carve one with :func:`~lrp_prune.data.examples.grouped_split`.
    - ``"mnli"``: GLUE layout, ``train.tsv`` -> ``"train"``, ``dev_matched.tsv`` ->
      ``"dev_matched"``, ``dev_mismatched.tsv`` -> ``"dev_mismatched"`` (optional).
    - ``"qnli"``, ``"qqp"``, ``"rte"``, ``"mrpc"``, ``"sst2"``, ``"cola"``, ``"wnli"``: GLUE layout,
      ``train.tsv`` and ``dev.tsv`` (columns and label order in
      :data:`~lrp_prune.data.tables.GLUE`; GLUE's test files carry no labels).
    - ``"file"``: your own CSV / TSV / JSONL files, given as keyword arguments of
      :func:`~lrp_prune.data.tables.load_files` (``train_file``, ``eval_file``,
      ``text_columns``, ``label_column``, ...): splits ``"train"``, ``"eval"`` (and ``"test"``).

    Args:
        task: a name of :data:`TASKS` (case-insensitive).
        data_dir: the directory holding the files (not for ``"file"``).
        **files: the arguments of :func:`~lrp_prune.data.tables.load_files` for ``"file"``.

    Returns:
        Split name -> examples.

    Raises:
        LRPPruneError: unknown task (listing the known ones), missing directory or
            required file (naming the path), or a file that fails to read.
    """
    from lrp_prune.data.tables import GLUE, load_files, load_glue

    expect(isinstance(task, str) and task.lower() in TASKS, "task", f"one of {list(TASKS)}", task)
    task = task.lower()
    if task == "file":
        return load_files(**files)
    expect(data_dir is not None, "data_dir", f"the {task} data directory", None)
    data_dir = Path(data_dir)
    expect(data_dir.is_dir(), "data_dir", "an existing directory", str(data_dir))
    splits: dict[str, TextExamples] = {}
    if task in GLUE:
        return load_glue(task, data_dir)
    train = next((data_dir / f for f in SNLI_TRAIN_FILES if (data_dir / f).is_file()), None)
    expect(train is not None, "SNLI train file",
           f"one of {list(SNLI_TRAIN_FILES)} in {data_dir}", sorted(os.listdir(data_dir)))
    splits["train"] = read_snli_jsonl(train)
    if (data_dir / SNLI_DEV_FILE).is_file():
        splits["dev"] = read_snli_jsonl(data_dir / SNLI_DEV_FILE)
    splits["test"] = read_snli_jsonl(data_dir / SNLI_TEST_FILE)
    return splits

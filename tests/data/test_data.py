"""Tests of lrp_prune.data on small SNLI / MNLI files written by the tests."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lrp_prune import LRPPruneError
from lrp_prune.data import (LABEL_TO_ID, NLI_LABELS, NLIExamples, batches, grouped_split, load_task, num_batches,
                            read_glue_mnli_tsv, read_snli_jsonl, shard)

MNLI_TRAIN_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                     "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
                     "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]


def snli_record(label: str, s1: str, s2: str, caption: str) -> dict:
    return {"annotator_labels": [label], "captionID": caption, "gold_label": label,
            "pairID": caption + "r1", "sentence1": s1, "sentence2": s2}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_tsv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    lines = ["\t".join(header)]
    lines += ["\t".join(row.get(col, "x") for col in header) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def mnli_row(prompt: str, s1: str, s2: str, label: str) -> dict[str, str]:
    return {"promptID": prompt, "pairID": prompt + label[:1], "sentence1": s1,
            "sentence2": s2, "gold_label": label, "label1": label}


SNLI_RECORDS = [
    snli_record("entailment", "A man sleeps.", "A person rests.", "c1"),
    snli_record("contradiction", "A man sleeps.", "A man runs.", "c1"),
    snli_record("-", "A man sleeps.", "Someone naps.", "c1"),
    snli_record("neutral", "Kids play.", "Kids play soccer.", "c2"),
    snli_record("maybe", "Kids play.", "Kids sleep.", "c2"),
]


def make_examples(n_groups: int, per_group: int = 3) -> NLIExamples:
    n = n_groups * per_group
    return NLIExamples(
        premises=tuple(f"premise {i // per_group}" for i in range(n)),
        hypotheses=tuple(f"hypothesis {i}" for i in range(n)),
        labels=np.arange(n) % 3,
        groups=tuple(f"g{i // per_group}" for i in range(n)),
    )


# ------------------------------------------------------------------ NLIExamples


def test_label_order_is_glue_mnli() -> None:
    assert NLI_LABELS == ("contradiction", "entailment", "neutral")
    assert LABEL_TO_ID == {"contradiction": 0, "entailment": 1, "neutral": 2}


def test_examples_subset_len_and_frozen() -> None:
    ex = make_examples(2)
    assert len(ex) == 6 and ex.labels.dtype == np.int32
    sub = ex.subset([4, 0])
    assert sub.hypotheses == ("hypothesis 4", "hypothesis 0")
    assert sub.labels.tolist() == [1, 0] and sub.groups == ("g1", "g0")
    assert len(ex.subset([])) == 0
    with pytest.raises(ValueError):
        ex.labels[0] = 2  # read-only
    with pytest.raises(AttributeError):
        ex.premises = ()  # type: ignore[misc]


def test_examples_validation() -> None:
    with pytest.raises(LRPPruneError, match="NLIExamples.labels: expected 2 items"):
        NLIExamples(("a", "b"), ("c", "d"), [0], ("g", "h"))
    with pytest.raises(LRPPruneError, match=r"NLIExamples.labels: expected ids in \[0, 3\), got \[3\]"):
        NLIExamples(("a",), ("c",), [3], ("g",))
    with pytest.raises(LRPPruneError, match=r"indices: expected ints in \[0, 6\), got \[6\]"):
        make_examples(2).subset([6])


# ---------------------------------------------------------------------- SNLI


def test_read_snli_maps_and_drops(tmp_path: Path, caplog) -> None:
    path = write_jsonl(tmp_path / "snli.jsonl", SNLI_RECORDS)
    with caplog.at_level(logging.INFO, logger="lrp_prune.data"):
        ex = read_snli_jsonl(path)
    assert ex.labels.tolist() == [LABEL_TO_ID["entailment"], LABEL_TO_ID["contradiction"],
                                  LABEL_TO_ID["neutral"]]
    assert ex.premises == ("A man sleeps.", "A man sleeps.", "Kids play.")
    assert ex.hypotheses[2] == "Kids play soccer." and ex.groups == ("c1", "c1", "c2")
    assert "kept 3 examples, dropped 2" in caplog.text
    assert "no gold label ('-')" in caplog.text and "unknown label 'maybe'" in caplog.text


def test_read_snli_limit_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "snli.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in SNLI_RECORDS) + "\n\n")
    assert len(read_snli_jsonl(path, limit=2)) == 2
    assert len(read_snli_jsonl(path)) == 3
    with pytest.raises(LRPPruneError, match="limit: expected None or an int >= 1, got 0"):
        read_snli_jsonl(path, limit=0)


def test_read_snli_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(LRPPruneError, match=f"SNLI file: expected an existing file, got '{missing}'"):
        read_snli_jsonl(missing)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(SNLI_RECORDS[0]) + "\n{not json\n")
    with pytest.raises(LRPPruneError, match=r"bad.jsonl:2: expected a JSON object"):
        read_snli_jsonl(bad)
    keys = write_jsonl(tmp_path / "keys.jsonl", [{"gold_label": "neutral", "sentence1": "a"}])
    with pytest.raises(LRPPruneError, match=r"keys.jsonl:1: .*missing \['sentence2'\]"):
        read_snli_jsonl(keys)
    unlabelled = write_jsonl(tmp_path / "none.jsonl", [SNLI_RECORDS[2]])
    with pytest.raises(LRPPruneError, match="expected at least one example"):
        read_snli_jsonl(unlabelled)


# ---------------------------------------------------------------------- MNLI


def test_read_mnli_train_and_dev(tmp_path: Path, caplog) -> None:
    rows = [mnli_row("1", 'He said "hi', "A greeting.", "entailment"),
            mnli_row("1", 'He said "hi', "A threat.", "contradiction"),
            mnli_row("2", "It rains.", "It is wet.", "neutral"),
            mnli_row("3", "Odd.", "Row.", "-")]
    train = write_tsv(tmp_path / "train.tsv", MNLI_TRAIN_HEADER, rows)
    with caplog.at_level(logging.INFO, logger="lrp_prune.data"):
        ex = read_glue_mnli_tsv(train)
    assert ex.labels.tolist() == [1, 0, 2]
    assert ex.premises[0] == 'He said "hi'  # quotes are literal (QUOTE_NONE)
    assert ex.groups == ("1", "1", "2")
    assert "dropped 1" in caplog.text
    dev = write_tsv(tmp_path / "dev.tsv", MNLI_DEV_HEADER, rows[:3])
    assert read_glue_mnli_tsv(dev).labels.tolist() == [1, 0, 2]


def test_read_mnli_short_rows_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    header = ["sentence1", "sentence2", "gold_label"]
    path.write_bytes(b"\t".join(h.encode() for h in header) + b"\r\n"
                     b"a\tb\tneutral\r\nshort\trow\r\nc\td\tentailment\r\n")
    ex = read_glue_mnli_tsv(path)
    assert ex.premises == ("a", "c") and ex.labels.tolist() == [2, 1]
    assert ex.groups == ("a", "c")  # no promptID column: grouped by premise text


def test_read_mnli_missing_columns_named(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "train.tsv", ["index", "sentence1", "label"],
                     [{"sentence1": "a", "label": "neutral"}])
    with pytest.raises(LRPPruneError) as info:
        read_glue_mnli_tsv(path)
    message = str(info.value)
    assert "expected ['sentence1', 'sentence2', 'gold_label']" in message
    assert "missing ['sentence2', 'gold_label']" in message
    assert "found ['index', 'sentence1', 'label']" in message


def test_read_mnli_missing_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(LRPPruneError, match="MNLI file: expected an existing file"):
        read_glue_mnli_tsv(tmp_path / "train.tsv")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(LRPPruneError, match="expected a header row"):
        read_glue_mnli_tsv(tmp_path / "empty.tsv")


# ------------------------------------------------------------------ load_task


def test_load_task_mnli(tmp_path: Path) -> None:
    row = mnli_row("1", "a", "b", "neutral")
    write_tsv(tmp_path / "train.tsv", MNLI_TRAIN_HEADER, [row, row])
    write_tsv(tmp_path / "dev_matched.tsv", MNLI_DEV_HEADER, [row])
    splits = load_task("MNLI", tmp_path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "dev_matched": 1}
    write_tsv(tmp_path / "dev_mismatched.tsv", MNLI_DEV_HEADER, [row, row, row])
    assert len(load_task("mnli", tmp_path)["dev_mismatched"]) == 3
    (tmp_path / "dev_matched.tsv").unlink()
    with pytest.raises(LRPPruneError, match="dev_matched.tsv"):
        load_task("mnli", tmp_path)


def test_load_task_snli(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "snli_1.0_train_subset.jsonl", SNLI_RECORDS)
    write_jsonl(tmp_path / "snli_1.0_test.jsonl", SNLI_RECORDS[:2])
    splits = load_task("snli", tmp_path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 3, "test": 2}


def test_load_task_errors(tmp_path: Path) -> None:
    with pytest.raises(LRPPruneError, match=r"task: expected one of \['mnli', 'snli', 'qnli', .*'file'\], got 'squad'"):
        load_task("squad", tmp_path)
    with pytest.raises(LRPPruneError, match="data file: expected an existing file, got .*train.tsv"):
        load_task("qnli", tmp_path)  # a GLUE task whose files are not there
    with pytest.raises(LRPPruneError, match="data_dir: expected an existing directory"):
        load_task("snli", tmp_path / "absent")
    with pytest.raises(LRPPruneError, match="SNLI train file"):
        load_task("snli", tmp_path)


# --------------------------------------------------------------- grouped split


def test_grouped_split_no_overlap_and_deterministic() -> None:
    ex = make_examples(40)
    train, dev = grouped_split(ex, 0.25, seed=3)
    assert len(train) + len(dev) == len(ex)
    assert not set(train.groups) & set(dev.groups)
    assert not set(train.premises) & set(dev.premises)
    assert len(set(dev.groups)) == 10
    again = grouped_split(ex, 0.25, seed=3)[1]
    assert again.hypotheses == dev.hypotheses
    assert grouped_split(ex, 0.25, seed=4)[1].hypotheses != dev.hypotheses
    assert list(dev.hypotheses) == sorted(dev.hypotheses, key=ex.hypotheses.index)  # order kept


def test_grouped_split_joins_groups_sharing_a_premise() -> None:
    # SNLI has a few premise texts under two captionIDs: they must stay on one side.
    premises = ("same", "same", "other", "third", "fourth")
    ex = NLIExamples(premises, ("h0", "h1", "h2", "h3", "h4"), [0, 1, 2, 0, 1],
                     ("capA", "capB", "capC", "capD", "capE"))
    for seed in range(20):
        train, dev = grouped_split(ex, 0.5, seed=seed)
        assert not set(train.premises) & set(dev.premises)
        assert len(dev) >= 1 and len(train) >= 1


def test_grouped_split_errors() -> None:
    ex = make_examples(1)
    with pytest.raises(LRPPruneError, match="at least 2 premise groups"):
        grouped_split(ex, 0.5, seed=0)
    for bad in (0, 1, 1.5, -0.1, True):
        with pytest.raises(LRPPruneError, match=r"dev_fraction: expected a number in \(0, 1\)"):
            grouped_split(make_examples(4), bad, seed=0)


# ---------------------------------------------------------------------- shard


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60), st.integers(1, 8))
def test_shards_equal_disjoint(n: int, num_shards: int) -> None:
    if n < num_shards:
        with pytest.raises(LRPPruneError, match="num_shards: expected at most the dataset size"):
            shard({"x": np.arange(n)}, num_shards, 0)
        return
    parts = [shard({"x": np.arange(n)}, num_shards, r)["x"] for r in range(num_shards)]
    assert {len(p) for p in parts} == {n // num_shards}
    flat = np.concatenate(parts)
    assert len(set(flat.tolist())) == len(flat)


def test_shard_examples_and_errors() -> None:
    ex = make_examples(3)  # 9 examples
    parts = [shard(ex, 2, r) for r in range(2)]
    assert [p.hypotheses for p in parts] == [
        ("hypothesis 0", "hypothesis 2", "hypothesis 4", "hypothesis 6"),
        ("hypothesis 1", "hypothesis 3", "hypothesis 5", "hypothesis 7")]
    with pytest.raises(LRPPruneError, match=r"shard_id: expected an int in \[0, 2\), got 2"):
        shard(ex, 2, 2)
    with pytest.raises(LRPPruneError, match="num_shards: expected an int >= 1, got 0"):
        shard(ex, 0, 0)


# -------------------------------------------------------------------- batches


def encoded(n: int = 10, seq: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, seq + 1, size=n).astype(np.int32)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
    return {"input_ids": (np.arange(n * seq).reshape(n, seq) * mask).astype(np.int32),
            "token_type_ids": np.zeros((n, seq), np.int32), "input_mask": mask,
            "lengths": lengths, "labels": (np.arange(n) % 3).astype(np.int32),
            "index": np.arange(n)}


def test_batches_shapes_and_cover() -> None:
    arrays = encoded(10)
    out = list(batches(arrays, 3))
    assert len(out) == 3 == num_batches(arrays, 3)
    for batch in out:
        assert batch["input_ids"].shape == (3, 8) and batch["labels"].shape == (3,)
        assert batch["input_ids"].dtype == np.int32
    assert np.concatenate([b["index"] for b in out]).tolist() == list(range(9))
    rest = list(batches(arrays, 3, drop_remainder=False))
    assert [len(b["index"]) for b in rest] == [3, 3, 3, 1]
    assert num_batches(arrays, 3, drop_remainder=False) == 4


def test_batches_shuffle_deterministic() -> None:
    arrays = encoded(20)
    first = [b["index"].tolist() for b in batches(arrays, 4, shuffle=True, seed=7)]
    again = [b["index"].tolist() for b in batches(arrays, 4, shuffle=True, seed=7)]
    other = [b["index"].tolist() for b in batches(arrays, 4, shuffle=True, seed=8)]
    assert first == again and first != other
    assert sorted(sum(first, [])) == list(range(20))
    for batch in batches(arrays, 4, shuffle=True, seed=7):  # rows stay aligned across keys
        np.testing.assert_array_equal(batch["labels"], arrays["labels"][batch["index"]])


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_buckets(shuffle: bool) -> None:
    arrays = encoded(200, seq=8, seed=1)
    buckets = (4, 6, 8)
    out = list(batches(arrays, 5, shuffle=shuffle, seed=2, buckets=buckets))
    assert len(out) == num_batches(arrays, 5, shuffle=shuffle, seed=2, buckets=buckets)
    shapes = set()
    for batch in out:
        width = batch["input_ids"].shape[1]
        shapes.add(width)
        assert width in buckets and batch["input_ids"].shape == (5, width)
        assert batch["input_mask"].shape == batch["token_type_ids"].shape == (5, width)
        assert batch["labels"].shape == (5,)
        assert batch["lengths"].max() <= width  # every example fits its bucket...
        smaller = [b for b in buckets if b < width]
        assert not smaller or batch["lengths"].min() > smaller[-1]  # ...and the smallest one
        full = arrays["input_ids"][batch["index"]]
        np.testing.assert_array_equal(batch["input_ids"], full[:, :width])
        assert (full[:, width:] == 0).all()  # nothing but padding was cut
        assert batch["input_ids"].flags["C_CONTIGUOUS"]
    assert shapes == set(buckets)
    seen = np.concatenate([b["index"] for b in out])
    assert len(set(seen.tolist())) == len(seen)
    per_bucket = np.searchsorted(buckets, arrays["lengths"])
    assert len(seen) == sum((np.sum(per_bucket == i) // 5) * 5 for i in range(3))


def test_batches_buckets_keep_remainder() -> None:
    arrays = encoded(23, seq=8, seed=3)
    out = list(batches(arrays, 4, buckets=(5, 8), drop_remainder=False))
    assert sorted(np.concatenate([b["index"] for b in out]).tolist()) == list(range(23))


def test_batches_errors() -> None:
    arrays = encoded(10)
    with pytest.raises(LRPPruneError) as info:
        batches(arrays, 11)  # raised at the call, not at the first next()
    assert "batch_size" in str(info.value) and "dataset size 10" in str(info.value)
    assert "got 11" in str(info.value)
    assert len(list(batches(arrays, 11, drop_remainder=False))) == 1
    with pytest.raises(LRPPruneError, match="batch_size: expected an int >= 1"):
        batches(arrays, 0)
    with pytest.raises(LRPPruneError, match="arrays: expected arrays sharing their first dim"):
        batches({"a": np.zeros(3), "b": np.zeros(4)}, 1)
    with pytest.raises(LRPPruneError, match="buckets: expected a non-empty, strictly increasing"):
        batches(arrays, 2, buckets=(8, 4))
    with pytest.raises(LRPPruneError, match="'lengths' key"):
        batches({"input_ids": arrays["input_ids"]}, 2, buckets=(8,))
    with pytest.raises(LRPPruneError, match=r"largest bucket >= the longest example"):
        batches(arrays, 2, buckets=(2,))
    with pytest.raises(LRPPruneError, match=r"arrays\['input_ids'\]: expected shape \(N, L\)"):
        batches(arrays, 2, buckets=(8, 16))
    few = dict(encoded(4))
    few["lengths"] = np.array([3, 3, 8, 8], dtype=np.int32)
    with pytest.raises(LRPPruneError, match=r"per bucket \{4: 2, 8: 2\}\), got 3"):
        batches(few, 3, buckets=(4, 8))


# ---------------------------------------------------------------- (from the old reliability tests)
def test_numeric_labels_outside_the_classes_are_refused_by_examples():
    # what the flow builds its label arrays from
    with pytest.raises(LRPPruneError) as info:
        NLIExamples(("a", "b"), ("c", "d"), np.array([1, 5]), ("g", "h"))
    assert str(info.value) == "NLIExamples.labels: expected ids in [0, 3), got [5]"


def test_readers_drop_unknown_label_strings_and_refuse_empty_data(tmp_path, caplog):
    import logging

    path = tmp_path / "train.tsv"
    path.write_text("sentence1\tsentence2\tgold_label\n"
                    "a man\ta dog\tneutral\nb\tc\t5\nd\te\tMaybe\nf\tg\tentailment\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="lrp_prune.data"):
        examples = read_glue_mnli_tsv(path)
    assert examples.labels.tolist() == [2, 1]
    assert "unknown label '5'" in caplog.text and "unknown label 'Maybe'" in caplog.text
    # an empty dataset: a header only, or nothing with a known label
    path.write_text("sentence1\tsentence2\tgold_label\n", encoding="utf-8")
    with pytest.raises(LRPPruneError) as info:
        read_glue_mnli_tsv(path)
    assert str(info.value).startswith(f"{path}: expected at least one example labelled")
    assert str(info.value).endswith("got none (dropped {})")
    path.write_text("sentence1\tsentence2\tgold_label\nb\tc\t5\n", encoding="utf-8")
    with pytest.raises(LRPPruneError, match=r"got none \(dropped \{\"unknown label '5'\": 1\}\)"):
        read_glue_mnli_tsv(path)
    (tmp_path / "dev_matched.tsv").write_text("sentence1\tsentence2\tgold_label\na\tb\tneutral\n", encoding="utf-8")
    with pytest.raises(LRPPruneError, match="train.tsv: expected at least one example"):
        load_task("mnli", tmp_path)


def test_empty_arrays_and_batch_larger_than_dataset():
    empty = {"input_ids": np.zeros((0, 8), np.int32), "label_ids": np.zeros((0,), np.int32)}
    for call in (lambda: batches(empty, 2), lambda: num_batches(empty, 2),
                 lambda: batches(empty, 2, drop_remainder=False)):
        with pytest.raises(LRPPruneError) as info:
            call()
        assert str(info.value) == "arrays: expected at least one example, got 0"
    five = {"input_ids": np.ones((5, 8), np.int32), "label_ids": np.arange(5, dtype=np.int32) % 3}
    with pytest.raises(LRPPruneError) as info:
        num_batches(five, 6)  # the same check as batches(), so step counts never disagree
    assert str(info.value) == "batch_size: expected at most the dataset size 5 when drop_remainder=True, got 6"
    assert num_batches(five, 6, drop_remainder=False) == 1
    assert [len(b["label_ids"]) for b in batches(five, 6, drop_remainder=False)] == [5]


# ---------------------------------------------------------------- malformed rows: skipped and counted, never misaligned
def test_mnli_rows_with_more_or_fewer_fields_than_the_header_are_skipped_and_counted(tmp_path, caplog):
    header = MNLI_TRAIN_HEADER
    good = ["0", "p0", "q0", "fiction", "-", "-", "-", "-", "A man eats.", "A man is eating.", "entailment",
            "entailment"]
    tab_inside = good[:8] + ["A man\teats.", "Someone eats.", "neutral", "neutral"]  # 13 fields: misaligned
    cut = good[:9]
    path = tmp_path / "train.tsv"
    path.write_text("\n".join("\t".join(r) for r in (header, good, tab_inside, cut, good)) + "\n", encoding="utf-8")
    with caplog.at_level("INFO"):
        examples = read_glue_mnli_tsv(path)
    assert len(examples) == 2 and set(examples.hypotheses) == {"A man is eating."}
    assert examples.skipped == {"more fields than the header (a tab inside a field?)": 1,
                                "fewer fields than the header": 1}
    assert "dropped 2" in caplog.text


def test_snli_null_sentences_are_skipped_and_counted(tmp_path):
    rows = [{"gold_label": "entailment", "sentence1": "A dog runs.", "sentence2": "An animal runs.", "captionID": "1"},
            {"gold_label": "neutral", "sentence1": None, "sentence2": "A dog.", "captionID": "2"},
            {"gold_label": "neutral", "sentence1": "A cat.", "sentence2": None, "captionID": "3"}]
    path = tmp_path / "snli.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    examples = read_snli_jsonl(path)
    assert examples.premises == ("A dog runs.",) and "None" not in examples.premises + examples.hypotheses
    assert examples.skipped == {"a null or non-text sentence": 2}

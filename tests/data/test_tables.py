"""Tasks from files: GLUE layouts and plain CSV / TSV / JSONL, label orders, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lrp_prune import LRPPruneError
from lrp_prune.data import load_task
from lrp_prune.data.tables import GLUE, label_order, load_files, read_table


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_single_text_with_string_labels_sorted(tmp_path):
    train = write(tmp_path / "train.csv", 'review,sentiment\n"Good, really good",pos\nbad,neg\nok,pos\n')
    dev = write(tmp_path / "dev.csv", "review,sentiment\nmeh,neg\n")
    splits = load_files(train, dev, text_columns=["review"], label_column="sentiment")
    assert splits["train"].label_names == ("neg", "pos") and not splits["train"].is_pair
    assert splits["train"].first == ("Good, really good", "bad", "ok")  # a quoted comma stays in its field
    assert splits["train"].labels.tolist() == [1, 0, 1] and splits["eval"].labels.tolist() == [0]
    assert splits["train"].groups == splits["train"].first  # the default group: the first text column


def test_the_labels_override_fixes_the_order(tmp_path):
    train = write(tmp_path / "train.csv", "text,y\na,pos\nb,neg\n")
    splits = load_files(train, train, text_columns=["text"], label_column="y", labels=["pos", "neg"])
    assert splits["train"].label_names == ("pos", "neg") and splits["train"].labels.tolist() == [0, 1]
    with pytest.raises(LRPPruneError, match=r"train.csv: expected the labels of column 'y' among --labels"):
        load_files(train, train, text_columns=["text"], label_column="y", labels=["pos", "neutral"])


def test_tsv_pairs_with_integer_labels_and_groups(tmp_path):
    rows = ["s1\ts2\tlabel\ttopic"] + [f"p{i}\th{i}\t{i % 5}\tt{i // 3}" for i in range(15)]
    train = write(tmp_path / "train.tsv", "\n".join(rows) + "\n")
    splits = load_files(train, train, text_columns=["s1", "s2"], label_column="label", group_column="topic")
    ex = splits["train"]
    assert ex.is_pair and ex.label_names == ("0", "1", "2", "3", "4") and ex.labels.tolist() == [i % 5 for i in range(15)]
    assert ex.second[4] == "h4" and ex.groups[4] == "t1"


def test_jsonl_reads_numbers_and_strings_but_not_both(tmp_path):
    good = write(tmp_path / "a.jsonl", "".join(json.dumps({"t": f"x{i}", "y": i % 2}) + "\n" for i in range(4)))
    assert load_files(good, good, text_columns=["t"], label_column="y")["train"].label_names == ("0", "1")
    mixed = write(tmp_path / "mixed.jsonl", '{"t": "a", "y": 1}\n{"t": "b", "y": "1"}\n{"t": "c", "y": 0}\n')
    with pytest.raises(LRPPruneError, match=r"mixed.jsonl: expected labels of one type in column 'y', got \['int', 'str'\]"):
        read_table(mixed, ["t"], "y")


@pytest.mark.parametrize("name,text,columns,needle", [
    ("missing.csv", "review,label\na,pos\n", ("text", "label"),
     r"missing.csv: expected the column\(s\) \['text'\], got columns \['review', 'label'\]"),
    ("empty.csv", "", ("text", "label"), r"empty.csv: expected a header row and examples, got an empty file"),
    ("empty.jsonl", "\n\n", ("text", "label"), r"empty.jsonl: expected examples, got an empty file"),
    ("header_only.csv", "text,label\n", ("text", "label"),
     r"header_only.csv: expected at least one labelled example in columns \['text', 'label'\], got none"),
    ("data.txt", "text,label\na,b\n", ("text", "label"), r"data.txt: expected a file ending in one of"),
])
def test_bad_files_name_the_file_and_the_column(tmp_path, name, text, columns, needle):
    path = write(tmp_path / name, text)
    with pytest.raises(LRPPruneError, match=needle):
        read_table(path, [columns[0]], columns[1])


def test_integer_labels_must_be_zero_to_k_minus_one(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,1\nb,2\nc,3\n")
    with pytest.raises(LRPPruneError, match=r"train.csv: expected integer labels 0..K-1 in column 'label', got \[1, 2, 3\]"):
        load_files(train, train, text_columns=["text"], label_column="label")


def test_an_eval_label_unseen_in_training_is_an_error(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n")
    dev = write(tmp_path / "dev.csv", "text,label\nc,neutral\n")
    with pytest.raises(LRPPruneError, match=r"dev.csv: expected labels of column 'label' seen in training "
                                            r"\['neg', 'pos'\], got \['neutral'\]"):
        load_files(train, dev, text_columns=["text"], label_column="label")


def test_malformed_rows_are_skipped_and_counted_never_misaligned(tmp_path):
    text = ("text,label\n"
            "fine,pos\n"
            "a stray, comma,neg\n"      # three fields: skipped, not read as text='a stray', label=' comma'
            ",neg\n"                    # an empty text
            "no label,\n"               # an empty label
            "short\n"                   # one field
            "last,neg\n")
    table = read_table(write(tmp_path / "t.csv", text), ["text"], "label")
    assert table.texts == (("fine", "last"),) and table.labels == ("pos", "neg")
    assert table.skipped == {"more fields than the header": 1, "an empty or non-text text": 1, "no label": 1,
                             "fewer fields than the header": 1}


# ----------------------------------------------------------------------------------------- GLUE layouts
def glue_dir(tmp_path: Path) -> Path:
    """Each GLUE task's train.tsv and dev.tsv, a few rows each, in the columns GLUE ships."""
    root = tmp_path / "glue"
    layouts = {
        "qnli": ("index\tquestion\tsentence\tlabel", lambda i: f"{i}\tq{i}?\ts{i}.\t"
                 + ("entailment", "not_entailment")[i % 2]),
        "qqp": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", lambda i: f"{i}\t{i}\t{i + 1}\tq{i}?\tr{i}?\t{i % 2}"),
        "rte": ("index\tsentence1\tsentence2\tlabel", lambda i: f"{i}\tp{i}\th{i}\t" + ("entailment", "not_entailment")[i % 2]),
        "mrpc": ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", lambda i: f"{i % 2}\t{i}\t{i + 9}\ta{i}\tb{i}"),
        "sst2": ("sentence\tlabel", lambda i: f"film {i}\t{i % 2}"),
        "cola": (None, lambda i: f"src{i}\t{i % 2}\t\tsentence {i}"),
        "wnli": ("index\tsentence1\tsentence2\tlabel", lambda i: f"{i}\tp{i}\th{i}\t{i % 2}"),
    }
    for task, (header, row) in layouts.items():
        (root / task).mkdir(parents=True)
        for name, n in (("train.tsv", 6), ("dev.tsv", 4)):
            lines = ([header] if header else []) + [row(i) for i in range(n)]
            if task == "qqp" and name == "train.tsv":
                lines.insert(3, "99\t1\t2\ta question with a newline")  # GLUE's broken QQP rows: too few fields
            write(root / task / name, "\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("task", ["qnli", "qqp", "rte", "mrpc", "sst2", "cola", "wnli"])
def test_every_glue_task_reads_its_layout(tmp_path, task):
    splits = load_task(task, glue_dir(tmp_path) / task)
    spec = GLUE[task]
    assert set(splits) == {"train", "dev"} and len(splits["train"]) == 6 and len(splits["dev"]) == 4
    assert splits["train"].label_names == spec.label_names
    assert splits["train"].labels.tolist() == [i % 2 for i in range(6)]
    assert splits["train"].is_pair == (len(spec.text_columns) == 2)
    if task == "qqp":
        assert splits["train"].skipped == {"fewer fields than the header": 1}
    if task == "cola":
        assert splits["dev"].first[3] == "sentence 3"


def test_glue_mnli_goes_through_its_reader(tmp_path):
    header = ["index", "promptID", "pairID", "genre", "s1bp", "s2bp", "s1p", "s2p", "sentence1", "sentence2",
              "label1", "gold_label"]
    lines = ["\t".join(header)] + [f"{i}\t{i}\t{i}e\tfiction\t-\t-\t-\t-\tp{i}\th{i}\tneutral\t"
                                   + ("contradiction", "entailment", "neutral", "-")[i % 4] for i in range(8)]
    for name in ("train.tsv", "dev_matched.tsv"):
        write(tmp_path / name, "\n".join(lines) + "\n")
    splits = load_task("mnli", tmp_path)
    assert set(splits) == {"train", "dev_matched"} and len(splits["train"]) == 6  # the two '-' rows dropped
    relabelled = splits["train"].relabel(["entailment", "neutral", "contradiction"])
    assert relabelled.labels.tolist() == [2, 0, 1, 2, 0, 1]


def test_label_order_from_a_table():
    from lrp_prune.data.tables import Table

    t = Table("t.csv", (("a", "b", "c", "d"),), (1, 0, 1, 0), ("a", "b", "c", "d"))
    assert label_order([t], "y") == ("0", "1")
    assert label_order([t], "y", ["1", "0"]) == ("1", "0")
    with pytest.raises(LRPPruneError, match="labels: expected two or more distinct names"):
        label_order([t], "y", ["1", "1"])

"""Tests of lrp_prune.data.tokenization on a tiny hand-written vocabulary."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lrp_prune import LRPPruneError
from lrp_prune.data import NLIExamples
from lrp_prune.data.tokenization import PairTokenizer, truncate_pair_lengths
from tokenizers import BertWordPieceTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         "the", "cat", "sat", "on", "mat", "a", "dog", "##s", "run", "."]
ID = {tok: i for i, tok in enumerate(VOCAB)}
PAD, UNK, CLS, SEP = 0, 1, 2, 3


@pytest.fixture()
def vocab_file(tmp_path: Path) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def tok(vocab_file: Path) -> PairTokenizer:
    return PairTokenizer(vocab_file)


def ids(*tokens: str) -> list[int]:
    return [ID[t] for t in tokens]


def reference_truncate(len_a: int, len_b: int, max_tokens: int) -> tuple[int, int]:
    """BERT's _truncate_seq_pair, one pop at a time."""
    while len_a + len_b > max_tokens:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_pair_by_hand(tok: PairTokenizer) -> None:
    enc = tok.encode(["The cat sat."], ["Dogs run"], max_seq_length=12)
    assert set(enc) == {"input_ids", "token_type_ids", "input_mask", "lengths"}
    for key in ("input_ids", "token_type_ids", "input_mask"):
        assert enc[key].dtype == np.int32 and enc[key].shape == (1, 12)
    assert enc["lengths"].dtype == np.int32 and enc["lengths"].shape == (1,)
    expected = [CLS, *ids("the", "cat", "sat", "."), SEP, *ids("dog", "##s", "run"), SEP]
    assert enc["input_ids"][0].tolist() == expected + [PAD] * 2
    assert enc["token_type_ids"][0].tolist() == [0] * 6 + [1] * 4 + [0] * 2
    assert enc["input_mask"][0].tolist() == [1] * 10 + [0] * 2
    assert enc["lengths"].tolist() == [10]


def test_single_sentences_and_unknown(tok: PairTokenizer) -> None:
    enc = tok.encode(["a dog", "zebra"], max_seq_length=5)
    assert enc["input_ids"].tolist() == [[CLS, ID["a"], ID["dog"], SEP, PAD],
                                         [CLS, UNK, SEP, PAD, PAD]]
    assert enc["token_type_ids"].tolist() == [[0] * 5, [0] * 5]
    assert enc["input_mask"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
    assert enc["lengths"].tolist() == [4, 3]


def test_single_sentence_truncation(tok: PairTokenizer) -> None:
    enc = tok.encode(["the cat sat on the mat"], max_seq_length=4)
    assert enc["input_ids"].tolist() == [[CLS, ID["the"], ID["cat"], SEP]]


def test_pair_truncation_longest_first(tok: PairTokenizer) -> None:
    # a: 6 tokens, b: 2 tokens, room 9 - 3 = 6 -> b stays whole, a cut to 4.
    enc = tok.encode(["the cat sat on the mat"], ["a dog"], max_seq_length=9)
    assert enc["input_ids"][0].tolist() == [
        CLS, *ids("the", "cat", "sat", "on"), SEP, *ids("a", "dog"), SEP]
    assert enc["token_type_ids"][0].tolist() == [0] * 6 + [1] * 3
    assert enc["input_mask"][0].tolist() == [1] * 9
    assert enc["lengths"].tolist() == [9]
    # both long, room 8 - 3 = 5 (odd): the first keeps 3, the second 2, as BERT's loop does.
    enc = tok.encode(["the cat sat on the mat"], ["a dog sat on a mat"], max_seq_length=8)
    assert enc["input_ids"][0].tolist() == [
        CLS, *ids("the", "cat", "sat"), SEP, *ids("a", "dog"), SEP]


def test_padding_is_zero_and_rows_independent(tok: PairTokenizer) -> None:
    enc = tok.encode(["a", "the cat sat on the mat"], ["dog", "run"], max_seq_length=16)
    assert enc["lengths"].tolist() == [5, 10]
    assert (enc["input_ids"][0, 5:] == 0).all() and (enc["input_ids"][1, 10:] == 0).all()
    np.testing.assert_array_equal(enc["input_mask"].sum(1), enc["lengths"])
    alone = tok.encode(["a"], ["dog"], max_seq_length=16)
    np.testing.assert_array_equal(alone["input_ids"][0], enc["input_ids"][0])


def test_default_max_seq_length_and_empty_batch(vocab_file: Path) -> None:
    tok = PairTokenizer(vocab_file, max_seq_length=7)
    assert tok.encode(["a"], ["dog"])["input_ids"].shape == (1, 7)
    empty = tok.encode([], [])
    assert empty["input_ids"].shape == (0, 7) and empty["lengths"].shape == (0,)


def test_lowercase_flag(vocab_file: Path) -> None:
    assert PairTokenizer(vocab_file).tokenize("The CAT") == ["the", "cat"]
    assert PairTokenizer(vocab_file, lowercase=False).tokenize("The cat") == ["[UNK]", "cat"]


def test_vocab_size(tok: PairTokenizer) -> None:
    assert tok.vocab_size == len(VOCAB)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40))
def test_truncate_pair_lengths_matches_bert_loop(len_a: int, len_b: int, room: int) -> None:
    got = truncate_pair_lengths(np.array([len_a]), np.array([len_b]), room)
    assert (int(got[0][0]), int(got[1][0])) == reference_truncate(len_a, len_b, room)


# ------------------------------------------------------------------ model dirs


def write_tokenizer_json(path: Path, vocab_file: Path, *, lowercase: bool = True) -> None:
    """A tokenizer.json with padding and truncation fixed at 4, like the shipped one at 128."""
    hf = BertWordPieceTokenizer(str(vocab_file), lowercase=lowercase)
    hf.enable_truncation(4)
    hf.enable_padding(length=4)
    hf.save(str(path))


def test_from_model_dir_prefers_vocab_and_reads_lowercase(tmp_path: Path, vocab_file: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "vocab.txt").write_bytes(vocab_file.read_bytes())
    write_tokenizer_json(model_dir / "tokenizer.json", vocab_file, lowercase=False)
    tok = PairTokenizer.from_model_dir(model_dir, max_seq_length=10)
    assert tok.source.endswith("vocab.txt") and tok.lowercase is False
    assert tok.max_seq_length == 10
    (model_dir / "tokenizer.json").unlink()
    assert PairTokenizer.from_model_dir(model_dir).lowercase is True


def test_from_model_dir_tokenizer_json_ignores_its_padding(tmp_path: Path, vocab_file: Path) -> None:
    write_tokenizer_json(tmp_path / "tokenizer.json", vocab_file)
    tok = PairTokenizer.from_model_dir(tmp_path, max_seq_length=12)
    enc = tok.encode(["The cat sat."], ["Dogs run"])
    assert enc["input_ids"][0].tolist() == [
        CLS, *ids("the", "cat", "sat", "."), SEP, *ids("dog", "##s", "run"), SEP, PAD, PAD]
    assert tok.vocab_size == len(VOCAB)


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [2, 0, -5, 3.0, "64", True, None])
def test_bad_max_seq_length(tok: PairTokenizer, bad: object) -> None:
    if bad is None:  # None means "the default", so test the constructor instead
        with pytest.raises(LRPPruneError, match="max_seq_length: expected an int >= 3"):
            PairTokenizer(tok.source, max_seq_length=None)  # type: ignore[arg-type]
        return
    with pytest.raises(LRPPruneError, match="max_seq_length: expected an int >= 3"):
        tok.encode(["a"], ["b"], max_seq_length=bad)  # type: ignore[arg-type]


def test_bad_texts(tok: PairTokenizer) -> None:
    with pytest.raises(LRPPruneError, match="first: expected a sequence of str"):
        tok.encode("the cat", None, 8)
    with pytest.raises(LRPPruneError, match=r"second\[1\]: expected a str, got 5"):
        tok.encode(["a", "b"], ["a", 5], 8)  # type: ignore[list-item]
    with pytest.raises(LRPPruneError, match="second: expected 2 texts, as many as first, got 1"):
        tok.encode(["a", "b"], ["a"], 8)


def test_missing_vocab_and_specials(tmp_path: Path) -> None:
    with pytest.raises(LRPPruneError, match="vocab_file: expected an existing vocab.txt"):
        PairTokenizer(tmp_path / "missing.txt")
    (tmp_path / "vocab.txt").write_text("[UNK]\n[CLS]\ncat\n")
    with pytest.raises(LRPPruneError, match=r"missing \['\[SEP\]'\]"):
        PairTokenizer(tmp_path / "vocab.txt")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(LRPPruneError, match="model_dir: expected a directory with vocab.txt"):
        PairTokenizer.from_model_dir(empty)


def test_pad_id_defaults_to_zero_without_pad_token(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\ncat\n")
    enc = PairTokenizer(tmp_path / "vocab.txt").encode(["cat"], ["cat"], 7)
    assert enc["input_ids"][0].tolist() == [1, 3, 2, 3, 2, 0, 0]


# ---------------------------------------------------------------- (from the old reliability tests)
def test_token_ids_beyond_the_model_vocab_are_refused_by_encode_split(tiny_nli):
    from lrp_prune.app.pipeline import encode_split
    from lrp_prune.data.tokenization import PairTokenizer

    tok = PairTokenizer(tiny_nli["vocab_file"], max_seq_length=16)
    examples = NLIExamples(("a man plays guitar",), ("the dog sits",), [1], ("g",))
    arrays = encode_split(tok, examples, 16, vocab_size=tok.vocab_size)
    assert arrays["input_ids"].max() < tok.vocab_size and arrays["label_ids"].tolist() == [1]
    top = int(arrays["input_ids"].max())
    with pytest.raises(LRPPruneError) as info:
        encode_split(tok, examples, 16, vocab_size=10)
    message = str(info.value)
    assert message.startswith("vocab_file: expected token ids below the model's vocab_size (10)")
    assert message.endswith(f"got {top}")


def test_encode_split_refuses_labels_outside_the_classes(tiny_nli):
    from lrp_prune.app.pipeline import encode_split
    from lrp_prune.data.tokenization import PairTokenizer

    tok = PairTokenizer(tiny_nli["vocab_file"], max_seq_length=16)
    examples = types.SimpleNamespace(premises=("a man plays", "a dog sits"), hypotheses=("a man", "a cat"),
                                     labels=np.array([1, 5]))  # e.g. a label array built by hand
    with pytest.raises(LRPPruneError) as info:
        encode_split(tok, examples, 16, vocab_size=tok.vocab_size)
    message = str(info.value)
    assert message.startswith("label") and "[0, 3)" in message and "5" in message

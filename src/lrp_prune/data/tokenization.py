"""WordPiece tokenization of sentence pairs into fixed-shape BERT inputs.

:class:`PairTokenizer` wraps HuggingFace ``tokenizers`` (Rust, no torch) for the
WordPiece split and does the BERT assembly itself, so the result does not depend on
the padding or truncation baked into a ``tokenizer.json``::

    [CLS] a_1 .. a_i [SEP] b_1 .. b_j [SEP] 0 .. 0      input_ids
      0    0  ..  0    0    1  ..  1    1   0 .. 0      token_type_ids
      1    1  ..  1    1    1  ..  1    1   0 .. 0      input_mask

Pairs that do not fit are cut longest-first, exactly as BERT's
``_truncate_seq_pair`` (GLUE ``run_classifier``) does: one token at a time from the
longer side, from the second sentence on a tie.

Example:
    >>> import pathlib, tempfile
    >>> vocab = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = vocab.write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "cat", "sat"]))
    >>> tok = PairTokenizer(vocab)
    >>> enc = tok.encode(["A cat"], ["cat sat"], max_seq_length=8)
    >>> enc["input_ids"].tolist()
    [[2, 4, 5, 3, 5, 6, 3, 0]]
    >>> enc["token_type_ids"].tolist(), enc["lengths"].tolist()
    ([[0, 0, 0, 0, 1, 1, 1, 0]], [7])
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import BertWordPieceTokenizer, Tokenizer

from lrp_prune.errors import LRPPruneError, expect
from lrp_prune.textfiles import read_text

__all__ = ["PairTokenizer", "truncate_pair_lengths", "encode_examples"]

logger = logging.getLogger(__name__)

_SPECIAL = ("[CLS]", "[SEP]", "[UNK]")


def truncate_pair_lengths(
    len_a: np.ndarray, len_b: np.ndarray, max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lengths kept by BERT's longest-first pair truncation, vectorised.

    Equivalent to popping one token at a time from the longer sequence (the
    second on a tie) until ``len_a + len_b <= max_tokens``.

    Args:
        len_a: (N,) token counts of the first sentences.
        len_b: (N,) token counts of the second sentences.
        max_tokens: room for both, i.e. ``max_seq_length - 3``.

    Returns:
        (kept_a, kept_b), each (N,) int64.

    Example:
        >>> a, b = truncate_pair_lengths(np.array([10, 2, 3]), np.array([10, 10, 1]), 5)
        >>> a.tolist(), b.tolist()
        ([3, 2, 3], [2, 3, 1])
    """
    len_a = np.asarray(len_a, dtype=np.int64)
    len_b = np.asarray(len_b, dtype=np.int64)
    fits = len_a + len_b <= max_tokens
    short = np.minimum(len_a, len_b)
    only_longer = 2 * short <= max_tokens  # the shorter side survives whole
    keep_a = np.where(
        fits, len_a,
        np.where(only_longer, np.where(len_a <= len_b, len_a, max_tokens - len_b),
                 (max_tokens + 1) // 2),
    )
    keep_b = np.where(
        fits, len_b,
        np.where(only_longer, np.where(len_a <= len_b, max_tokens - len_a, len_b),
                 max_tokens // 2),
    )
    return keep_a, keep_b


class PairTokenizer:
    """BERT WordPiece tokenizer producing padded int32 arrays for single sentences or pairs.

    ``encode(texts)`` (or ``encode(texts, None)``) encodes single sentences as
    ``[CLS] a [SEP]``, e.g. for a sentiment classifier; ``encode(first, second)`` encodes
    pairs as ``[CLS] a [SEP] b [SEP]`` (NLI, paraphrase).

    Example:
        >>> import pathlib, tempfile
        >>> vocab = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
        >>> _ = vocab.write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "great", "film"]))
        >>> tok = PairTokenizer(vocab, max_seq_length=6)
        >>> enc = tok.encode(["Great film", "film"])           # single sentences
        >>> enc["input_ids"].tolist(), enc["lengths"].tolist()
        ([[2, 4, 5, 3, 0, 0], [2, 5, 3, 0, 0, 0]], [4, 3])

    Args:
        vocab_file: a BERT ``vocab.txt`` (one token per line, id = line number);
            it must contain ``[CLS]``, ``[SEP]`` and ``[UNK]``.
        lowercase: lowercase and strip accents first (uncased models).
        max_seq_length: default length of encoded rows (an int >= 3).

    Raises:
        LRPPruneError: missing file, missing special token, bad ``max_seq_length``.
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike[str],
        *,
        lowercase: bool = True,
        max_seq_length: int = 128,
    ) -> None:
        vocab_file = Path(vocab_file)
        expect(vocab_file.is_file(), "vocab_file", "an existing vocab.txt", str(vocab_file))
        _check_max_seq_length(max_seq_length)
        lines = read_text(vocab_file, "vocab_file").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline ending the last line
        # id = line number, the token stripped at its end, a later duplicate winning: as BERT's
        # load_vocab and the tokenizers library's own reader (which would keep a BOM in the first token)
        vocab = {line.rstrip(): index for index, line in enumerate(lines)}
        _check_specials(str(vocab_file), [tok for tok in _SPECIAL if tok not in vocab])
        tokenizer = BertWordPieceTokenizer(vocab, lowercase=lowercase)
        self._init(tokenizer, str(vocab_file), max_seq_length)
        self.lowercase = lowercase
        self.last_truncated = 0

    @classmethod
    def from_model_dir(
        cls, model_dir: str | os.PathLike[str], max_seq_length: int = 128
    ) -> PairTokenizer:
        """Build from a HuggingFace BERT directory (``vocab.txt`` or ``tokenizer.json``).

        ``vocab.txt`` is preferred; the lowercase flag is then read from the
        normalizer in ``tokenizer.json`` when present (default True). Without a
        ``vocab.txt``, ``tokenizer.json`` is loaded and its own padding and
        truncation are switched off.

        Args:
            model_dir: directory of the model.
            max_seq_length: default length of encoded rows (an int >= 3).

        Raises:
            LRPPruneError: the directory has neither file.
        """
        model_dir = Path(model_dir)
        vocab, tok_json = model_dir / "vocab.txt", model_dir / "tokenizer.json"
        if vocab.is_file():
            lowercase = _json_lowercase(tok_json) if tok_json.is_file() else None
            return cls(vocab, lowercase=True if lowercase is None else lowercase,
                       max_seq_length=max_seq_length)
        expect(
            tok_json.is_file(), "model_dir", "a directory with vocab.txt or tokenizer.json",
            str(model_dir),
        )
        _check_max_seq_length(max_seq_length)
        try:
            tokenizer = Tokenizer.from_str(read_text(tok_json, "tokenizer.json"))
        except Exception as err:  # the Rust parser raises its own Exception type
            if isinstance(err, LRPPruneError):
                raise
            raise LRPPruneError(f"tokenizer.json: expected a HuggingFace tokenizers file, got {str(tok_json)!r} "
                                f"that does not parse ({str(err)[:160]})") from None
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self = cls.__new__(cls)
        self._init(tokenizer, str(tok_json), max_seq_length)
        self.lowercase = bool(_json_lowercase(tok_json))
        self.last_truncated = 0
        return self

    def _init(self, tokenizer: object, source: str, max_seq_length: int) -> None:
        self._tokenizer = tokenizer
        self.source = source
        self.max_seq_length = max_seq_length
        ids = {tok: tokenizer.token_to_id(tok) for tok in (*_SPECIAL, "[PAD]")}
        _check_specials(source, [tok for tok in _SPECIAL if ids[tok] is None])
        self.cls_id, self.sep_id = int(ids["[CLS]"]), int(ids["[SEP]"])
        self.pad_id = int(ids["[PAD]"]) if ids["[PAD]"] is not None else 0
        logger.debug("PairTokenizer from %s: vocab %d", source, self.vocab_size)

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return int(self._tokenizer.get_vocab_size())

    def __repr__(self) -> str:
        return (f"PairTokenizer(source={self.source!r}, vocab_size={self.vocab_size}, "
                f"lowercase={self.lowercase}, max_seq_length={self.max_seq_length})")

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of one text, without special tokens.

        Example:
            >>> import pathlib, tempfile
            >>> v = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
            >>> _ = v.write_text("[UNK]\\n[CLS]\\n[SEP]\\nplay\\n##ing")
            >>> PairTokenizer(v).tokenize("Playing xyz")
            ['play', '##ing', '[UNK]']
        """
        expect(isinstance(text, str), "text", "a str", text)
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def encode(
        self,
        first: Sequence[str],
        second: Sequence[str] | None = None,
        max_seq_length: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Encode N sentences (or sentence pairs) into fixed-shape arrays.

        Args:
            first: N first sentences (premises).
            second: N second sentences (hypotheses), or None for single sentences
                (``[CLS] a [SEP]``).
            max_seq_length: row length L, an int >= 3; default the instance's.

        Returns:
            ``input_ids``, ``token_type_ids``, ``input_mask``: int32 (N, L);
            ``lengths``: int32 (N,), the number of real tokens per row (mask sum).

        Raises:
            LRPPruneError: bad ``max_seq_length``, a str instead of a sequence of
                str, non-str items, or ``first`` and ``second`` of different lengths.
        """
        max_len = self.max_seq_length if max_seq_length is None else max_seq_length
        _check_max_seq_length(max_len)
        first = _check_texts("first", first)
        n = len(first)
        if second is not None:
            second = _check_texts("second", second)
            expect(len(second) == n, "second", f"{n} texts, as many as first", len(second))

        ids_a = self._wordpiece_ids(first)
        if second is None:
            len_a = np.minimum([len(x) for x in ids_a], max_len - 2)
            ids_b: list[list[int]] = [[] for _ in range(n)]
            len_b = np.zeros(n, dtype=np.int64)
        else:
            ids_b = self._wordpiece_ids(second)
            len_a, len_b = truncate_pair_lengths(
                np.array([len(x) for x in ids_a], dtype=np.int64),
                np.array([len(x) for x in ids_b], dtype=np.int64),
                max_len - 3,
            )

        input_ids = np.full((n, max_len), self.pad_id, dtype=np.int32)  # (N, L)
        token_type_ids = np.zeros((n, max_len), dtype=np.int32)  # (N, L)
        lengths = np.zeros(n, dtype=np.int32)  # (N,)
        cls, sep = [self.cls_id], [self.sep_id]
        for i in range(n):
            a, b = ids_a[i][: len_a[i]], ids_b[i][: len_b[i]]
            row = cls + a + sep + (b + sep if second is not None else [])
            input_ids[i, : len(row)] = row
            token_type_ids[i, len(a) + 2 : len(row)] = 1
            lengths[i] = len(row)
        input_mask = (np.arange(max_len)[None, :] < lengths[:, None]).astype(np.int32)  # (N, L)
        self.last_truncated = int(sum(len(ids_a[i]) > len_a[i] or len(ids_b[i]) > len_b[i] for i in range(n)))
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "input_mask": input_mask,
            "lengths": lengths,
        }

    def _wordpiece_ids(self, texts: list[str]) -> list[list[int]]:
        # NLI premises repeat (~3.6 hypotheses each in SNLI): encode each text once.
        unique = list(dict.fromkeys(texts))
        encodings = self._tokenizer.encode_batch(unique, add_special_tokens=False)
        ids = {text: enc.ids for text, enc in zip(unique, encodings)}
        return [ids[text] for text in texts]


def _check_max_seq_length(value: object) -> None:
    expect(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 3,
        "max_seq_length", "an int >= 3 (room for [CLS] a [SEP] b [SEP])", value,
    )


def _check_specials(source: str, missing: list[str]) -> None:
    if missing:
        raise LRPPruneError(
            f"vocabulary of {source}: expected special tokens {list(_SPECIAL)}, "
            f"missing {missing}"
        )


def _check_texts(field: str, texts: object) -> list[str]:
    expect(not isinstance(texts, (str, bytes)), field,
           "a sequence of str (wrap a single text in a list)", texts)
    try:
        texts = list(texts)  # type: ignore[call-overload]
    except TypeError:
        raise LRPPruneError(f"{field}: expected a sequence of str, got {texts!r:.120}") from None
    for i, text in enumerate(texts):
        expect(isinstance(text, str), f"{field}[{i}]", "a str", text)
    return texts


def _json_lowercase(tokenizer_json: Path) -> bool | None:
    """The ``lowercase`` flag of a BertNormalizer in ``tokenizer.json``, if any."""
    try:
        spec = json.loads(read_text(tokenizer_json, "tokenizer.json"))
    except (OSError, ValueError) as err:
        logger.warning("could not read %s: %s", tokenizer_json, err)
        return None
    normalizer = spec.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        return bool(normalizer.get("lowercase", True))
    if normalizer.get("type") == "Sequence":
        return any(n.get("type") == "Lowercase" for n in normalizer.get("normalizers", []))
    return None


def encode_examples(tokenizer: PairTokenizer, examples, max_seq_length: int, vocab_size: int,
                    stats: dict | None = None) -> dict[str, np.ndarray]:
    """Tokenize examples (single texts or pairs) into fixed-length arrays plus ``label_ids``.

    Args:
        tokenizer: the model's tokenizer.
        examples: :class:`~lrp_prune.data.examples.TextExamples` (or ``NLIExamples``).
        max_seq_length: row length.
        vocab_size: the model's vocabulary size (every token id must be below it).
        stats: filled with ``{"examples": N, "truncated": n}``: how many rows lost tokens to
            ``max_seq_length``.

    Raises:
        LRPPruneError: a token id the model has no embedding for (a vocab file that does
            not belong to the model), or labels outside the classes.
    """
    names = tuple(getattr(examples, "label_names", ("contradiction", "entailment", "neutral")))
    first = getattr(examples, "first", None) or examples.premises  # any object with premises/hypotheses too
    second = getattr(examples, "second", None) if hasattr(examples, "first") else examples.hypotheses
    arrays = tokenizer.encode(list(first), None if second is None else list(second), max_seq_length)
    if stats is not None:
        stats.update(examples=len(arrays["input_ids"]), truncated=tokenizer.last_truncated)
    top = int(arrays["input_ids"].max()) if len(arrays["input_ids"]) else 0
    expect(top < vocab_size, "vocab_file", f"token ids below the model's vocab_size ({vocab_size})", top)
    labels = np.asarray(examples.labels)
    n = len(arrays["input_ids"])
    expect(labels.shape == (n,) and (n == 0 or np.issubdtype(labels.dtype, np.integer)), "labels",
           f"{n} integer class ids (one per example)", f"{labels.dtype} array of shape {labels.shape}")
    bad = sorted(set(labels[(labels < 0) | (labels >= len(names))].tolist()))
    expect(not bad, "labels", f"class ids in [0, {len(names)}) ({', '.join(names)})", bad[:5])
    arrays["label_ids"] = labels.astype(np.int32)
    return arrays

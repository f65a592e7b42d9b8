"""Reading the text files users hand the library: UTF-8 (with or without a BOM), or a clear error.

Configs, vocabularies, TSV and JSON Lines data all come through :func:`read_text`, so a file
saved as UTF-16 or Latin-1 is one :class:`~lrp_prune.errors.LRPPruneError` naming the path
and what to do, never a bare ``UnicodeDecodeError``.

Example:
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = p.write_bytes("\\ufeff[CLS]\\ncafé".encode("utf-8"))  # with a BOM
    >>> read_text(p, "vocab_file").splitlines()
    ['[CLS]', 'café']
    >>> _ = p.write_bytes("café".encode("utf-16"))
    >>> try:
    ...     read_text(p, "vocab_file")
    ... except LRPPruneError as err:
    ...     print(str(err).split(";")[0])
    vocab_file: expected UTF-8 text, got bytes that are not UTF-8 (it looks like UTF-16)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from lrp_prune.errors import LRPPruneError, expect

__all__ = ["read_text", "read_json_file", "json_lines"]


def _guess(data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "it looks like UTF-16"
    if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return "it looks like UTF-32"
    if b"\x00" in data[:1000]:
        return "it holds NUL bytes: UTF-16 or binary?"
    return "Latin-1 or another 8-bit encoding?"


def read_text(path: str | Path, what: str) -> str:
    """The text of ``path`` decoded as UTF-8 (a BOM is dropped); ``\\r\\n`` stays as it is.

    Args:
        path: the file.
        what: how to name it in errors (the option or file kind: ``"vocab_file"``, ``"MNLI file"``).

    Raises:
        LRPPruneError: no such file, or not UTF-8 (naming the path and how to fix it).
    """
    path = Path(path)
    expect(path.is_file(), what, "an existing file", str(path))
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise LRPPruneError(
            f"{what}: expected UTF-8 text, got bytes that are not UTF-8 ({_guess(data)}); at byte {err.start} of "
            f"{str(path)!r}; re-save the file as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)") from None


def read_json_file(path: str | Path, what: str) -> Any:
    """Parse a UTF-8 JSON file; a clear error naming the path for bad encoding or bad JSON."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise LRPPruneError(f"{str(path)!r}: expected valid JSON, got a parse error ({err})") from None


def json_lines(text: str, path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of JSON Lines ``text`` read from ``path``.

    Raises:
        LRPPruneError: a line that is not valid JSON, naming ``path:line``.

    Example:
        >>> list(json_lines(chr(10).join(['{"a": 1}', '', '[2]']), "x.jsonl"))
        [(1, {'a': 1}), (3, [2])]
    """
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield line_no, json.loads(line)
        except json.JSONDecodeError as err:
            raise LRPPruneError(f"{path}:{line_no}: expected a JSON object per line, got invalid JSON ({err})") \
                from None

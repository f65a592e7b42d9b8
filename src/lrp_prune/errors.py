"""The library's single error type.

Every invalid input that lrp_prune detects raises :class:`LRPPruneError`, a
:class:`ValueError` subclass, with a message that names the field, what was
expected and what was received.

Example:
    >>> from lrp_prune.errors import LRPPruneError, expect
    >>> try:
    ...     expect(False, "l0_penalty", "a number >= 0", -1)
    ... except LRPPruneError as err:
    ...     print(err)
    l0_penalty: expected a number >= 0, got -1
"""

from __future__ import annotations

from typing import Any

__all__ = ["LRPPruneError", "expect", "describe"]


class LRPPruneError(ValueError):
    """Raised for every invalid input that lrp_prune detects."""


def describe(value: Any) -> str:
    """Short, readable repr of a received value for error messages."""
    text = repr(value)
    if len(text) > 120:
        text = text[:117] + "..."
    return text


def expect(condition: bool, field: str, expected: str, received: Any) -> None:
    """Raise :class:`LRPPruneError` unless ``condition`` holds.

    Args:
        condition: what must be true.
        field: the name of the checked thing (a config key, a file, an argument).
        expected: what was expected, phrased to follow "expected".
        received: the value actually received; it is shown with ``repr``.

    Raises:
        LRPPruneError: ``"<field>: expected <expected>, got <received>"``.
    """
    if not condition:
        raise LRPPruneError(f"{field}: expected {expected}, got {describe(received)}")

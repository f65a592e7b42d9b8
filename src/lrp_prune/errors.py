"""The library's single error type and the validators every module checks its inputs with.

Every invalid input that lrp_prune detects raises :class:`LRPPruneError`, a
:class:`ValueError` subclass, with a message that names the field, what was
expected and what was received. The ``check_*`` helpers below are the one place
where "an integer, not a bool", "a finite number in a range" and "one of these
choices" are written; each returns the value, normalised (a numpy integer becomes
an ``int``, a number a ``float``).

Example:
    >>> from lrp_prune.errors import LRPPruneError, check_int, check_number, expect
    >>> try:
    ...     expect(False, "l0_penalty", "a number >= 0", -1)
    ... except LRPPruneError as err:
    ...     print(err)
    l0_penalty: expected a number >= 0, got -1
    >>> import numpy as np
    >>> check_int(np.int64(32), "batch_size", minimum=1)
    32
    >>> try:
    ...     check_number(float("inf"), "temperature", minimum=0, strict=True)
    ... except LRPPruneError as err:
    ...     print(err)
    temperature: expected a finite positive number, got inf
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Collection, TypeVar

__all__ = [
    "LRPPruneError",
    "expect",
    "describe",
    "is_int",
    "is_number",
    "check_int",
    "check_number",
    "check_fraction",
    "check_bool",
    "check_choice",
]

_T = TypeVar("_T")


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


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool.

    Example:
        >>> import numpy as np
        >>> is_int(3), is_int(np.int32(3)), is_int(True), is_int(3.0)
        (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np_bool()))


def is_number(value: Any) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np_bool()))


def np_bool() -> type:
    """numpy's bool type (imported lazily: this module imports nothing heavy)."""
    import numpy as np

    return np.bool_


def _range_phrase(noun: str, minimum: Any, maximum: Any, strict: bool, strict_max: bool) -> str:
    """"a finite number in [0, 1)", "an integer >= 0", "a finite positive number", ..."""
    article = "an" if noun[0] in "aeiou" else "a"
    if minimum is not None and maximum is not None:
        left, right = ("(" if strict else "["), (")" if strict_max else "]")
        return f"{article} {noun} in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        if minimum == 0 and strict:
            words = noun.split(" ")
            return "a " + " ".join(words[:-1] + ["positive", words[-1]])
        return f"{article} {noun} {'>' if strict else '>='} {minimum}"
    if maximum is not None:
        return f"{article} {noun} {'<' if strict_max else '<='} {maximum}"
    return f"{article} {noun}"


def check_int(value: Any, field: str, *, minimum: int | None = None, maximum: int | None = None,
              optional: bool = False, expected: str | None = None) -> int | None:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) in ``[minimum, maximum]``.

    Args:
        value: what to check.
        field: its name in the message.
        minimum / maximum: inclusive bounds (``None``: unbounded).
        optional: ``None`` is accepted (and returned).
        expected: the phrase after "expected" (default: built from the bounds,
            e.g. "a positive integer" for ``minimum=1``).

    Example:
        >>> check_int(None, "train_steps", minimum=1, optional=True) is None
        True
        >>> try:
        ...     check_int(0, "batch_size", minimum=1)
        ... except LRPPruneError as err:
        ...     print(err)
        batch_size: expected a positive integer, got 0
    """
    if value is None and optional:
        return None
    if expected is None:
        expected = "a positive integer" if minimum == 1 and maximum is None else \
            _range_phrase("integer", minimum, maximum, False, False)
        if optional:
            expected += " or None"
    ok = is_int(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    expect(ok, field, expected, value)
    return int(value)


def check_number(value: Any, field: str, *, minimum: float | None = None, maximum: float | None = None,
                 strict: bool = False, strict_max: bool = False, finite: bool = True, optional: bool = False,
                 expected: str | None = None) -> float | None:
    """Return ``value`` as a ``float`` if it is a real number (not a bool) in range.

    Args:
        value: what to check.
        field: its name in the message.
        minimum / maximum: bounds (``None``: unbounded).
        strict: the lower bound is exclusive (``minimum=0, strict=True``: positive).
        strict_max: the upper bound is exclusive.
        finite: refuse inf and nan (the default; float32 overflow counts as inf).
        optional: ``None`` is accepted (and returned).
        expected: the phrase after "expected" (default: built from the bounds).

    Example:
        >>> check_number(2, "learning_rate", minimum=0, strict=True)
        2.0
        >>> try:
        ...     check_number(1e39, "l0_penalty", minimum=0)
        ... except LRPPruneError as err:
        ...     print(err)
        l0_penalty: expected a finite number >= 0 (float32 range), got 1e+39
    """
    if value is None and optional:
        return None
    noun = "finite number" if finite else "number"
    if expected is None:
        expected = _range_phrase(noun, minimum, maximum, strict, strict_max)
        if finite and minimum is not None and maximum is None:
            expected += " (float32 range)" if is_number(value) and math.isfinite(value) and abs(value) > 3.4e38 \
                else ""
        if optional:
            expected += " or None"
    ok = is_number(value)
    if ok:
        x = float(value)
        ok = not math.isnan(x) if not finite else (math.isfinite(x) and abs(x) <= 3.4e38)
        ok = ok and (minimum is None or (x > minimum if strict else x >= minimum))
        ok = ok and (maximum is None or (x < maximum if strict_max else x <= maximum))
    expect(ok, field, expected, value)
    return float(value)


def check_fraction(value: Any, field: str, *, closed_low: bool = False, closed_high: bool = False,
                   expected: str | None = None) -> float:
    """A number in ``(0, 1)`` (``closed_low``/``closed_high`` include 0 or 1).

    Example:
        >>> check_fraction(0.25, "warmup_fraction", closed_low=True)
        0.25
    """
    return check_number(value, field, minimum=0, maximum=1, strict=not closed_low, strict_max=not closed_high,
                        expected=expected)


def check_bool(value: Any, field: str) -> bool:
    """A bool (Python or numpy).

    Example:
        >>> check_bool(True, "dropout")
        True
    """
    expect(isinstance(value, (bool, np_bool())), field, "True or False", value)
    return bool(value)


def check_choice(value: _T, field: str, choices: Collection[Any], expected: str | None = None) -> _T:
    """``value`` if it is one of ``choices``.

    Example:
        >>> check_choice("mean", "pooling", ("pooler", "cls", "mean"))
        'mean'
    """
    expect(value in choices if isinstance(value, (str, int, float, type(None))) else False, field,
           expected or f"one of {tuple(choices)}", value)
    return value

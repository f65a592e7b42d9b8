"""Checkpoints: strict loading with readable reports, and atomic writes.

ModelZoo checkpoints come with different prefixes: a bare ``BertModel`` has
``bert_encoder...``, a ``BertCLSModel`` has ``bert.bert_encoder...`` and a
fine-tuning ``BertCLS`` has ``bert.bert.bert_encoder...``. Loading aligns the
prefixes automatically (the alignment with the most matching names wins),
then checks every parameter: missing, unexpected and shape-mismatched names
are reported by name. Gate parameters (``log_a``) missing from a checkpoint
are allowed, so a plain checkpoint loads into a gated model.

Example:
    >>> import tempfile, os
    >>> from lrp_prune import BertConfig, BertModel
    >>> from lrp_prune.io.checkpoint import save_checkpoint, load_checkpoint
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.ckpt")
    >>> save_checkpoint(BertModel(cfg, False), path)
    >>> report = load_checkpoint(path, BertModel(cfg, False))
    >>> len(report.loaded), report.missing, report.unexpected
    (23, [], [])
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from lrp_prune.errors import LRPPruneError

__all__ = [
    "LoadReport",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable_dir",
    "is_optimizer_state",
    "save_checkpoint",
    "save_param_dict",
    "read_checkpoint",
    "load_checkpoint",
    "load_param_dict",
    "param_dict",
]

logger = logging.getLogger(__name__)
_PREFIXES = ("", "bert.", "bert.bert.")
ALLOWED_MISSING_SUFFIXES = ("log_a", "budget.multipliers", "budget.target_now", "budget.slopes")  # what apply() adds


@dataclass
class LoadReport:
    """What a load did: names loaded, missing (kept their values), unexpected (ignored)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    strip: str = ""
    add: str = ""


# ---------------------------------------------------------------------------- atomic writes
def check_writable_dir(path: str | Path, what: str = "save_dir_path") -> Path:
    """Create ``path`` as a directory if needed; a clear error if it is a file or not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LRPPruneError(f"{what}: expected a directory, got an existing file {str(path)!r}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LRPPruneError(f"{what}: expected a creatable directory, got {str(path)!r} ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise LRPPruneError(f"{what}: expected a writable directory, got {str(path)!r} (permission denied)")
    return path


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    An exception (or ``KeyboardInterrupt``) inside the block removes the temporary
    file and leaves any earlier ``final`` untouched.
    """
    final = Path(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------- save / read
def param_dict(cell: nn.Cell) -> dict[str, np.ndarray]:
    """``{full parameter path: numpy value}`` of every parameter of ``cell``."""
    return {name: p.asnumpy() for name, p in cell.parameters_and_names()}


def save_checkpoint(cell: nn.Cell, path: str | Path) -> None:
    """Save every parameter of ``cell`` under its full path, atomically.

    Names come from the cell's structure (not from ``Parameter.name``, which
    MindSpore fixes when a cell is first attached), so they are always unique
    and ModelZoo-shaped.
    """
    save_param_dict({name: p.asnumpy() for name, p in cell.parameters_and_names()}, path)


def save_param_dict(values: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Save ``{name: array}`` as a MindSpore checkpoint, atomically."""
    path = Path(path)
    check_writable_dir(path.parent, "checkpoint directory")
    entries = [{"name": name, "data": Tensor(np.asarray(value))} for name, value in values.items()]
    with atomic_path(path) as tmp:
        ms.save_checkpoint(entries, str(tmp))
        # MindSpore may append .ckpt to a name that lacks it
        written = tmp if tmp.exists() and tmp.stat().st_size else Path(str(tmp) + ".ckpt")
        if written != tmp:
            os.replace(written, tmp)


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Read a MindSpore checkpoint into ``{name: numpy array}``; a clear error if it is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise LRPPruneError(f"checkpoint: expected an existing file, got {str(path)!r}")
    try:
        loaded = ms.load_checkpoint(str(path))
    except Exception as err:  # MindSpore raises ValueError/RuntimeError for corrupt files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LRPPruneError(f"checkpoint {str(path)!r}: expected a readable MindSpore checkpoint, "
                            f"got a corrupt or truncated file ({first[:200]})") from None
    if not loaded:
        raise LRPPruneError(f"checkpoint {str(path)!r}: expected at least one parameter, got none")
    return {name: value.asnumpy() for name, value in loaded.items()}


# ---------------------------------------------------------------------------- load
#: Names a training cell saves beside the weights (MindSpore optimizers, loss scaling, ModelZoo loops).
_OPTIMIZER_STATE_PREFIXES = ("moment1.", "moment2.", "adam_m.", "adam_v.", "accum.", "moments.", "stat.")
_OPTIMIZER_STATE_NAMES = ("global_step", "learning_rate", "beta1_power", "beta2_power", "scale_sense",
                          "current_iterator_step", "last_overflow_iterator_step", "epoch_num", "step_num",
                          "loss_scale", "global_norm", "clip_global_norm")


def is_optimizer_state(name: str) -> bool:
    """Whether a checkpoint entry is optimizer or loop state rather than a model weight."""
    return name.startswith(_OPTIMIZER_STATE_PREFIXES) or name in _OPTIMIZER_STATE_NAMES


def _align(ckpt_names: list[str], model_names: list[str]) -> tuple[str, str]:
    """The (strip, add) prefix pair under which most checkpoint names match model names."""
    model_set = set(model_names)
    best, best_count = ("", ""), -1
    for strip in _PREFIXES:
        for add in _PREFIXES:
            count = sum(1 for n in ckpt_names if n.startswith(strip) and add + n[len(strip):] in model_set)
            if count > best_count:
                best, best_count = (strip, add), count
    return best


def load_param_dict(model: nn.Cell, values: Mapping[str, np.ndarray], *, strict: bool = True,
                    source: str = "checkpoint",
                    allow_missing: Callable[[str], bool] | None = None) -> LoadReport:
    """Copy ``values`` into ``model``'s parameters, checking names and shapes.

    Args:
        model: the cell to fill.
        values: ``{name: array}`` (ModelZoo names, with any of the known prefixes).
        strict: when ``True`` missing or unexpected names raise; shape mismatches always raise.
        source: how to name the values in messages (usually the file path).
        allow_missing: names for which missing is fine; default: what ``apply()`` adds
            (gate ``log_a`` and the target budget's multipliers).

    Raises:
        LRPPruneError: names the missing, unexpected and mismatched parameters.
    """
    allow_missing = allow_missing or (lambda name: name.endswith(ALLOWED_MISSING_SUFFIXES))
    params = dict(model.parameters_and_names())
    state = [n for n in values if is_optimizer_state(n) and n not in params]
    if state:  # a checkpoint saved from a train cell also holds the optimizer's moments
        logger.info("%s: ignoring %d optimizer/loop entries (e.g. %s)", source, len(state), state[0])
        values = {n: v for n, v in values.items() if n not in set(state)}
    strip, add = _align(list(values), list(params))
    mapped = {add + n[len(strip):]: n for n in values if n.startswith(strip)}
    report = LoadReport(strip=strip, add=add)
    report.unexpected = sorted(n for n in values if not n.startswith(strip) or add + n[len(strip):] not in params)
    report.missing = sorted(n for n in params if n not in mapped and not allow_missing(n))
    mismatched = []
    for name, src_name in mapped.items():
        if name in params and tuple(values[src_name].shape) != tuple(params[name].shape):
            mismatched.append(f"{name} (expected {tuple(params[name].shape)}, got {tuple(values[src_name].shape)})")
    problems = []
    if mismatched:
        problems.append(f"shape mismatch for {mismatched}")
    if strict and report.missing:
        problems.append(f"missing {_short(report.missing)}")
    if strict and report.unexpected:
        problems.append(f"unexpected {_short(report.unexpected)}")
    if problems:
        raise LRPPruneError(f"{source}: expected parameters matching the model "
                            f"({type(model).__name__}), got " + "; ".join(problems))
    for name, src_name in mapped.items():
        if name in params:
            param = params[name]
            param.set_data(Tensor(np.asarray(values[src_name]), param.dtype))
            report.loaded.append(name)
    if report.missing:
        logger.warning("%s: %d parameters not in the checkpoint kept their values: %s",
                       source, len(report.missing), _short(report.missing))
    if report.unexpected:
        logger.warning("%s: %d unexpected parameters ignored: %s", source, len(report.unexpected),
                       _short(report.unexpected))
    return report


def load_checkpoint(path: str | Path, model: nn.Cell, *, strict: bool = True) -> LoadReport:
    """Load a MindSpore checkpoint (ModelZoo names) into ``model``; see :func:`load_param_dict`."""
    return load_param_dict(model, read_checkpoint(path), strict=strict, source=f"checkpoint {str(path)!r}")


def _short(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)})"

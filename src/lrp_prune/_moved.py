"""The module paths of lrp_prune 0.1's flat layout, kept working after the move into subpackages.

``import lrp_prune.flow`` (or ``from lrp_prune.train import adamw``) still works: each old
path below is a small module, made on first import, that re-exports the names of the
modules it moved to (it *is* no copy: the objects are the same). New code should import
from the new paths; ``docs/architecture.md`` has the map.

Example:
    >>> import lrp_prune.flow, lrp_prune.app.pipeline
    >>> lrp_prune.flow.run_prune is lrp_prune.app.pipeline.run_prune
    True
    >>> from lrp_prune.train import adamw
    >>> adamw.__module__
    'lrp_prune.training.optim'
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
from typing import Any

__all__ = ["MOVED", "RENAMED", "install"]

#: old module path -> the modules its names live in now (searched in order).
MOVED: dict[str, tuple[str, ...]] = {
    "lrp_prune.config": ("lrp_prune.network.config",),
    "lrp_prune.model": ("lrp_prune.network.bert",),
    "lrp_prune.gate": ("lrp_prune.network.hard_concrete",),
    "lrp_prune.slicing": ("lrp_prune.network.slicing",),
    "lrp_prune.pruner": ("lrp_prune.pruning.lrp",),
    "lrp_prune.budget": ("lrp_prune.pruning.budget",),
    "lrp_prune.summary": ("lrp_prune.pruning.summary",),
    "lrp_prune.checkpoint": ("lrp_prune.io.checkpoint",),
    "lrp_prune.hf": ("lrp_prune.io.hf",),
    "lrp_prune.serialization": ("lrp_prune.io.saved", "lrp_prune.io.export", "lrp_prune.app.tools"),
    "lrp_prune.assets": ("lrp_prune.io.assets",),
    "lrp_prune.tokenization": ("lrp_prune.data.tokenization",),
    "lrp_prune.train": ("lrp_prune.training",),
    "lrp_prune.flow": ("lrp_prune.app.pipeline",),
    "lrp_prune.report": ("lrp_prune.app.report",),
    "lrp_prune.cli": ("lrp_prune.app.cli",),
}
# lrp_prune.data is a package now; its __init__ re-exports what the old module had.

#: (old module path, old name) -> "new module:new name", for names that changed.
RENAMED: dict[tuple[str, str], str] = {
    ("lrp_prune.cli", "format_report"): "lrp_prune.app.report:format_summary",
    ("lrp_prune.flow", "encode_split"): "lrp_prune.data.tokenization:encode_examples",
}


def _module_getattr(old: str):
    def __getattr__(name: str) -> Any:
        if (old, name) in RENAMED:
            module, _, new_name = RENAMED[(old, name)].partition(":")
            return getattr(importlib.import_module(module), new_name)
        for new in MOVED[old]:
            module = importlib.import_module(new)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {old!r} (moved to {', '.join(MOVED[old])}) has no attribute {name!r}")

    return __getattr__


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes the module of an old path on first import."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec) -> types.ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        old = module.__name__
        module.__doc__ = f"Moved: this path re-exports {', '.join(MOVED[old])} (see docs/architecture.md)."
        module.__getattr__ = _module_getattr(old)  # type: ignore[attr-defined]
        names: list[str] = []
        for new in MOVED[old]:
            names += list(getattr(importlib.import_module(new), "__all__", ()))
        module.__all__ = names + [name for (o, name) in RENAMED if o == old]  # type: ignore[attr-defined]


def install() -> None:
    """Register the finder once (done by ``import lrp_prune``)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())

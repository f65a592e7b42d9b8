"""Named recipes: the one place each training recipe of the project is written down.

A :class:`Recipe` is a set of :class:`~lrp_prune.app.options.PruneOptions` values on top of
the defaults (which are the original sample's). The CLI (``lrp-prune demo`` uses
``"demo"``, ``--full`` ``"demo-full"``; ``prune`` and the sample ``"sample"``), the
benchmarks and your own scripts take them from here, so they cannot drift apart.

Example:
    >>> from lrp_prune.app.recipes import DEMO, RECIPES
    >>> sorted(RECIPES)
    ['demo', 'demo-full', 'sample']
    >>> opts = DEMO.options(seed=2)
    >>> opts.finetune_steps, opts.train_steps, opts.l0_penalty, opts.seed, opts.recipe
    (180, 150, 0.015, 2, 'demo')
    >>> DEMO.options(target_heads=36).l0_penalty   # a target replaces the recipe's lambda...
    0.0
    >>> DEMO.options(target_heads=36, l0_penalty=0.005).l0_penalty   # ...unless both are given
    0.005
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Mapping

from lrp_prune.app.options import PruneOptions
from lrp_prune.errors import LRPPruneError, expect

__all__ = ["Recipe", "RECIPES", "DEMO", "DEMO_FULL", "SAMPLE", "recipe"]


@dataclass(frozen=True)
class Recipe:
    """A named set of ``PruneOptions`` values: the demo's recipe is ``lrp_prune.app.recipes.DEMO``.

    Attributes:
        name: how the CLI and reports call it.
        description: one line for ``--help`` and the docs.
        values: ``PruneOptions`` field -> value, on top of the defaults.

    Example:
        >>> from lrp_prune.app.recipes import DEMO
        >>> DEMO.values["l0_penalty"], DEMO.values["finetune_steps"], DEMO.values["train_steps"]
        (0.015, 180, 150)
        >>> mine = DEMO.options(model="/models/my-bert", task="mnli", data_dir="/data/MNLI", seed=3)
        >>> mine.learning_rate, mine.log_a_lr, mine.seed
        (0.0001, 0.1, 3)
    """

    name: str
    description: str
    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        known = {f.name for f in fields(PruneOptions)}
        unknown = sorted(set(self.values) - known)
        if unknown:
            raise LRPPruneError(f"recipe {self.name!r}: unknown options {unknown}")
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def options(self, **overrides: Any) -> PruneOptions:
        """The recipe's ``PruneOptions`` with ``overrides`` on top.

        A budget you give replaces the recipe's: a target (``target_heads``, ``target_flops`` or
        ``target_speedup``) replaces the recipe's target and its ``l0_penalty`` (with 0, unless an
        ``l0_penalty`` is given too: a budget and a fixed lambda rarely belong together); an
        ``l0_penalty`` alone asks for the lambda mode, so the recipe's target goes.
        """
        values = dict(self.values)
        targets = ("target_heads", "target_flops", "target_speedup")
        given_target = any(overrides.get(k) is not None for k in targets)
        if given_target or "l0_penalty" in overrides:
            for key in targets:
                values.pop(key, None)
        if given_target and "l0_penalty" not in overrides:
            values["l0_penalty"] = 0.0
        values.update(overrides)
        values["recipe"] = self.name
        return PruneOptions(**values)


SAMPLE = Recipe("sample", "the original sample's defaults: MNLI, a converged model, l0_penalty 0.01", {})

_DEMO_BASE = dict(task="snli", out_dir="./lrp_demo_out", finetune_lr=1e-4,  # MiniLM has no NLI head: fine-tune first
                  learning_rate=1e-4, log_a_lr=0.1, batch_size=32, max_seq_length=64, buckets=(32, 64),
                  dropout=False,  # ~5% faster on CPU; measured no worse on 230 + 190 steps
                  eval_limit=2000)  # a fixed, seeded subset of SNLI's 9,824 test pairs

DEMO = Recipe(
    "demo",
    "all-MiniLM-L6-v2 on SNLI in about 10 minutes on 2 CPU cores with its equal-budget control: 180 "
    "fine-tuning + 150 gated steps with the word embeddings frozen, l0_penalty 0.015, 2,000 test pairs",
    # chosen on a validation split (benchmarks/STUDIES.md, recipe "fast"): the only recipe measured that fits
    # 600 s with its control, and the smallest drop against it; frozen word embeddings (half of MiniLM's
    # parameters) make a step ~16% cheaper; lambda x gated steps stays about the previous demo's
    # (0.012 x 190 ~ 0.015 x 150)
    dict(_DEMO_BASE, finetune_steps=180, train_steps=150, l0_penalty=0.015, freeze_word_embeddings=True))

DEMO_FULL = Recipe(
    "demo-full",
    "the demo, longer (about half an hour here): 1,000 fine-tuning + 400 gated steps with dropout, "
    "l0_penalty 0.012, all 9,824 SNLI test pairs",
    dict(_DEMO_BASE, finetune_steps=1000, train_steps=400, l0_penalty=0.012, dropout=True, buckets=(32, 48, 64),
         eval_limit=None))

RECIPES: Mapping[str, Recipe] = MappingProxyType({r.name: r for r in (SAMPLE, DEMO, DEMO_FULL)})
"""Every named recipe."""


def recipe(name: str) -> Recipe:
    """The recipe called ``name``; a clear error listing the others."""
    expect(name in RECIPES, "recipe", f"one of {sorted(RECIPES)}", name)
    return RECIPES[name]

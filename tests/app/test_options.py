"""PruneOptions, named recipes, generated flags and the runtime check."""

from __future__ import annotations

import argparse
from dataclasses import fields

import mindspore as ms
import pytest
from lrp_prune import LRPPruneError
from lrp_prune.app.cli import build_options, build_parser, configure_mindspore, sample_parser
from lrp_prune.app.options import COMMANDS, PruneOptions, add_option_flags, flag_of, parse_target
from lrp_prune.app.recipes import DEMO, DEMO_FULL, RECIPES, SAMPLE, Recipe, recipe
from lrp_prune.app.runtime import current_runtime


def test_every_field_has_flag_metadata_and_a_flag_in_its_commands():
    for command in COMMANDS:
        parser = argparse.ArgumentParser()
        add_option_flags(parser, command)
        dests = {a.dest for a in parser._actions}
        for f in fields(PruneOptions):
            assert f.metadata["help"], f.name
            if command in f.metadata["commands"]:
                assert f.name in dests, (command, f.name)


def test_defaults_are_the_original_samples_and_the_demo_recipe_is_its_own():
    default = PruneOptions()
    assert default.task == "mnli" and default.l0_penalty == 0.01 and default.finetune_steps == 0
    assert SAMPLE.options() == PruneOptions(recipe="sample")
    demo = DEMO.options()
    assert (demo.task, demo.finetune_steps, demo.train_steps, demo.l0_penalty, demo.eval_limit, demo.dropout,
            demo.freeze_word_embeddings) == ("snli", 180, 150, 0.015, 2000, False, True)
    full = DEMO_FULL.options()
    assert (full.finetune_steps, full.train_steps, full.l0_penalty, full.eval_limit, full.dropout, full.buckets,
            full.freeze_word_embeddings) == (1000, 400, 0.012, None, True, (32, 48, 64), False)
    assert set(RECIPES) == {"sample", "demo", "demo-full"} and recipe("demo") is DEMO
    with pytest.raises(LRPPruneError, match="recipe: expected one of"):
        recipe("nope")
    with pytest.raises(LRPPruneError, match="unknown options"):
        Recipe("bad", "", {"learnign_rate": 1.0})


def test_the_demo_command_and_the_sample_start_from_their_recipes():
    args = build_parser().parse_args(["demo"])
    assert build_options("demo", args) == DEMO.options()
    args = build_parser().parse_args(["demo", "--full", "--seed", "3"])
    assert build_options("demo", args) == DEMO_FULL.options(seed=3)
    args = sample_parser().parse_args(["--task", "snli", "--enable_lossscale", "true", "--no_progress"])
    opts = build_options("sample", args)
    assert opts.task == "snli" and opts.enable_lossscale is True and opts.progress is False
    assert opts.recipe == "sample" and opts.learning_rate == PruneOptions().learning_rate
    args = build_parser().parse_args(["prune", "--recipe", "demo", "--out", "x"])
    assert build_options("prune", args) == DEMO.options(out_dir="x")


def test_task_defaults_differ_per_command_as_the_original_and_the_demo_say():
    assert build_options("prune", build_parser().parse_args(["prune"])).task == "mnli"
    assert build_options("sample", sample_parser().parse_args([])).task == "mnli"
    assert build_options("demo", build_parser().parse_args(["demo"])).task == "snli"


def test_a_target_replaces_the_recipes_lambda_unless_both_are_given():
    args = build_parser().parse_args(["demo", "--target_heads", "0.5"])
    assert build_options("demo", args).l0_penalty == 0.0 and build_options("demo", args).target_heads == 0.5
    args = build_parser().parse_args(["demo", "--target_heads", "36", "--l0_penalty", "0.002"])
    opts = build_options("demo", args)
    assert (opts.target_heads, opts.l0_penalty) == (36, 0.002)
    assert parse_target("36") == 36 and isinstance(parse_target("36"), int) and parse_target("0.25") == 0.25


def test_a_budget_given_replaces_a_recipe_s_budget():
    with_target = Recipe("demo", "", dict(DEMO.values, target_heads=36, l0_penalty=0.015))
    assert (with_target.options().target_heads, with_target.options().l0_penalty) == (36, 0.015)
    flops = with_target.options(target_flops=0.5, structures=("heads", "ffn"))
    assert (flops.target_heads, flops.target_flops, flops.l0_penalty) == (None, 0.5, 0.0)
    lam = with_target.options(l0_penalty=0.02)  # lambda alone: the lambda mode
    assert (lam.target_heads, lam.l0_penalty) == (None, 0.02)
    speed = with_target.options(target_speedup=2.0, l0_penalty=0.001)
    assert (speed.target_heads, speed.target_speedup, speed.l0_penalty) == (None, 2.0, 0.001)


def test_max_seq_length_trims_the_buckets():
    assert DEMO.options(max_seq_length=48).buckets == (32, 48)
    assert DEMO.options(max_seq_length=16).buckets == (16,)


def test_special_flags_are_generated_from_metadata():
    assert flag_of("progress") == "--no_progress" and flag_of("out_dir") == "--out"
    assert flag_of("learning_rate") == "--learning_rate"
    demo_help = build_parser().parse_known_args(["demo"])[0]
    assert demo_help.command == "demo"
    text = sample_parser().format_help()
    assert "--enable_save_ckpt" in text and "--no_progress" in text and "--full" not in text
    assert "(default: mnli)" in text


@pytest.mark.parametrize("field,value,needle", [
    ("batch_size", 0, "batch_size: expected a positive integer"),
    ("learning_rate", float("nan"), "learning_rate: expected a positive number"),
    ("task", "imdb", "task: expected one of"),
    ("warmup_fraction", 1.0, "warmup_fraction: expected a number in [0, 1)"),
    ("target_heads", 0, "target_heads: expected an int >= 1 or a fraction in (0, 1)"),
    ("dropout", "yes", "dropout: expected True or False"),
    ("recipe", "fast", "recipe: expected one of"),
])
def test_options_are_validated_once_with_the_field_named(field, value, needle):
    with pytest.raises(LRPPruneError, match=needle.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        PruneOptions(**{field: value})


def test_the_flow_needs_graph_mode_and_says_how_to_get_it():
    options = PruneOptions()
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        with pytest.raises(LRPPruneError, match="expected GRAPH_MODE.*configure_mindspore"):
            current_runtime(options)
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
    runtime = configure_mindspore(options)
    assert runtime.rank == 0 and runtime.is_main and runtime.reducer([]) is None
    assert ms.get_context("mode") == ms.GRAPH_MODE


def test_control_and_distillation_flags():
    opts = build_options("demo", build_parser().parse_args(["demo", "--no_control", "--distill",
                                                            "--distill_alpha", "0.7", "--distill_temperature", "3"]))
    assert (opts.control, opts.distill, opts.distill_alpha, opts.distill_temperature) == (False, True, 0.7, 3.0)
    opts = build_options("prune", build_parser().parse_args(["prune", "--distill", "--no_distill"]))
    assert opts.distill is False and opts.control is True
    with pytest.raises(LRPPruneError, match=r"--distill_alpha: expected a number in \[0, 1\]"):
        build_options("demo", build_parser().parse_args(["demo", "--distill_alpha", "2"]))
    opts = build_options("demo", build_parser().parse_args(["demo", "--eval_split", "validation",
                                                            "--validation_fraction", "0.1"]))
    assert opts.eval_split_name == "validation" and opts.validation_fraction == 0.1

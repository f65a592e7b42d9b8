"""The command line's failures: one ``error:`` line, exit status 2, flags named as typed (in-process)."""

from __future__ import annotations

import json

import pytest

from helpers import random_model, tiny_config
from lrp_prune import prune_heads, save_pruned
from lrp_prune.app import cli
from lrp_prune.io.saved import FILES


def run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:  # argparse's own errors (a flag's type) end the parse
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    return code, lines, err


@pytest.fixture
def saved(tmp_path):
    return save_pruned(prune_heads(random_model(tiny_config(num_hidden_layers=2)), {0: [1]}), tmp_path / "p")


@pytest.mark.parametrize("argv,needle", [
    (["bench", "{dir}", "--batch_size", "0"], "argument --batch_size: expected a positive integer, got '0'"),
    (["bench", "{dir}", "--seq_length", "0"], "argument --seq_length: expected a positive integer"),
    (["bench", "{dir}", "--repeats", "0"], "argument --repeats: expected a positive integer"),
    (["export", "{dir}", "--seq_length", "0"], "argument --seq_length: expected a positive integer"),
    (["demo", "--target_heads", "abc"], "argument --target_heads: expected an int >= 1 or a fraction in (0, 1)"),
    (["demo", "--batch_size", "0"], "--batch_size: expected a positive integer, got 0"),
    (["prune", "--l0_penalty", "inf"], "--l0_penalty: expected a finite number >= 0"),
    (["demo", "--stretch_limits=-inf,1.1"], "--stretch_limits: expected a pair (gamma, zeta) of finite numbers"),
    (["bench", "{dir}", "--seq_length", "17"], "seq_length: expected an integer in [1, 16], got 17"),
])
def test_bad_values_are_one_line_naming_the_flag(capsys, saved, argv, needle):
    code, lines, err = run(capsys, *[a.format(dir=saved) for a in argv])
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err and "_target" not in err


def test_inspect_of_a_config_without_bert_config(capsys, saved):
    info = json.loads((saved / FILES["config"]).read_text())
    del info["bert_config"]
    (saved / FILES["config"]).unlink()  # a hand edit (the committed file stays as saved)
    (saved / FILES["config"]).write_text(json.dumps(info))
    from lrp_prune.io.store import STORE_DIR
    import shutil

    shutil.rmtree(saved / STORE_DIR)  # a directory of the first format: the top-level file is read
    code, lines, err = run(capsys, "inspect", str(saved))
    assert code == 2 and len(lines) == 1 and "bert_config: expected the saved BertConfig" in lines[0], err


def test_a_full_disk_during_export_is_one_line_and_leaves_no_file(capsys, saved, monkeypatch):
    import mindspore as ms

    def full(*args, **kwargs):
        raise RuntimeError("Write file failed: No space left on device")

    monkeypatch.setattr(ms, "export", full)
    code, lines, err = run(capsys, "export", str(saved))
    assert code == 2 and len(lines) == 1 and "pruned_model.mindir" in lines[0] and "disk full" in lines[0], err
    assert not (saved / "pruned_model.mindir").exists()


def test_an_unexpected_failure_is_one_line_and_a_traceback_only_with_verbose(capsys, monkeypatch, saved):
    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "_cmd_bench", broken)
    code, lines, err = run(capsys, "bench", str(saved))
    assert code == 2 and lines == ["error: internal error: ZeroDivisionError: a bug (run with --verbose for the "
                                   "traceback)"] and "Traceback" not in err
    code, lines, err = run(capsys, "--verbose", "bench", str(saved))
    assert code == 2 and "Traceback" in err


def test_an_empty_path_flag_means_not_given():
    parser = cli.build_parser()
    args = parser.parse_args(["prune", "--load_checkpoint_path", "", "--save_dir_path", "", "--vocab_file", "",
                              "--data_dir", "", "--finetuned_checkpoint", "", "--save_checkpoint_path", ""])
    options = cli.build_options("prune", args)
    assert (options.load_checkpoint_path, options.save_dir_path, options.vocab_file, options.data_dir,
            options.finetuned_checkpoint, options.save_checkpoint_path) == (None,) * 6
    assert options.out_dir == "./lrp_prune_out"  # prune always writes its report and model somewhere
    args = parser.parse_args(["prune", "--out", ""])
    options = cli.build_options("prune", args)
    assert options.pruned_dir is None and options.report_dir is None
    sample = cli.sample_parser().parse_args(["--load_checkpoint_path", ""])
    assert cli.build_options("sample", sample).load_checkpoint_path is None

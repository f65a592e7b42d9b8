"""What ``convert()`` leaves on disk, how to read it back, and MindIR export.

A pruned directory holds (each file written to a temporary name, then renamed):

================================  ================================================
``gated_model.ckpt``              the model before pruning, with its ``log_a``
``heads_to_prune.pkl``            pickle of ``{layer: [pruned heads]}`` (every layer),
                                  the format of HuggingFace ``prune_heads``
``heads_to_prune.json``           its JSON twin: what this library reads back
``pruned_config.json``            model kind, BertConfig (with ``layer_heads``), head
``pruned_model.ckpt``             the pruned model's parameters
``summary.json``                  :class:`~lrp_prune.summary.PruningSummary`
================================  ================================================

The library never unpickles a file the user did not ask it to trust:
:func:`read_heads_to_prune` reads the JSON twin, and :func:`safe_unpickle_heads`
accepts only dicts, lists and ints.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from lrp_prune.checkpoint import (atomic_path, atomic_write_bytes, atomic_write_text, check_writable_dir,
                                  load_checkpoint, save_checkpoint, save_param_dict)
from lrp_prune.config import BertConfig
from lrp_prune.errors import LRPPruneError, expect
from lrp_prune.model import (BertClassifier, BertClassifierWithLoss, BertModel, _the_bert, find_bert,
                             prune_heads)

__all__ = [
    "FILES",
    "save_pruned",
    "load_pruned",
    "read_heads_to_prune",
    "safe_unpickle_heads",
    "export_mindir",
    "load_mindir",
    "inspect_saved",
    "bench_saved",
]

logger = logging.getLogger(__name__)

FILES = {
    "gated": "gated_model.ckpt",
    "heads_pkl": "heads_to_prune.pkl",
    "heads_json": "heads_to_prune.json",
    "config": "pruned_config.json",
    "model": "pruned_model.ckpt",
    "summary": "summary.json",
}
_FORMAT = "lrp_prune/pruned-model"
_VERSION = 1


def _describe_model(model: nn.Cell) -> dict[str, Any]:
    bert = _the_bert(model, "save_pruned")
    info: dict[str, Any] = {"format": _FORMAT, "version": _VERSION, "bert_config": bert.config.to_dict()}
    classifier = model.bert if isinstance(model, BertClassifierWithLoss) else model
    if isinstance(model, BertModel):
        info["kind"] = "BertModel"
    elif isinstance(classifier, BertClassifier):
        info["kind"] = "BertClassifierWithLoss" if classifier is not model else "BertClassifier"
        info["classifier"] = {"num_labels": classifier.num_labels, "pooling": classifier.pooling,
                              "dropout_prob": classifier.dropout_prob}
    else:
        info["kind"] = "custom"
        info["class"] = f"{type(model).__module__}.{type(model).__qualname__}"
        info["backbone"] = find_bert(model)[0][0]
    return info


def save_pruned(model: nn.Cell, save_dir_path: str | Path, *, heads_to_prune: dict | None = None,
                summary: Any = None, gated_params: dict | None = None) -> Path:
    """Write the pruned model (config + checkpoint), the heads pickle and JSON, and the summary.

    Args:
        model: a pruned (ungated) BertModel, classifier or model with a head.
        save_dir_path: directory, created if missing; existing files are replaced whole.
        heads_to_prune: ``{layer: [removed heads]}``; default: derived from the config.
        summary: a :class:`~lrp_prune.summary.PruningSummary` to store as ``summary.json``.
        gated_params: ``{name: array}`` of the model before pruning, stored as ``gated_model.ckpt``.

    Every file is first written into a staging directory inside ``save_dir_path``; only when
    all are complete are they renamed into place (the old config first removed, the new one
    renamed last). An exception or ``KeyboardInterrupt`` while writing leaves the earlier save
    untouched; one during the renames leaves no config, so ``load_pruned`` says the save is
    incomplete instead of mixing two saves.

    Returns:
        The directory.
    """
    save_dir = check_writable_dir(save_dir_path)
    bert = _the_bert(model, "save_pruned")
    if bert.is_gated:
        raise LRPPruneError("save_pruned: expected a converted (ungated) model, got a gated one; "
                            "call convert() first")
    cfg = bert.config
    if heads_to_prune is None:
        heads_to_prune = {i: [h for h in range(cfg.num_attention_heads) if h not in cfg.heads_of(i)]
                          for i in range(cfg.num_hidden_layers)}
    heads = {int(k): [int(h) for h in v] for k, v in heads_to_prune.items()}
    staging = Path(tempfile.mkdtemp(prefix=".staging.", suffix=".tmp", dir=save_dir))
    try:
        if gated_params is not None:
            save_param_dict(gated_params, staging / FILES["gated"])
        save_checkpoint(model, staging / FILES["model"])
        atomic_write_text(staging / FILES["heads_json"], json.dumps({str(k): v for k, v in heads.items()}))
        atomic_write_bytes(staging / FILES["heads_pkl"], pickle.dumps(heads, protocol=4))
        if summary is not None:
            atomic_write_text(staging / FILES["summary"], summary.to_json())
        atomic_write_text(staging / FILES["config"], json.dumps(_describe_model(model), indent=2))
        # commit: without a config the directory reads as incomplete, never as a mix of two saves
        (save_dir / FILES["config"]).unlink(missing_ok=True)
        for key in ("gated", "model", "heads_json", "heads_pkl", "summary", "config"):
            staged, final = staging / FILES[key], save_dir / FILES[key]
            if staged.exists():
                os.replace(staged, final)
            elif key in ("gated", "summary"):
                final.unlink(missing_ok=True)  # a stale file of an earlier save
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("saved the pruned model to %s", save_dir)
    return save_dir


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise LRPPruneError(f"{path.name}: expected the file {str(path)!r} in the pruned directory, got no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LRPPruneError(f"{str(path)!r}: expected valid JSON, got a parse error ({err})") from None


def load_pruned(save_dir_path: str | Path, model: nn.Cell | None = None, *, is_training: bool = False) -> nn.Cell:
    """Rebuild a pruned model from a directory written by ``convert()`` / :func:`save_pruned`.

    Args:
        save_dir_path: the directory.
        model: for a model with your own head, a freshly built *unpruned* instance of it;
            its BertModel is pruned to the saved layout and the checkpoint is loaded strictly.
            Not needed for BertModel and the library's classifier.
        is_training: build with dropout on (``True``) or off.

    Returns:
        The pruned model, of the kind that was saved.
    """
    save_dir = Path(save_dir_path)
    expect(save_dir.is_dir(), "save_dir_path", "an existing pruned-model directory", str(save_dir))
    info = _read_json(save_dir / FILES["config"])
    expect(isinstance(info, dict) and info.get("format") == _FORMAT, FILES["config"],
           f"a JSON object with format {_FORMAT!r}", info if not isinstance(info, dict) else info.get("format"))
    expect(info.get("version") == _VERSION, f"{FILES['config']} version", str(_VERSION), info.get("version"))
    expect("bert_config" in info, f"{FILES['config']} bert_config", "the saved BertConfig (a JSON object)",
           "no bert_config key")
    cfg = BertConfig.from_dict(info["bert_config"])
    kind = info.get("kind")
    if kind == "BertModel":
        built: nn.Cell = BertModel(cfg, is_training)
    elif kind in ("BertClassifier", "BertClassifierWithLoss"):
        head = info.get("classifier")
        expect(isinstance(head, dict) and "num_labels" in head, f"{FILES['config']} classifier",
               "a JSON object with num_labels (and pooling, dropout_prob)", head)
        built = BertClassifier(cfg, is_training, num_labels=int(head["num_labels"]),
                               dropout_prob=float(head.get("dropout_prob", 0.1)),
                               pooling=head.get("pooling", "pooler"))
        if kind == "BertClassifierWithLoss":
            built = BertClassifierWithLoss(built)
    elif kind == "custom":
        if model is None:
            raise LRPPruneError(f"load_pruned: expected model= a fresh instance of {info.get('class')} "
                                "(the saved model has a custom head), got model=None")
        bert = _the_bert(model, "load_pruned")
        base = bert.config
        expect((base.num_hidden_layers, base.num_attention_heads) == (cfg.num_hidden_layers, cfg.num_attention_heads),
               "model", f"a model with {cfg.num_hidden_layers} layers x {cfg.num_attention_heads} heads",
               (base.num_hidden_layers, base.num_attention_heads))
        prune_heads(model, {i: [h for h in range(cfg.num_attention_heads) if h not in cfg.heads_of(i)]
                            for i in range(cfg.num_hidden_layers)})
        built = model
    else:
        raise LRPPruneError(f"{FILES['config']} kind: expected BertModel, BertClassifier, "
                            f"BertClassifierWithLoss or custom, got {kind!r}")
    ckpt = save_dir / FILES["model"]
    if not ckpt.is_file():
        raise LRPPruneError(f"{FILES['model']}: expected the file {str(ckpt)!r} in the pruned directory, "
                            "got no such file")
    load_checkpoint(ckpt, built, strict=True)
    built.set_train(is_training)
    return built


class _HeadsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise LRPPruneError(f"heads_to_prune pickle: expected only dicts, lists and ints, got a reference "
                            f"to {module}.{name}; refusing to load it")


def safe_unpickle_heads(data: bytes) -> dict[int, list[int]]:
    """Unpickle ``{layer: [heads]}`` accepting only dicts, lists and ints (no code runs)."""
    try:
        value = _HeadsUnpickler(io.BytesIO(data)).load()
    except LRPPruneError:
        raise
    except Exception as err:
        raise LRPPruneError(f"heads_to_prune pickle: expected a valid pickle, got {type(err).__name__}") from None
    ok = isinstance(value, dict) and all(
        isinstance(k, int) and isinstance(v, list) and all(isinstance(h, int) for h in v)
        for k, v in value.items())
    expect(ok, "heads_to_prune pickle", "a dict {int: [int, ...]}", value)
    return value


def read_heads_to_prune(path: str | Path) -> dict[int, list[int]]:
    """Read ``{layer: [heads]}`` from a pruned directory (or a ``.json``/``.pkl`` file).

    A directory or a ``.pkl`` path is read through its JSON twin when it exists;
    a ``.pkl`` with no twin goes through :func:`safe_unpickle_heads`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILES["heads_json"]
    if path.suffix == ".pkl" and path.with_suffix(".json").is_file():
        path = path.with_suffix(".json")
    if path.suffix == ".pkl":
        expect(path.is_file(), "heads_to_prune", "an existing file", str(path))
        return safe_unpickle_heads(path.read_bytes())
    data = _read_json(path)
    ok = isinstance(data, dict) and all(isinstance(v, list) for v in data.values())
    expect(ok, str(path), "a JSON object {layer: [head indices]}", data)
    try:
        return {int(k): [int(h) for h in v] for k, v in data.items()}
    except (TypeError, ValueError):
        raise LRPPruneError(f"{str(path)!r}: expected integer layers and heads, got {data!r}") from None


def _dummy_inputs(batch_size: int, seq_length: int) -> tuple[Tensor, Tensor, Tensor]:
    ids = Tensor(np.ones((batch_size, seq_length), np.int32))
    return ids, Tensor(np.zeros((batch_size, seq_length), np.int32)), Tensor(np.ones((batch_size, seq_length), np.int32))


def export_mindir(model: nn.Cell, path: str | Path, batch_size: int = 1, seq_length: int | None = None) -> Path:
    """Export ``model`` (eval mode) to a MindIR file for inputs ``(batch_size, seq_length)``.

    The file is written under a temporary name and renamed; ``.mindir`` is appended
    to ``path`` if missing. Reload with :func:`load_mindir` (an ``nn.GraphCell``).
    """
    bert = _the_bert(model, "export_mindir")
    seq_length = seq_length or bert.config.seq_length
    expect(isinstance(batch_size, int) and batch_size > 0, "batch_size", "a positive integer", batch_size)
    expect(isinstance(seq_length, int) and 0 < seq_length <= bert.config.max_position_embeddings,
           "seq_length", f"an integer in [1, {bert.config.max_position_embeddings}]", seq_length)
    path = Path(path)
    if path.suffix != ".mindir":
        path = path.with_name(path.name + ".mindir")
    check_writable_dir(path.parent, "export directory")
    model.set_train(False)
    with atomic_path(path) as tmp:
        base = str(tmp)[: -len(".tmp")] + ".export"
        try:
            ms.export(model, *_dummy_inputs(batch_size, seq_length), file_name=base, file_format="MINDIR")
            os.replace(base + ".mindir", tmp)
        finally:
            if os.path.exists(base + ".mindir"):
                os.unlink(base + ".mindir")
    logger.info("exported %s for inputs (%d, %d) to %s", type(model).__name__, batch_size, seq_length, path)
    return path


def load_mindir(path: str | Path) -> nn.GraphCell:
    """Load a MindIR file written by :func:`export_mindir` as a runnable ``nn.GraphCell``."""
    path = Path(path)
    expect(path.is_file(), "MindIR file", "an existing .mindir file", str(path))
    try:
        graph = ms.load(str(path))
    except Exception as err:
        raise LRPPruneError(f"MindIR {str(path)!r}: expected a readable MindIR file, got {type(err).__name__}") from None
    return nn.GraphCell(graph)


def inspect_saved(path: str | Path) -> tuple[np.ndarray, str]:
    """Gates ``[layers, heads]`` of a gated checkpoint, or the kept-head map of a pruned directory.

    Returns:
        ``(values, description)``: for a pruned directory 1 for kept heads and 0 for
        removed ones (or the gates read at convert time, from ``summary.json``, with
        removed heads at 0); for a ``.ckpt`` with ``log_a``, the deterministic gates
        (NaN where a layer has no such head).
    """
    from lrp_prune.gate import eval_gate_values

    path = Path(path)
    if path.is_dir():
        info = _read_json(path / FILES["config"])
        cfg = BertConfig.from_dict(info["bert_config"])
        values = np.zeros((cfg.num_hidden_layers, cfg.num_attention_heads))
        for i in range(cfg.num_hidden_layers):
            values[i, list(cfg.heads_of(i))] = 1.0
        summary_path = path / FILES["summary"]
        if summary_path.is_file():
            gates = _read_json(summary_path).get("gate_values")
            if gates is not None:
                values = np.asarray(gates, dtype=float) * (values > 0)
        return values, f"pruned model {path}: {cfg.total_heads} heads kept ({info.get('kind')})"
    from lrp_prune.checkpoint import read_checkpoint

    params = read_checkpoint(path)
    layers = {}
    for name, value in params.items():
        if name.endswith("gate.log_a"):
            index = name.split("layers.")[1].split(".")[0]
            layers[int(index)] = eval_gate_values(value)
    if not layers:
        raise LRPPruneError(f"inspect: expected a pruned directory or a checkpoint with gate log_a parameters, "
                            f"got {str(path)!r} with none")
    config_path = path.parent / FILES["config"]
    n_layers = max(layers) + 1
    n_heads = max(len(v) for v in layers.values())
    if config_path.is_file():  # heads of uneven layers come from the pruned config's parent only when present
        cfg = BertConfig.from_dict(_read_json(config_path)["bert_config"])
        n_layers, n_heads = cfg.num_hidden_layers, cfg.num_attention_heads
    values = np.full((n_layers, n_heads), np.nan)
    for i, gates in layers.items():
        values[i, : len(gates)] = gates
    return values, f"gated checkpoint {path}: {len(layers)} gated layers"


def bench_saved(save_dir_path: str | Path, *, batch_size: int = 32, seq_length: int = 64,
                repeats: int = 10) -> dict[str, Any]:
    """Latency of a saved pruned model against its unpruned original, interleaved in one run.

    The original's weights come from ``gated_model.ckpt`` when present (the values do
    not change the timing, so random weights stand in otherwise).
    """
    from lrp_prune.train import compare_latency

    save_dir = Path(save_dir_path)
    pruned = load_pruned(save_dir)
    bert = _the_bert(pruned, "bench")
    expect(seq_length <= bert.config.max_position_embeddings, "seq_length",
           f"at most max_position_embeddings ({bert.config.max_position_embeddings})", seq_length)
    info = _read_json(save_dir / FILES["config"])
    full = bert.config.with_layer_heads(None)
    if isinstance(pruned, BertModel):
        original: nn.Cell = BertModel(full, False)
    else:
        head = info.get("classifier") or {"num_labels": 2, "pooling": "pooler"}
        original = BertClassifier(full, False, num_labels=int(head["num_labels"]), pooling=head.get("pooling", "pooler"))
        if isinstance(pruned, BertClassifierWithLoss):
            pruned = pruned.bert
    gated_ckpt = save_dir / FILES["gated"]
    if gated_ckpt.is_file():
        load_checkpoint(gated_ckpt, original, strict=False)
    times = compare_latency(original, pruned, batch_size, seq_length, repeats)
    unpruned_t, pruned_t = times["unpruned_s"], times["pruned_s"]
    return {"batch_size": batch_size, "seq_length": seq_length, "unpruned_s": unpruned_t, "pruned_s": pruned_t,
            "unpruned_median_s": float(np.median(unpruned_t)), "pruned_median_s": float(np.median(pruned_t)),
            "ratio": float(np.median(pruned_t) / np.median(unpruned_t)),
            "heads_kept": bert.config.total_heads,
            "heads_total": full.num_hidden_layers * full.num_attention_heads}

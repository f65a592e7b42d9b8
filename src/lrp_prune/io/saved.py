"""What ``convert()`` leaves on disk and how to read it back.

A pruned directory holds (each file written to a temporary name, then renamed):

================================  ================================================
``gated_model.ckpt``              the model before pruning, with its ``log_a``
``heads_to_prune.pkl``            pickle of ``{layer: [pruned heads]}`` (every layer),
                                  the format of HuggingFace ``prune_heads``
``heads_to_prune.json``           its JSON twin: what this library reads back
``pruned_config.json``            model kind, BertConfig (with ``layer_heads``), head
``pruned_model.ckpt``             the pruned model's parameters
``summary.json``                  :class:`~lrp_prune.pruning.summary.PruningSummary`
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

from mindspore import nn

from lrp_prune.io.checkpoint import (atomic_write_bytes, atomic_write_text, check_writable_dir, load_checkpoint,
                                     save_checkpoint, save_param_dict)
from lrp_prune.network.config import BertConfig
from lrp_prune.errors import LRPPruneError, expect
from lrp_prune.network.bert import (BertClassifier, BertClassifierWithLoss, BertModel, find_bert, prune_heads,
                                    the_bert)

__all__ = [
    "FILES",
    "save_pruned",
    "load_pruned",
    "read_heads_to_prune",
    "safe_unpickle_heads",
    "read_json",
    "read_pruned_info",
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
    bert = the_bert(model, "save_pruned")
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
                summary: Any = None, gated_params: dict | None = None,
                gated_layer_heads: Any = None) -> Path:
    """Write the pruned model (config + checkpoint), the heads pickle and JSON, and the summary.

    Args:
        model: a pruned (ungated) BertModel, classifier or model with a head.
        save_dir_path: directory, created if missing; existing files are replaced whole.
        heads_to_prune: ``{layer: [removed heads]}``; default: derived from the config.
        summary: a :class:`~lrp_prune.pruning.summary.PruningSummary` to store as ``summary.json``.
        gated_params: ``{name: array}`` of the model before pruning, stored as ``gated_model.ckpt``.
        gated_layer_heads: the gated model's ``layer_heads`` (recorded so ``inspect`` can place
            the gates of a model that was pruned before it was gated).

    Every file is first written into a staging directory inside ``save_dir_path``; only when
    all are complete are they renamed into place (the old config first removed, the new one
    renamed last). An exception or ``KeyboardInterrupt`` while writing leaves the earlier save
    untouched; one during the renames leaves no config, so ``load_pruned`` says the save is
    incomplete instead of mixing two saves.

    Returns:
        The directory.
    """
    save_dir = check_writable_dir(save_dir_path)
    bert = the_bert(model, "save_pruned")
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
        info = _describe_model(model)
        if gated_params is not None and gated_layer_heads is not None:
            info["gated_layer_heads"] = [list(h) for h in gated_layer_heads]
        atomic_write_text(staging / FILES["config"], json.dumps(info, indent=2))
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


def read_json(path: Path) -> Any:
    """Parse a JSON file of a pruned directory; a clear error if it is missing or invalid."""
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
    info = read_pruned_info(save_dir)
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
        bert = the_bert(model, "load_pruned")
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


def read_pruned_info(save_dir_path: str | Path) -> dict[str, Any]:
    """The checked ``pruned_config.json`` of a pruned directory (format, version, ``bert_config``)."""
    save_dir = Path(save_dir_path)
    expect(save_dir.is_dir(), "save_dir_path", "an existing pruned-model directory", str(save_dir))
    info = read_json(save_dir / FILES["config"])
    expect(isinstance(info, dict) and info.get("format") == _FORMAT, FILES["config"],
           f"a JSON object with format {_FORMAT!r}", info if not isinstance(info, dict) else info.get("format"))
    expect(info.get("version") == _VERSION, f"{FILES['config']} version", str(_VERSION), info.get("version"))
    expect("bert_config" in info, f"{FILES['config']} bert_config", "the saved BertConfig (a JSON object)",
           "no bert_config key")
    return info


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
    data = read_json(path)
    ok = isinstance(data, dict) and all(isinstance(v, list) for v in data.values())
    expect(ok, str(path), "a JSON object {layer: [head indices]}", data)
    try:
        return {int(k): [int(h) for h in v] for k, v in data.items()}
    except (TypeError, ValueError):
        raise LRPPruneError(f"{str(path)!r}: expected integer layers and heads, got {data!r}") from None

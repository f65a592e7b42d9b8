"""What ``convert()`` leaves on disk and how to read it back.

A pruned directory holds, at its top (the names downstream tools read):

================================  ================================================
``gated_model.ckpt``              the model before pruning, with its ``log_a``
``heads_to_prune.pkl``            pickle of ``{layer: [pruned heads]}`` (every layer),
                                  the format of HuggingFace ``prune_heads``
``heads_to_prune.json``           its JSON twin: what this library reads back
``units_to_prune.json``           ``{layer: [pruned feed-forward units]}``, only when
                                  feed-forward units were gated or pruned
``pruned_config.json``            model kind, BertConfig (with ``layer_heads`` and
                                  ``layer_units``), head
``pruned_model.ckpt``             the pruned model's parameters
``summary.json``                  :class:`~lrp_prune.pruning.summary.PruningSummary`
================================  ================================================

A save is committed all at once (:mod:`lrp_prune.io.store`): a kill at any instant leaves
the complete earlier save or the complete new one, which :func:`load_pruned` reads through
the committed manifest; files the library did not write are never overwritten. Directories
written before the store existed (these files only) load as before.

The library never unpickles a file the user did not ask it to trust:
:func:`read_heads_to_prune` reads the JSON twin (and checks that the pickle agrees, with
:func:`safe_unpickle_heads`, which accepts only dicts, lists and ints).
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from pathlib import Path
from typing import Any

from mindspore import nn

from lrp_prune.io.checkpoint import check_writable_dir, load_checkpoint, save_checkpoint, save_param_dict
from lrp_prune.io.store import commit_files, committed_files
from lrp_prune.textfiles import read_json_file
from lrp_prune.network.config import BertConfig
from lrp_prune.errors import LRPPruneError, expect
from lrp_prune.network.bert import (BertClassifier, BertClassifierWithLoss, BertModel, find_bert, prune_ffn,
                                    prune_heads, the_bert)

__all__ = [
    "FILES",
    "UNITS_FILE",
    "save_pruned",
    "load_pruned",
    "read_heads_to_prune",
    "safe_unpickle_heads",
    "read_json",
    "read_pruned_info",
    "saved_files",
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
#: The feed-forward twin of ``heads_to_prune.json``, written when feed-forward units were gated or pruned.
UNITS_FILE = "units_to_prune.json"
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
        if getattr(classifier, "label_names", None):
            info["classifier"]["label_names"] = list(classifier.label_names)
    else:
        info["kind"] = "custom"
        info["class"] = f"{type(model).__module__}.{type(model).__qualname__}"
        info["backbone"] = find_bert(model)[0][0]
    return info


def save_pruned(model: nn.Cell, save_dir_path: str | Path, *, heads_to_prune: dict | None = None,
                summary: Any = None, gated_params: dict | None = None,
                gated_layer_heads: Any = None, units_to_prune: dict | None = None,
                gated_layer_units: Any = None) -> Path:
    """Write the pruned model (config + checkpoint), the heads pickle and JSON, and the summary.

    Args:
        model: a pruned (ungated) BertModel, classifier or model with a head.
        save_dir_path: directory, created if missing; existing files are replaced whole.
        heads_to_prune: ``{layer: [removed heads]}``; default: derived from the config.
        summary: a :class:`~lrp_prune.pruning.summary.PruningSummary` to store as ``summary.json``.
        gated_params: ``{name: array}`` of the model before pruning, stored as ``gated_model.ckpt``.
        gated_layer_heads: the gated model's ``layer_heads`` (recorded so ``inspect`` can place
            the gates of a model that was pruned before it was gated).
        units_to_prune: ``{layer: [removed feed-forward units]}`` (original indices), written as
            ``units_to_prune.json``; default: derived from the config when it records ``layer_units``.
        gated_layer_units: the gated model's ``layer_units`` (as ``gated_layer_heads``).

    The files are committed all at once (:func:`~lrp_prune.io.store.commit_files`): a kill or
    an error at any point leaves the earlier save complete and loadable, and a file of one of
    these names that the library did not write is never overwritten (the save is refused).

    Returns:
        The directory.

    Raises:
        LRPPruneError: a gated model, a directory that cannot be written, or files in it that
            the library did not write.
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
    if units_to_prune is None and cfg.layer_units is not None:
        units_to_prune = {i: [u for u in range(cfg.intermediate_size) if u not in set(cfg.units_of(i))]
                          for i in range(cfg.num_hidden_layers)}
    info = _describe_model(model)
    if gated_params is not None and gated_layer_heads is not None:
        info["gated_layer_heads"] = [list(h) for h in gated_layer_heads]
    if gated_params is not None and gated_layer_units is not None:
        info["gated_layer_units"] = [list(u) for u in gated_layer_units]
    files: dict[str, Any] = {}
    if gated_params is not None:
        files[FILES["gated"]] = lambda path: save_param_dict(gated_params, path)
    files[FILES["model"]] = lambda path: save_checkpoint(model, path)
    files[FILES["heads_json"]] = json.dumps({str(k): v for k, v in heads.items()}).encode("utf-8")
    files[FILES["heads_pkl"]] = pickle.dumps(heads, protocol=4)
    if units_to_prune is not None:
        files[UNITS_FILE] = json.dumps({str(int(k)): [int(u) for u in v] for k, v in units_to_prune.items()}).encode()
    if summary is not None:
        files[FILES["summary"]] = summary.to_json().encode("utf-8")
    files[FILES["config"]] = json.dumps(info, indent=2).encode("utf-8")
    commit_files(save_dir, files, ours=(*FILES.values(), UNITS_FILE), legacy_marker=_is_first_format_save)
    logger.info("saved the pruned model to %s", save_dir)
    return save_dir


def _is_first_format_save(directory: Path) -> bool:
    """A directory saved before the store existed: its ``pruned_config.json`` is this library's."""
    try:
        info = json.loads((directory / FILES["config"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("format") == _FORMAT


def saved_files(save_dir_path: str | Path) -> dict[str, Path]:
    """Where each file of a pruned directory is read from: ``{FILES key: path}``.

    The committed set when the directory has one (checked against its manifest), else the
    top-level files of a directory written before the store existed. A file that is gone
    maps to the path it should be at, so the reader that needs it names it.
    """
    save_dir = Path(save_dir_path)
    missing: dict[str, Path] = {}
    committed = committed_files(save_dir, missing_out=missing)
    if committed or missing:
        by_name = {**missing, **committed}
    else:
        by_name = {name: save_dir / name for name in FILES.values() if (save_dir / name).is_file()}
    return {key: by_name.get(name, save_dir / name) for key, name in FILES.items()}


def read_json(path: Path) -> Any:
    """Parse a JSON file of a pruned directory; a clear error if it is missing or invalid."""
    if not path.is_file():
        raise LRPPruneError(f"{path.name}: expected the file {str(path)!r} in the pruned directory, got no such file")
    return read_json_file(path, path.name)


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
        if head.get("label_names"):
            expect(isinstance(head["label_names"], list) and len(head["label_names"]) == built.num_labels,
                   f"{FILES['config']} classifier label_names", f"{built.num_labels} class names",
                   head["label_names"])
            built.label_names = tuple(str(name) for name in head["label_names"])
        if kind == "BertClassifierWithLoss":
            built = BertClassifierWithLoss(built)
    elif kind == "custom":
        if model is None:
            raise LRPPruneError(f"load_pruned: expected model= a fresh instance of {info.get('class')} "
                                "(the saved model has a custom head), got model=None")
        bert = the_bert(model, "load_pruned")
        base = bert.config
        shape = (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size)
        expect((base.num_hidden_layers, base.num_attention_heads, base.intermediate_size) == shape, "model",
               f"a model with {shape[0]} layers x {shape[1]} heads, intermediate_size {shape[2]}",
               (base.num_hidden_layers, base.num_attention_heads, base.intermediate_size))
        prune_heads(model, {i: [h for h in range(cfg.num_attention_heads) if h not in cfg.heads_of(i)]
                            for i in range(cfg.num_hidden_layers)})
        if cfg.layer_units is not None:
            prune_ffn(model, {i: sorted(set(range(cfg.intermediate_size)) - set(cfg.units_of(i)))
                              for i in range(cfg.num_hidden_layers)})
        built = model
    else:
        raise LRPPruneError(f"{FILES['config']} kind: expected BertModel, BertClassifier, "
                            f"BertClassifierWithLoss or custom, got {kind!r}")
    ckpt = saved_files(save_dir)["model"]
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
    info = read_json(saved_files(save_dir)["config"])
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

    A directory or a ``.pkl`` path is read through its JSON twin when it exists, and the
    pickle is checked to say the same (with :func:`safe_unpickle_heads`: no code runs);
    a ``.pkl`` with no twin goes through :func:`safe_unpickle_heads` alone.

    Raises:
        LRPPruneError: an unreadable file, or a JSON twin that disagrees with its pickle
            (naming both files).
    """
    path = Path(path)
    pickle_path = None
    if path.is_dir():
        files = saved_files(path)
        pickle_path, path = files["heads_pkl"], files["heads_json"]  # the twin, never a fallback to the pickle
    elif path.suffix == ".pkl" and path.with_suffix(".json").is_file():
        pickle_path, path = path, path.with_suffix(".json")
    elif path.suffix == ".json" and path.with_suffix(".pkl").is_file():
        pickle_path = path.with_suffix(".pkl")
    if path.suffix == ".pkl":
        expect(path.is_file(), "heads_to_prune", "an existing file", str(path))
        return safe_unpickle_heads(path.read_bytes())
    data = read_json(path)
    ok = isinstance(data, dict) and all(isinstance(v, list) for v in data.values())
    expect(ok, str(path), "a JSON object {layer: [head indices]}", data)
    try:
        heads = {int(k): [int(h) for h in v] for k, v in data.items()}
    except (TypeError, ValueError):
        raise LRPPruneError(f"{str(path)!r}: expected integer layers and heads, got {data!r}") from None
    if pickle_path is not None and pickle_path.is_file():
        try:
            pickled = safe_unpickle_heads(pickle_path.read_bytes())
        except LRPPruneError as err:
            raise LRPPruneError(f"heads_to_prune: expected {str(pickle_path)!r} to be the plain pickle twin of "
                                f"{str(path)!r}, got one that cannot be read safely ({err})") from None
        if {k: sorted(v) for k, v in pickled.items()} != {k: sorted(v) for k, v in heads.items()}:
            raise LRPPruneError(f"heads_to_prune: expected {str(path)!r} and its pickle {str(pickle_path)!r} to "
                                f"say the same, got {heads} and {pickled}; one was edited after the save")
    return heads

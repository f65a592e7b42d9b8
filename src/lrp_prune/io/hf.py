"""Import a HuggingFace BERT directory (``config.json`` + ``model.safetensors``) without torch.

HF and MindSpore Dense weights are both ``[out, in]``, so tensors map one to one
by name. ``embeddings.position_ids`` (a buffer) is skipped, as are the heads of
HF task models (``cls.*``, ``classifier.*``), which a BertModel has no place for.

Example:
    >>> hf_to_modelzoo_name("encoder.layer.3.attention.self.query.weight")
    'bert_encoder.layers.3.attention.attention.query_layer.weight'
    >>> hf_to_modelzoo_name("bert.embeddings.LayerNorm.weight")
    'bert_embedding_postprocessor.layernorm.gamma'
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from lrp_prune.network.config import BertConfig
from lrp_prune.errors import LRPPruneError, expect

__all__ = ["hf_to_modelzoo_name", "convert_hf_state", "read_hf_state", "load_hf_bert", "SKIPPED_PREFIXES"]

logger = logging.getLogger(__name__)

#: HF tensors that have no place in a BertModel: buffers and task heads.
SKIPPED_PREFIXES = ("embeddings.position_ids", "cls.", "classifier.", "qa_outputs.")

_FIXED = {
    "embeddings.word_embeddings.weight": "bert_embedding_lookup.embedding_table",
    "embeddings.position_embeddings.weight": "bert_embedding_postprocessor.full_position_embedding.embedding_table",
    "embeddings.token_type_embeddings.weight": "bert_embedding_postprocessor.token_type_embedding.embedding_table",
    "embeddings.LayerNorm.weight": "bert_embedding_postprocessor.layernorm.gamma",
    "embeddings.LayerNorm.bias": "bert_embedding_postprocessor.layernorm.beta",
    "pooler.dense.weight": "dense.weight",
    "pooler.dense.bias": "dense.bias",
}
_LAYER = {
    "attention.self.query": "attention.attention.query_layer",
    "attention.self.key": "attention.attention.key_layer",
    "attention.self.value": "attention.attention.value_layer",
    "attention.output.dense": "attention.output.dense",
    "attention.output.LayerNorm": "attention.output.layernorm",
    "intermediate.dense": "intermediate",
    "output.dense": "output.dense",
    "output.LayerNorm": "output.layernorm",
}
_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")  # LayerNorm gamma/beta renamed above
_LN_PARAM = {"weight": "gamma", "bias": "beta"}


def hf_to_modelzoo_name(name: str) -> str | None:
    """The ModelZoo name of a HF BERT tensor, or ``None`` for tensors to skip.

    Raises:
        LRPPruneError: a tensor that is neither mapped nor known to be skippable.
    """
    if name.startswith("bert."):
        name = name[len("bert."):]
    if name.startswith(SKIPPED_PREFIXES):
        return None
    name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    if name in _FIXED:
        return _FIXED[name]
    match = _LAYER_RE.match(name)
    if match and match.group(2) in _LAYER:
        layer, block, param = match.groups()
        target = _LAYER[block]
        if target.endswith("layernorm"):
            param = _LN_PARAM[param]
        return f"bert_encoder.layers.{layer}.{target}.{param}"
    raise LRPPruneError(f"HuggingFace tensor: expected a BERT encoder tensor name, got {name!r}")


def convert_hf_state(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename every tensor of a HF BERT state dict; skipped ones are logged."""
    out: dict[str, np.ndarray] = {}
    skipped = []
    for name, value in state.items():
        target = hf_to_modelzoo_name(name)
        if target is None:
            skipped.append(name)
            continue
        if target in out:
            raise LRPPruneError(f"HuggingFace state: expected each tensor once, got {target!r} twice")
        out[target] = np.asarray(value, dtype=np.float32)
    if skipped:
        logger.info("HF import skipped %d tensors: %s", len(skipped), skipped[:5])
    return out


def read_hf_state(model_dir: str | Path) -> dict[str, np.ndarray]:
    """Read ``model.safetensors`` of a HF BERT directory as ``{ModelZoo name: array}``."""
    from safetensors.numpy import load_file

    model_dir = Path(model_dir)
    path = model_dir / "model.safetensors"
    expect(path.is_file(), "HuggingFace model", f"{path.name} in the model directory", str(model_dir))
    try:
        state = load_file(str(path))
    except Exception as err:
        raise LRPPruneError(f"{str(path)!r}: expected a readable safetensors file, got {type(err).__name__}: "
                            f"{str(err)[:200]}") from None
    return convert_hf_state(state)


def load_hf_bert(model_dir: str | Path, *, is_training: bool = False, seq_length: int | None = None):
    """Build a BertModel from a HuggingFace BERT directory and load its weights strictly.

    Args:
        model_dir: a directory with ``config.json`` and ``model.safetensors``.
        is_training: ``False`` (the default) builds the model with every dropout probability at 0
            (ModelZoo semantics): right for evaluation, export, and for gating a model that is
            already fine-tuned with a deterministic start. Pass ``True`` when you will fine-tune it
            (the config's ``hidden_dropout_prob`` and ``attention_probs_dropout_prob`` then apply
            in ``set_train(True)``); it cannot be switched on later without rebuilding.
        seq_length: overrides the config's default sequence length (exports, dummy inputs).

    Returns:
        ``(model, config)``.

    Example:
        >>> from lrp_prune.io.assets import fetch_minilm        # doctest: +SKIP
        >>> model, cfg = load_hf_bert(fetch_minilm(), is_training=True)  # doctest: +SKIP
        >>> cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_dropout_prob  # doctest: +SKIP
        (6, 12, 0.1)
    """
    from dataclasses import replace

    from lrp_prune.io.checkpoint import load_param_dict
    from lrp_prune.network.bert import BertModel

    cfg = BertConfig.from_hf_config(model_dir)
    if seq_length is not None:
        cfg = replace(cfg, seq_length=seq_length)
    model = BertModel(cfg, is_training)
    load_param_dict(model, read_hf_state(model_dir), strict=True, source=f"HuggingFace model {str(model_dir)!r}")
    return model, cfg

"""Tiny random BERTs and inputs built in code, shared by the tests."""

from __future__ import annotations

import mindspore as ms
import numpy as np

from lrp_prune import BertConfig, BertModel
from lrp_prune.checkpoint import load_param_dict, param_dict
from reference import bert_forward, random_params


def tiny_config(**overrides) -> BertConfig:
    """A tiny BERT with odd sizes: hidden 32, 4 heads of 8, FFN 37, vocab 53, 3 layers."""
    base = dict(vocab_size=53, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                intermediate_size=37, seq_length=9, max_position_embeddings=16, type_vocab_size=2)
    base.update(overrides)
    return BertConfig(**base)


def random_model(cfg: BertConfig, seed: int = 0, is_training: bool = False) -> BertModel:
    """A BertModel whose every parameter (biases and LayerNorms too) is random."""
    model = BertModel(cfg, is_training)
    load_param_dict(model, random_params(cfg.to_dict(), seed))
    return model


def random_inputs(cfg: BertConfig, batch: int = 2, seed: int = 0, pad_from: int | None = 6):
    """int32 numpy ``(input_ids, token_type_ids, input_mask)``; the last row is padded from ``pad_from``."""
    rng = np.random.default_rng(seed)
    s = cfg.seq_length
    ids = rng.integers(0, cfg.vocab_size, (batch, s)).astype(np.int32)
    types = rng.integers(0, cfg.type_vocab_size, (batch, s)).astype(np.int32)
    mask = np.ones((batch, s), np.int32)
    if pad_from is not None:
        mask[-1, pad_from:] = 0
    return ids, types, mask


def as_tensors(arrays):
    """numpy arrays -> MindSpore tensors."""
    return tuple(ms.Tensor(a) for a in arrays)


def reference_outputs(model, cfg: BertConfig, inputs, gates=None):
    """The numpy reference run on ``model``'s current parameters."""
    return bert_forward(param_dict(model), cfg.to_dict(), *inputs, gates=gates)


def max_diff(a, b) -> float:
    a = a.asnumpy() if hasattr(a, "asnumpy") else np.asarray(a)
    b = b.asnumpy() if hasattr(b, "asnumpy") else np.asarray(b)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())

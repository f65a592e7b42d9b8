"""Tests of lrp_prune.io.hf: HF -> ModelZoo names, safetensors import, and the real all-MiniLM-L6-v2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lrp_prune import BertConfig, LRPPruneError
from lrp_prune.io.checkpoint import param_dict
from lrp_prune.io.hf import convert_hf_state, hf_to_modelzoo_name, load_hf_bert, read_hf_state
from safetensors.numpy import save_file

from helpers import as_tensors, max_diff, random_inputs, tiny_config
from reference import bert_forward, expected_param_names, param_shapes, random_params

EMB = "bert_embedding_postprocessor"


# ---------------------------------------------------------------------------- name map, by hand
def hf_name_map(num_layers: int) -> dict[str, str]:
    """HF BertModel tensor name -> ModelZoo name, written out independently of lrp_prune.io.hf."""
    names = {
        "embeddings.word_embeddings.weight": "bert_embedding_lookup.embedding_table",
        "embeddings.position_embeddings.weight": f"{EMB}.full_position_embedding.embedding_table",
        "embeddings.token_type_embeddings.weight": f"{EMB}.token_type_embedding.embedding_table",
        "embeddings.LayerNorm.weight": f"{EMB}.layernorm.gamma",
        "embeddings.LayerNorm.bias": f"{EMB}.layernorm.beta",
        "pooler.dense.weight": "dense.weight",
        "pooler.dense.bias": "dense.bias",
    }
    for i in range(num_layers):
        hf, mz = f"encoder.layer.{i}", f"bert_encoder.layers.{i}"
        for kind in ("weight", "bias"):
            ln = "gamma" if kind == "weight" else "beta"
            names.update({
                f"{hf}.attention.self.query.{kind}": f"{mz}.attention.attention.query_layer.{kind}",
                f"{hf}.attention.self.key.{kind}": f"{mz}.attention.attention.key_layer.{kind}",
                f"{hf}.attention.self.value.{kind}": f"{mz}.attention.attention.value_layer.{kind}",
                f"{hf}.attention.output.dense.{kind}": f"{mz}.attention.output.dense.{kind}",
                f"{hf}.attention.output.LayerNorm.{kind}": f"{mz}.attention.output.layernorm.{ln}",
                f"{hf}.intermediate.dense.{kind}": f"{mz}.intermediate.{kind}",
                f"{hf}.output.dense.{kind}": f"{mz}.output.dense.{kind}",
                f"{hf}.output.LayerNorm.{kind}": f"{mz}.output.layernorm.{ln}",
            })
    return names


CASES = [
    ("embeddings.word_embeddings.weight", "bert_embedding_lookup.embedding_table"),
    ("embeddings.position_embeddings.weight", f"{EMB}.full_position_embedding.embedding_table"),
    ("embeddings.token_type_embeddings.weight", f"{EMB}.token_type_embedding.embedding_table"),
    ("embeddings.LayerNorm.weight", f"{EMB}.layernorm.gamma"),
    ("embeddings.LayerNorm.bias", f"{EMB}.layernorm.beta"),
    ("embeddings.LayerNorm.gamma", f"{EMB}.layernorm.gamma"),
    ("embeddings.LayerNorm.beta", f"{EMB}.layernorm.beta"),
    ("encoder.layer.0.attention.self.query.weight", "bert_encoder.layers.0.attention.attention.query_layer.weight"),
    ("encoder.layer.0.attention.self.query.bias", "bert_encoder.layers.0.attention.attention.query_layer.bias"),
    ("encoder.layer.1.attention.self.key.weight", "bert_encoder.layers.1.attention.attention.key_layer.weight"),
    ("encoder.layer.1.attention.self.key.bias", "bert_encoder.layers.1.attention.attention.key_layer.bias"),
    ("encoder.layer.2.attention.self.value.weight", "bert_encoder.layers.2.attention.attention.value_layer.weight"),
    ("encoder.layer.2.attention.self.value.bias", "bert_encoder.layers.2.attention.attention.value_layer.bias"),
    ("encoder.layer.3.attention.output.dense.weight", "bert_encoder.layers.3.attention.output.dense.weight"),
    ("encoder.layer.3.attention.output.dense.bias", "bert_encoder.layers.3.attention.output.dense.bias"),
    ("encoder.layer.4.attention.output.LayerNorm.weight", "bert_encoder.layers.4.attention.output.layernorm.gamma"),
    ("encoder.layer.4.attention.output.LayerNorm.bias", "bert_encoder.layers.4.attention.output.layernorm.beta"),
    ("encoder.layer.4.attention.output.LayerNorm.gamma", "bert_encoder.layers.4.attention.output.layernorm.gamma"),
    ("encoder.layer.4.attention.output.LayerNorm.beta", "bert_encoder.layers.4.attention.output.layernorm.beta"),
    ("encoder.layer.5.intermediate.dense.weight", "bert_encoder.layers.5.intermediate.weight"),
    ("encoder.layer.5.intermediate.dense.bias", "bert_encoder.layers.5.intermediate.bias"),
    ("encoder.layer.10.output.dense.weight", "bert_encoder.layers.10.output.dense.weight"),
    ("encoder.layer.10.output.dense.bias", "bert_encoder.layers.10.output.dense.bias"),
    ("encoder.layer.11.output.LayerNorm.weight", "bert_encoder.layers.11.output.layernorm.gamma"),
    ("encoder.layer.11.output.LayerNorm.bias", "bert_encoder.layers.11.output.layernorm.beta"),
    ("encoder.layer.11.output.LayerNorm.gamma", "bert_encoder.layers.11.output.layernorm.gamma"),
    ("pooler.dense.weight", "dense.weight"),
    ("pooler.dense.bias", "dense.bias"),
]


@pytest.mark.parametrize("hf,mz", CASES)
def test_hf_to_modelzoo_name(hf, mz):
    assert hf_to_modelzoo_name(hf) == mz
    assert hf_to_modelzoo_name("bert." + hf) == mz  # BertForPreTraining / task-model prefix


def test_name_map_covers_every_modelzoo_name():
    mapped = {hf_to_modelzoo_name(k) for k in hf_name_map(3)}
    assert mapped == set(expected_param_names(3))


@pytest.mark.parametrize("name", [
    "embeddings.position_ids", "bert.embeddings.position_ids",
    "cls.predictions.bias", "cls.predictions.transform.dense.weight",
    "cls.predictions.transform.LayerNorm.weight", "cls.seq_relationship.weight",
    "classifier.weight", "classifier.bias",
])
def test_skipped_names(name):
    assert hf_to_modelzoo_name(name) is None


@pytest.mark.parametrize("name", [
    "encoder.layer.0.attention.self.rotary.weight",
    "encoder.layer.0.attention.self.query.kernel",
    "encoder.layer.x.output.dense.weight",
    "embeddings.word_embeddings.bias",
    "pooler.dense.gamma",
    "decoder.weight",
    "roberta.embeddings.word_embeddings.weight",
])
def test_unknown_name_raises(name):
    with pytest.raises(LRPPruneError) as info:
        hf_to_modelzoo_name(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("name", ["encoder.layer.0.attention.self.query.gamma",
                                  "encoder.layer.1.intermediate.dense.beta"])
def test_gamma_beta_outside_layernorm_raises(name):
    with pytest.raises(LRPPruneError):
        hf_to_modelzoo_name(name)


def test_convert_hf_state_skips_and_detects_duplicates():
    state = {"bert.embeddings.LayerNorm.gamma": np.ones(4, np.float16),
             "bert.embeddings.position_ids": np.arange(8, dtype=np.int64)[None],
             "cls.predictions.bias": np.zeros(9, np.float32)}
    out = convert_hf_state(state)
    assert list(out) == [f"{EMB}.layernorm.gamma"]
    assert out[f"{EMB}.layernorm.gamma"].dtype == np.float32
    state["embeddings.LayerNorm.weight"] = np.ones(4, np.float32)  # same tensor under a second name
    with pytest.raises(LRPPruneError, match="layernorm.gamma"):
        convert_hf_state(state)


# ---------------------------------------------------------------------------- a synthetic HF directory
def hf_config_json(cfg: BertConfig, **extra) -> dict:
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads, "intermediate_size": cfg.intermediate_size,
            "hidden_act": cfg.hidden_act, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": cfg.max_position_embeddings, "type_vocab_size": cfg.type_vocab_size,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
            "position_embedding_type": "absolute", "torch_dtype": "float32", **extra}


def write_hf_dir(path, cfg: BertConfig, mz_params: dict, **config_extra) -> dict:
    """Write config.json + model.safetensors (HF names, with position_ids and an MLM head)."""
    inverse = {mz: hf for hf, mz in hf_name_map(cfg.num_hidden_layers).items()}
    state = {inverse[name]: value for name, value in mz_params.items()}
    state["embeddings.position_ids"] = np.arange(cfg.max_position_embeddings, dtype=np.int64)[None]
    state["cls.predictions.bias"] = np.zeros(cfg.vocab_size, np.float32)
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(hf_config_json(cfg, **config_extra)), encoding="utf-8")
    return state


def test_load_hf_bert_synthetic(tmp_path):
    cfg = tiny_config(num_hidden_layers=2, seq_length=8)
    source = random_params(cfg.to_dict(), seed=21)
    write_hf_dir(tmp_path, cfg, source)
    assert set(read_hf_state(tmp_path)) == set(source)
    model, loaded_cfg = load_hf_bert(tmp_path, seq_length=8)
    assert loaded_cfg.num_hidden_layers == 2 and loaded_cfg.hidden_size == 32
    assert loaded_cfg.layer_heads is None and loaded_cfg.seq_length == 8
    assert model.config == loaded_cfg and not model.is_training
    values = param_dict(model)
    assert set(values) == set(source)
    for name, value in values.items():
        np.testing.assert_array_equal(value, source[name], err_msg=name)
    inputs = random_inputs(loaded_cfg, batch=2, seed=2)
    seq, pooled, _ = model(*as_tensors(inputs))
    ref_seq, ref_pooled = bert_forward(source, loaded_cfg.to_dict(), *inputs)
    assert max_diff(seq, ref_seq) < 1e-5
    assert max_diff(pooled, ref_pooled) < 1e-5


def test_load_hf_bert_pruned_heads(tmp_path):
    # a model saved by HF after model.prune_heads({0: [1, 2], 1: [0, 1, 2, 3]})
    cfg = tiny_config(num_hidden_layers=2, seq_length=8)
    pruned_cfg = cfg.with_layer_heads([[0, 3], []])
    source = random_params(pruned_cfg.to_dict(), seed=4)
    assert source["bert_encoder.layers.0.attention.attention.query_layer.weight"].shape == (16, 32)
    write_hf_dir(tmp_path, cfg, source, pruned_heads={"0": [1, 2], "1": [0, 1, 2, 3]})
    model, loaded_cfg = load_hf_bert(tmp_path)
    assert loaded_cfg.layer_heads == ((0, 3), ())
    assert set(param_dict(model)) == set(source)
    inputs = random_inputs(loaded_cfg, batch=2, seed=3)
    seq, pooled, _ = model(*as_tensors(inputs))
    ref_seq, ref_pooled = bert_forward(source, loaded_cfg.to_dict(), *inputs)
    assert max_diff(seq, ref_seq) < 1e-5
    assert max_diff(pooled, ref_pooled) < 1e-5


def test_load_hf_bert_missing_tensor(tmp_path):
    cfg = tiny_config(num_hidden_layers=2)
    source = random_params(cfg.to_dict(), seed=1)
    del source["bert_encoder.layers.1.output.dense.bias"]
    write_hf_dir(tmp_path, cfg, source)
    with pytest.raises(LRPPruneError) as info:
        load_hf_bert(tmp_path)
    assert "bert_encoder.layers.1.output.dense.bias" in str(info.value)


def test_load_hf_bert_wrong_shape(tmp_path):
    cfg = tiny_config(num_hidden_layers=2)
    source = random_params(cfg.to_dict(), seed=1)
    write_hf_dir(tmp_path, cfg.with_layer_heads(None), source)
    data = hf_config_json(cfg)
    data["intermediate_size"] = 38  # config and tensors disagree
    (tmp_path / "config.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(LRPPruneError, match="intermediate"):
        load_hf_bert(tmp_path)


def test_missing_safetensors(tmp_path):
    cfg = tiny_config(num_hidden_layers=2)
    (tmp_path / "config.json").write_text(json.dumps(hf_config_json(cfg)), encoding="utf-8")
    with pytest.raises(LRPPruneError) as info:
        load_hf_bert(tmp_path)
    assert "model.safetensors" in str(info.value) and str(tmp_path) in str(info.value)


def test_corrupt_safetensors(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    with pytest.raises(LRPPruneError, match="model.safetensors"):
        read_hf_state(tmp_path)


def test_missing_config(tmp_path):
    cfg = tiny_config(num_hidden_layers=2)
    write_hf_dir(tmp_path, cfg, random_params(cfg.to_dict()))
    (tmp_path / "config.json").unlink()
    with pytest.raises(LRPPruneError, match="config.json"):
        load_hf_bert(tmp_path)


# ---------------------------------------------------------------------------- the real all-MiniLM-L6-v2
SENTENCES = ["A man is playing a guitar.", "A person plays the guitar.", "The stock market fell sharply today."]


@pytest.mark.integration
def test_minilm_real():
    import mindspore as ms
    from lrp_prune.io.assets import fetch_minilm
    from safetensors.numpy import load_file
    from tokenizers import BertWordPieceTokenizer

    ms.set_context(mode=ms.GRAPH_MODE)
    directory = fetch_minilm()
    model, cfg = load_hf_bert(directory, seq_length=16)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (384, 6, 12)
    assert cfg.hidden_act == "gelu" and cfg.intermediate_size == 1536

    # every tensor of the file is used, every parameter comes from the file
    raw = load_file(str(directory / "model.safetensors"))
    file_names = {hf_to_modelzoo_name(k) for k in raw if k != "embeddings.position_ids"}
    assert None not in file_names
    params = param_dict(model)
    assert file_names == set(params) == set(param_shapes(cfg.to_dict()))
    inverse = {mz: hf for hf, mz in hf_name_map(cfg.num_hidden_layers).items()}
    for name, value in params.items():
        np.testing.assert_array_equal(value, raw[inverse[name]], err_msg=name)

    tokenizer = BertWordPieceTokenizer(str(directory / "vocab.txt"), lowercase=True)
    tokenizer.enable_truncation(16)
    tokenizer.enable_padding(length=16)
    encodings = tokenizer.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in encodings], np.int32)
    types = np.array([e.type_ids for e in encodings], np.int32)
    mask = np.array([e.attention_mask for e in encodings], np.int32)
    assert ids[0, 0] == 101 and mask[0].sum() < 16  # [CLS] first, padded
    assert tokenizer.decode(ids[0].tolist()) == "a man is playing a guitar."

    seq, pooled, _ = model(*as_tensors((ids, types, mask)))
    ref_seq, ref_pooled = bert_forward(params, cfg.to_dict(), ids, types, mask)
    assert max_diff(seq, ref_seq) < 1e-4
    assert max_diff(pooled, ref_pooled) < 1e-4

    m = mask[..., None].astype(np.float64)
    emb = (seq.asnumpy().astype(np.float64) * m).sum(1) / m.sum(1)  # (3, 384) mean pooling
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    paraphrase, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert paraphrase > unrelated + 0.3, (paraphrase, unrelated)
    assert paraphrase > 0.6

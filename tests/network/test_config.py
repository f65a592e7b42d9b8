"""Tests of lrp_prune.network.config.BertConfig: serialisation, validation, HF import, derived sizes."""

from __future__ import annotations

import dataclasses
import json

import mindspore as ms
import pytest
from lrp_prune import BertConfig, BertModel, LRPPruneError

from helpers import tiny_config

# all-MiniLM-L6-v2's config.json as shipped on the HuggingFace hub
MINILM_HF = {
    "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 384,
    "initializer_range": 0.02,
    "intermediate_size": 1536,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 6,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "transformers_version": "4.8.2",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30522,
}


def small(**overrides) -> BertConfig:
    base = dict(vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=5, seq_length=3, max_position_embeddings=4, type_vocab_size=2)
    base.update(overrides)
    return BertConfig(**base)


# ---------------------------------------------------------------------------- serialisation
def test_json_round_trip_with_empty_layer():
    cfg = tiny_config(layer_heads=[[0, 2], [], [1, 2, 3]], hidden_act="relu", hidden_dropout_prob=0.25)
    text = cfg.to_json()
    data = json.loads(text)
    assert data["layer_heads"] == [[0, 2], [], [1, 2, 3]]
    assert data["hidden_act"] == "relu" and data["hidden_dropout_prob"] == 0.25
    back = BertConfig.from_json(text)
    assert back == cfg
    assert back.layer_heads == ((0, 2), (), (1, 2, 3))
    assert back.heads_per_layer == (2, 0, 3)


def test_json_round_trip_unpruned_and_file(tmp_path):
    cfg = tiny_config()
    assert cfg.to_dict()["layer_heads"] is None
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json(), encoding="utf-8")
    assert BertConfig.from_json_file(path) == cfg
    assert BertConfig.from_dict(cfg.to_dict()) == cfg


def test_to_dict_has_every_field():
    names = {f.name for f in dataclasses.fields(BertConfig)}
    assert set(tiny_config().to_dict()) == names


def test_from_dict_unknown_keys_lists_known_keys():
    data = tiny_config().to_dict()
    data["hiden_size"] = 32
    data["zzz"] = 1
    with pytest.raises(LRPPruneError) as info:
        BertConfig.from_dict(data)
    msg = str(info.value)
    assert "hiden_size" in msg and "zzz" in msg
    for known in ("hidden_size", "num_attention_heads", "layer_heads", "layer_norm_eps"):
        assert known in msg


def test_from_json_bad_text_and_missing_file(tmp_path):
    with pytest.raises(LRPPruneError, match="JSON"):
        BertConfig.from_json("{not json")
    missing = tmp_path / "nope.json"
    with pytest.raises(LRPPruneError, match="nope.json"):
        BertConfig.from_json_file(missing)


def test_error_is_value_error():
    assert issubclass(LRPPruneError, ValueError)
    with pytest.raises(ValueError):
        small(hidden_size=-8)


# ---------------------------------------------------------------------------- validation
POSITIVE_INTS = ("seq_length", "vocab_size", "hidden_size", "num_hidden_layers",
                 "num_attention_heads", "intermediate_size", "max_position_embeddings",
                 "type_vocab_size")


@pytest.mark.parametrize("field", POSITIVE_INTS)
@pytest.mark.parametrize("value", [0, -1, 2.0, True, "4"])
def test_non_positive_ints_rejected(field, value):
    with pytest.raises(LRPPruneError) as info:
        small(**{field: value})
    assert str(info.value).startswith(f"{field}:")


def test_hidden_not_divisible_by_heads():
    with pytest.raises(LRPPruneError) as info:
        small(hidden_size=10, num_attention_heads=4)
    msg = str(info.value)
    assert msg.startswith("hidden_size:") and "num_attention_heads" in msg and "10" in msg


def test_seq_length_longer_than_positions():
    with pytest.raises(LRPPruneError, match="^seq_length:"):
        small(seq_length=5, max_position_embeddings=4)


@pytest.mark.parametrize("act", ["gelu_fast", "GELU", "tanh", ""])
def test_bad_hidden_act(act):
    with pytest.raises(LRPPruneError) as info:
        small(hidden_act=act)
    assert str(info.value).startswith("hidden_act:") and repr(act) in str(info.value)


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "gelu_tanh", "gelu_pytorch_tanh", "relu"])
def test_good_hidden_act(act):
    assert small(hidden_act=act).hidden_act == act


@pytest.mark.parametrize("field", ["hidden_dropout_prob", "attention_probs_dropout_prob"])
@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, "0.1", None])
def test_dropout_out_of_range(field, value):
    with pytest.raises(LRPPruneError) as info:
        small(**{field: value})
    assert str(info.value).startswith(f"{field}:")


@pytest.mark.parametrize("value", [0, 0.0, 0.999])
def test_dropout_in_range(value):
    assert small(hidden_dropout_prob=value, attention_probs_dropout_prob=value).hidden_dropout_prob == value


@pytest.mark.parametrize("field", ["initializer_range", "layer_norm_eps"])
def test_non_positive_floats(field):
    with pytest.raises(LRPPruneError, match=f"^{field}:"):
        small(**{field: 0.0})


@pytest.mark.parametrize("field", ["dtype", "compute_type"])
@pytest.mark.parametrize("value", ["int8", "float64", "fp16", ms.int32])
def test_bad_dtype(field, value):
    with pytest.raises(LRPPruneError) as info:
        small(**{field: value})
    assert str(info.value).startswith(f"{field}:")


@pytest.mark.parametrize("value,name", [(ms.float16, "float16"), (ms.float32, "float32"),
                                        (ms.bfloat16, "bfloat16"), ("Float16", "float16"),
                                        ("mindspore.float32", "float32")])
def test_accepts_mindspore_dtypes(value, name):
    cfg = small(dtype=value, compute_type=value)
    assert cfg.dtype == name and cfg.compute_type == name
    assert json.loads(cfg.to_json())["dtype"] == name  # stays JSON-serialisable


def test_relative_positions_refused():
    with pytest.raises(LRPPruneError) as info:
        small(use_relative_positions=True)
    assert str(info.value).startswith("use_relative_positions:")


def test_layer_heads_wrong_length():
    with pytest.raises(LRPPruneError) as info:
        small(layer_heads=[[0, 1]])
    assert str(info.value).startswith("layer_heads:") and "(2)" in str(info.value)


def test_layer_heads_unsorted():
    with pytest.raises(LRPPruneError) as info:
        small(layer_heads=[[0, 1], [1, 0]])
    assert str(info.value).startswith("layer_heads[1]:")


def test_layer_heads_duplicate():
    with pytest.raises(LRPPruneError, match=r"^layer_heads\[0\]:"):
        small(layer_heads=[[1, 1], [0]])


@pytest.mark.parametrize("bad", [[2], [-1], [0, 5]])
def test_layer_heads_out_of_range(bad):
    with pytest.raises(LRPPruneError) as info:
        small(layer_heads=[[0], bad])
    assert str(info.value).startswith("layer_heads[1]:")


@pytest.mark.parametrize("bad", [5, "ab", [[0], ["x"]], [[0], None]])
def test_layer_heads_wrong_type(bad):
    with pytest.raises(LRPPruneError, match="^layer_heads"):
        small(layer_heads=bad)


def test_layer_heads_non_integer():
    with pytest.raises(LRPPruneError, match="^layer_heads"):
        small(layer_heads=[[0.9], [1]])


def test_frozen():
    cfg = small()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hidden_size = 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.layer_heads = ((0,), (1,))
    assert cfg.hidden_size == 8


# ---------------------------------------------------------------------------- HuggingFace import
def test_from_hf_config_minilm():
    cfg = BertConfig.from_hf_config(MINILM_HF)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (384, 6, 12)
    assert (cfg.intermediate_size, cfg.vocab_size) == (1536, 30522)
    assert cfg.hidden_act == "gelu"
    assert cfg.layer_norm_eps == 1e-12
    assert cfg.max_position_embeddings == 512 and cfg.type_vocab_size == 2
    assert cfg.hidden_dropout_prob == 0.1 and cfg.attention_probs_dropout_prob == 0.1
    assert cfg.layer_heads is None and not cfg.is_pruned
    assert cfg.head_size == 32 and cfg.total_heads == 72
    assert cfg.seq_length <= cfg.max_position_embeddings
    assert cfg.dtype == "float32"


def test_from_hf_config_path_and_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(MINILM_HF), encoding="utf-8")
    expected = BertConfig.from_hf_config(MINILM_HF)
    assert BertConfig.from_hf_config(tmp_path) == expected
    assert BertConfig.from_hf_config(str(tmp_path / "config.json")) == expected
    with pytest.raises(LRPPruneError, match="config"):
        BertConfig.from_hf_config(tmp_path / "missing")


def test_from_hf_config_pruned_heads():
    cfg = BertConfig.from_hf_config({**MINILM_HF, "pruned_heads": {"0": [1, 2]}})
    assert cfg.layer_heads[0] == (0, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert all(cfg.layer_heads[i] == tuple(range(12)) for i in range(1, 6))
    assert cfg.heads_per_layer == (10, 12, 12, 12, 12, 12)
    assert cfg.total_heads == 70 and cfg.is_pruned


def test_from_hf_config_pruned_heads_int_keys_and_whole_layer():
    cfg = BertConfig.from_hf_config({**MINILM_HF, "pruned_heads": {5: list(range(12)), 2: [11]}})
    assert cfg.layer_heads[5] == () and cfg.layer_heads[2] == tuple(range(11))
    assert cfg.heads_per_layer == (12, 12, 11, 12, 12, 0)


@pytest.mark.parametrize("pruned", [{"9": [1]}, {"0": [40]}, {"0": [-1]}])
def test_from_hf_config_pruned_heads_out_of_range(pruned):
    with pytest.raises(LRPPruneError, match="pruned_heads"):
        BertConfig.from_hf_config({**MINILM_HF, "pruned_heads": pruned})


@pytest.mark.parametrize("model_type", ["roberta", "distilbert", "gpt2"])
def test_from_hf_config_non_bert(model_type):
    with pytest.raises(LRPPruneError) as info:
        BertConfig.from_hf_config({**MINILM_HF, "model_type": model_type})
    assert str(info.value).startswith("model_type:") and model_type in str(info.value)


def test_from_hf_config_missing_key():
    data = dict(MINILM_HF)
    del data["intermediate_size"]
    with pytest.raises(LRPPruneError, match="intermediate_size"):
        BertConfig.from_hf_config(data)


def test_from_hf_config_relative_positions_refused():
    with pytest.raises(LRPPruneError, match="position_embedding_type"):
        BertConfig.from_hf_config({**MINILM_HF, "position_embedding_type": "relative_key"})


# ---------------------------------------------------------------------------- derived sizes
def test_derived_sizes():
    cfg = tiny_config()
    assert cfg.head_size == 8
    assert cfg.heads_per_layer == (4, 4, 4) and cfg.total_heads == 12 and not cfg.is_pruned
    pruned = cfg.with_layer_heads([[3, 0], [], [1]])
    assert pruned.layer_heads == ((0, 3), (), (1,))
    assert pruned.heads_of(0) == (0, 3) and pruned.heads_of(1) == ()
    assert pruned.heads_per_layer == (2, 0, 1) and pruned.total_heads == 3 and pruned.is_pruned
    assert cfg.heads_of(2) == (0, 1, 2, 3)
    # all heads back: canonical unpruned form
    assert pruned.with_layer_heads([[0, 1, 2, 3]] * 3) == cfg
    assert pruned.with_layer_heads(None) == cfg


def _count(model) -> int:
    return sum(int(p.size) for p in model.get_parameters())


@pytest.mark.parametrize("layer_heads", [
    None,
    [[0, 1, 2, 3], [0], [2, 3]],
    [[], [1, 2], []],
    [[], [], []],
    [[3], [0, 1, 2], [0, 1, 2, 3]],
])
def test_num_parameters_matches_model(layer_heads):
    cfg = tiny_config(layer_heads=layer_heads)
    model = BertModel(cfg, is_training=False)
    assert cfg.num_parameters() == _count(model)
    assert cfg.num_parameters(pooler=False) == _count(model) - (32 * 32 + 32)


def test_num_parameters_closed_form_minilm():
    # all-MiniLM-L6-v2 has 22,713,216 parameters including the pooler
    assert BertConfig.from_hf_config(MINILM_HF).num_parameters() == 22_713_216


def test_attention_flops_by_hand():
    # hidden 8, 2 heads of 4, seq 3
    cfg = small()
    # per full layer: Q,K,V,O 4 * 3*8*8 = 768; scores + context 2 * 3*3*8 = 144 -> 912
    assert cfg.attention_flops() == 2 * 912
    pruned = cfg.with_layer_heads([[1], []])
    # layer 0 keeps one head (width 4): 4*3*8*4 = 384 + 2*3*3*4 = 72 -> 456; layer 1 nothing
    assert pruned.attention_flops() == 456
    # seq 5, width 4: 4*5*8*4 = 640 + 2*5*5*4 = 200
    assert pruned.attention_flops(seq_length=5) == 840
    assert cfg.with_layer_heads([[], []]).attention_flops() == 0


# ---------------------------------------------------------------- values from outside (hand-edited configs)
@pytest.mark.parametrize("field,value,needle", [
    ("initializer_range", float("inf"), "initializer_range: expected a finite positive number, got inf"),
    ("layer_norm_eps", float("inf"), "layer_norm_eps: expected a finite positive number, got inf"),
    ("layer_norm_eps", "1e-12", "layer_norm_eps: expected a finite positive number, got '1e-12'"),
    ("hidden_size", "384", "hidden_size: expected a positive integer, got '384'"),
    ("hidden_dropout_prob", None, "hidden_dropout_prob: expected a drop probability in [0, 1), got None"),
])
def test_non_finite_and_wrongly_typed_config_values_name_the_field(field, value, needle):
    base = dict(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37)
    base[field] = value
    with pytest.raises(LRPPruneError) as info:
        BertConfig.from_dict(base)
    assert str(info.value) == needle


def test_numpy_integers_are_integers():
    import numpy as np

    cfg = BertConfig(vocab_size=np.int64(50), hidden_size=np.int32(32), num_hidden_layers=1,
                     num_attention_heads=4, intermediate_size=37)
    assert cfg.hidden_size == 32 and type(cfg.hidden_size) is int and BertConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("key,value,needle", [
    ("hidden_size", "abc", "HuggingFace config hidden_size: expected an integer, got 'abc'"),
    ("layer_norm_eps", [1], "HuggingFace config layer_norm_eps: expected a number, got [1]"),
    ("hidden_act", 3, "HuggingFace config hidden_act: expected a str, got 3"),
])
def test_hand_edited_hf_configs_name_the_key(tmp_path, key, value, needle):
    hf = {"model_type": "bert", "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 1,
          "num_attention_heads": 4, "intermediate_size": 37, key: value}
    (tmp_path / "config.json").write_text(json.dumps(hf), encoding="utf-8")
    with pytest.raises(LRPPruneError) as info:
        BertConfig.from_hf_config(tmp_path)
    assert str(info.value) == needle
    (tmp_path / "config.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(LRPPruneError, match="expected a JSON object of config fields, got 'list'"):
        BertConfig.from_hf_config(tmp_path)

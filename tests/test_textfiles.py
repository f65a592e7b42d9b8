"""Every text file the library reads: UTF-8 with or without a BOM, or one clear error naming the path."""

from __future__ import annotations

import json

import pytest

from helpers import write_tiny_nli
from lrp_prune import BertConfig, LRPPruneError
from lrp_prune.data import read_glue_mnli_tsv, read_snli_jsonl
from lrp_prune.data.tokenization import PairTokenizer
from lrp_prune.textfiles import read_text

SNLI_ROW = {"gold_label": "entailment", "sentence1": "A café.", "sentence2": "A place.", "captionID": "1"}


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_files_that_are_not_utf8_name_the_path_and_the_fix(tmp_path, encoding):
    tiny = write_tiny_nli(tmp_path / "nli")
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes(("[PAD]\n[UNK]\n[CLS]\n[SEP]\ncafé\n").encode(encoding))
    config = tmp_path / "bert_config.json"
    config.write_bytes(BertConfig(vocab_size=5, hidden_size=8, num_attention_heads=2, num_hidden_layers=1,
                                  intermediate_size=4, seq_length=4).to_json().replace("{", "{\"x\": \"é\",", 1)
                       .encode(encoding))
    tsv = tmp_path / "train.tsv"
    tsv.write_bytes(open(tiny["data_dir"] + "/train.tsv", encoding="utf-8").read().replace("a ", "é ").encode(encoding))
    jsonl = tmp_path / "snli.jsonl"
    jsonl.write_bytes(json.dumps(SNLI_ROW, ensure_ascii=False).encode(encoding))
    for call, path in ((lambda: PairTokenizer(vocab), vocab), (lambda: BertConfig.from_json_file(config), config),
                       (lambda: read_glue_mnli_tsv(tsv), tsv), (lambda: read_snli_jsonl(jsonl), jsonl)):
        with pytest.raises(LRPPruneError, match="expected UTF-8 text") as info:
            call()
        assert str(path) in str(info.value) and "re-save the file as UTF-8" in str(info.value)


def test_a_byte_order_mark_is_accepted(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes("\ufeff[PAD]\n[UNK]\n[CLS]\n[SEP]\ncat\n".encode("utf-8"))
    tok = PairTokenizer(vocab)
    assert tok.encode(["cat"], None, 4)["input_ids"].tolist() == [[2, 4, 3, 0]]  # [PAD] kept id 0
    jsonl = tmp_path / "snli.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps(SNLI_ROW).encode("utf-8"))
    assert read_snli_jsonl(jsonl).premises == ("A café.",)
    assert read_text(jsonl, "x").startswith("{")

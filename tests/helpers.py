"""Tiny random BERTs and inputs built in code, shared by the tests."""

from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
from lrp_prune import BertConfig, BertModel, HeadPruningFactory, ModelGates
from lrp_prune.io.checkpoint import load_param_dict, param_dict

from reference import bert_forward, random_params

#: The repository root (samples/, docs/, benchmarks/ are under it).
REPO = Path(__file__).resolve().parents[1]

#: log_a values well inside "closed" (eval gate 0) and "open" (eval gate 1).
CLOSED, OPEN = -5.0, 4.0


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


def make_pruner(l0_penalty: float | None = 0.01, **inner):
    """An LRP pruner from the Golden Stick factory (``l0_penalty=None`` leaves the key out)."""
    if l0_penalty is not None:
        inner.setdefault("l0_penalty", l0_penalty)
    return HeadPruningFactory.get_pruner({"prune_type": "LRP", "arch_type": "BERT", "config": inner})


def set_log_a(model, values) -> None:
    """Set the head gates' ``log_a``: a ``[layers, heads]`` grid by original head index, or
    ``{layer: values}`` with one value per head the layer has (other layers unchanged)."""
    gates = ModelGates(model)
    if isinstance(values, dict):
        grid = gates.log_a()
        for i, host in gates.hosts():
            if i in values:
                grid[i, list(host.units)] = np.asarray(values[i], np.float64)
        values = grid
    gates.set_log_a(values)


def temp_leftovers(directory) -> list[str]:
    """Names under ``directory`` (recursively) that look like temporary or staging files: hidden
    files, ``.tmp``/``.export`` names, a save's staging sets; the committed store is not one."""
    from lrp_prune.io.store import STORE_DIR

    out = []
    for p in Path(directory).rglob("*"):
        rel = p.relative_to(directory)
        if rel.parts[0] == STORE_DIR:
            if ".tmp" in p.name or p.name.startswith("staging-"):
                out.append(str(rel))
        elif ".tmp" in p.name or ".export" in p.name or p.name.startswith("."):
            out.append(str(rel))
    return sorted(out)


def run_flow(options):
    """Run the pipeline as an entry point would: configure MindSpore (mode, seed), then ``run_prune``."""
    from lrp_prune.app.pipeline import run_prune
    from lrp_prune.app.cli import configure_mindspore

    return run_prune(options, configure_mindspore(options))


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


def reference_outputs(model, cfg: BertConfig, inputs, gates=None, ffn_gates=None):
    """The numpy reference run on ``model``'s current parameters."""
    return bert_forward(param_dict(model), cfg.to_dict(), *inputs, gates=gates, ffn_gates=ffn_gates)


def max_diff(a, b) -> float:
    a = a.asnumpy() if hasattr(a, "asnumpy") else np.asarray(a)
    b = b.asnumpy() if hasattr(b, "asnumpy") else np.asarray(b)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


WORDS = ("a man woman dog cat runs sits plays eats is the on in park red blue big small happy sad "
         "not no never guitar ball food street car house").split()


def write_tiny_nli(root, n_train: int = 96, n_dev: int = 40, seed: int = 0, cfg: BertConfig | None = None):
    """A tiny GLUE-MNLI layout (train.tsv, dev_matched.tsv, dev_mismatched.tsv), a vocab.txt, and
    a random tiny BERT saved as a ModelZoo fine-tuning checkpoint with its BertConfig JSON.

    The label is learnable: contradiction iff the hypothesis contains "not", entailment iff it
    repeats the premise's first word, else neutral.

    Returns ``{"data_dir", "vocab_file", "config_json", "checkpoint"}`` as strings.
    """
    import os
    from pathlib import Path

    from lrp_prune import BertClassifier, BertClassifierWithLoss, save_checkpoint

    root = Path(root)
    data_dir = root / "MNLI"
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = ("contradiction", "entailment", "neutral")

    def rows(n):
        out = []
        for i in range(n):
            premise = " ".join(rng.choice(WORDS[:-6], size=rng.integers(3, 7)))
            label = labels[i % 3]
            hyp = list(rng.choice(WORDS[1:-6], size=rng.integers(2, 5)))
            if label == "contradiction":
                hyp.insert(1, "not")
            elif label == "entailment":
                hyp.insert(0, premise.split()[0])
            out.append((str(i), premise, " ".join(w for w in hyp if label == "contradiction" or w != "not"), label))
        return out

    header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t" \
             "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
    for name, n in (("train.tsv", n_train), ("dev_matched.tsv", n_dev), ("dev_mismatched.tsv", n_dev)):
        with open(data_dir / name, "w", encoding="utf-8") as f:
            f.write(header)
            for idx, p, h, lab in rows(n):
                f.write(f"{idx}\t{idx}\t{idx}e\tfiction\t-\t-\t-\t-\t{p}\t{h}\t{lab}\t{lab}\n")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["."]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    cfg = cfg or tiny_config(vocab_size=len(vocab) + 3, seq_length=16, max_position_embeddings=32,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (root / "bert_config.json").write_text(cfg.to_json(), encoding="utf-8")
    clf = BertClassifier(cfg, False, num_labels=3)
    load_param_dict(clf.bert, random_params(cfg.to_dict(), seed))
    save_checkpoint(BertClassifierWithLoss(clf), root / "bert_cls.ckpt")
    return {"data_dir": str(data_dir), "vocab_file": str(root / "vocab.txt"),
            "config_json": str(root / "bert_config.json"), "checkpoint": str(root / "bert_cls.ckpt"),
            "root": os.fspath(root)}


def cli(*args, timeout=600):
    """Run ``python -m lrp_prune *args`` in a subprocess (GLOG_v=3); the CompletedProcess."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, GLOG_v="3")
    return subprocess.run([sys.executable, "-m", "lrp_prune", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)

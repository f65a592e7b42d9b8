"""The PyTorch peer: HuggingFace ``transformers.BertModel`` with the same weights and the same heads removed.

Optional: ``available()`` says why the peer cannot run (torch or transformers missing) instead of
raising, and nothing in the library imports this module.

Weights come from the MindSpore model through the library's own HF<->ModelZoo name map
(``lrp_prune.io.hf.hf_to_modelzoo_name``), so both frameworks compute the same function and
the harness checks it (``max_abs_diff``) before timing.

Head removal uses ``model.prune_heads({layer: [heads]})`` when the installed transformers has it
(4.x). transformers 5 removed head pruning; then :func:`prune_heads` slices Q/K/V rows and W_O
columns with ``transformers.pytorch_utils.prune_linear_layer`` exactly as 4.x's
``BertAttention.prune_heads`` did, and a layer left with no heads gets an attention that
returns an empty context (its block then computes ``LayerNorm(x + b_O)``, as in MindSpore).
"""

from __future__ import annotations

import copy
import os
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["available", "set_threads", "build_hf_bert", "prune_heads", "prune_ffn", "forward_runner", "hf_outputs",
           "train_step_runner"]


def available() -> str | None:
    """``None`` when torch and transformers import, else the reason they do not.

    ``LRP_BENCH_NO_TORCH=1`` in the environment makes the peer unavailable (tests of the skip path).
    """
    if os.environ.get("LRP_BENCH_NO_TORCH"):
        return "LRP_BENCH_NO_TORCH is set"
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from transformers import BertModel  # noqa: F401
    except Exception as err:  # ImportError, or a broken install
        return f"torch/transformers not importable ({type(err).__name__}: {err}); install the 'bench' extra"
    return None


def set_threads(threads: int) -> dict[str, Any]:
    """Give torch ``threads`` intra-op threads (and 1 inter-op thread where still settable)."""
    import torch

    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once, before any parallel work
        pass
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads()}


def hf_config(cfg: Any):
    """A ``transformers.BertConfig`` for a (unpruned) ``lrp_prune.BertConfig``, dropout off."""
    from transformers import BertConfig as HFConfig

    return HFConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
                    num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
                    hidden_act=cfg.hidden_act, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                    max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=cfg.type_vocab_size,
                    layer_norm_eps=cfg.layer_norm_eps, initializer_range=cfg.initializer_range)


def build_hf_bert(cfg: Any, params: Mapping[str, np.ndarray]):
    """An eval-mode HF BertModel (with pooler) holding ``params`` (ModelZoo names, unpruned)."""
    import torch
    from transformers import BertModel as HFBert

    from lrp_prune.io.hf import hf_to_modelzoo_name

    model = HFBert(hf_config(cfg), add_pooling_layer=True)
    state = model.state_dict()
    parameters = {name for name, _ in model.named_parameters()}
    new_state = {}
    for name, tensor in state.items():
        target = hf_to_modelzoo_name(name) if name in parameters else None
        if target is None:  # buffers such as position_ids / token_type_ids
            new_state[name] = tensor
            continue
        value = np.asarray(params[target], np.float32)
        if tuple(value.shape) != tuple(tensor.shape):
            raise ValueError(f"{name}: expected shape {tuple(tensor.shape)}, got {value.shape} from {target}")
        new_state[name] = torch.from_numpy(value.copy())
    model.load_state_dict(new_state, strict=True)
    model.eval()
    return model


class _NoHeads:
    """Stand-in for a self-attention with every head removed: an empty context."""

    @staticmethod
    def make():
        import torch

        class NoHeads(torch.nn.Module):
            def forward(self, hidden_states, *args, **kwargs):
                return hidden_states.new_zeros(*hidden_states.shape[:-1], 0), None

        return NoHeads()


def prune_heads(model: Any, heads_to_prune: Mapping[int, Sequence[int]]) -> str:
    """Remove heads in place (original indices); returns which method was used."""
    plan = {int(k): sorted(set(int(h) for h in v)) for k, v in heads_to_prune.items() if len(v)}
    if hasattr(model, "prune_heads") and callable(model.prune_heads):
        model.prune_heads(plan)
        return "transformers PreTrainedModel.prune_heads"
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    num_heads = model.config.num_attention_heads
    for layer_index, removed in plan.items():
        attention = model.encoder.layer[layer_index].attention
        self_attn = attention.self
        d = self_attn.attention_head_size
        kept = [h for h in range(num_heads) if h not in removed]
        index = torch.tensor([h * d + j for h in kept for j in range(d)], dtype=torch.long)
        attention.output.dense = prune_linear_layer(attention.output.dense, index, dim=1)
        if not kept:
            attention.self = _NoHeads.make()
            continue
        self_attn.query = prune_linear_layer(self_attn.query, index)
        self_attn.key = prune_linear_layer(self_attn.key, index)
        self_attn.value = prune_linear_layer(self_attn.value, index)
        self_attn.num_attention_heads = len(kept)
        self_attn.all_head_size = len(kept) * d
    model.eval()
    return "slicing with transformers.pytorch_utils.prune_linear_layer (this transformers has no prune_heads)"


def prune_ffn(model: Any, units_to_prune: Mapping[int, Sequence[int]]) -> None:
    """Remove feed-forward units in place: rows of ``intermediate.dense``, columns of ``output.dense``
    (``transformers.pytorch_utils.prune_linear_layer``, as HF's head pruning slices its layers)."""
    import warnings

    import torch
    from transformers.pytorch_utils import prune_linear_layer

    for layer_index, units in units_to_prune.items():
        if not len(units):
            continue
        layer = model.encoder.layer[int(layer_index)]
        width = layer.intermediate.dense.out_features
        drop = set(int(u) for u in units)
        keep = torch.tensor([u for u in range(width) if u not in drop], dtype=torch.long)
        with warnings.catch_warnings():  # "Initializing zero-element tensors is a no-op" for an emptied layer
            warnings.simplefilter("ignore", UserWarning)
            layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, keep, dim=0)
            layer.output.dense = prune_linear_layer(layer.output.dense, keep, dim=1)


def pruned_copy(model: Any, heads_to_prune: Mapping[int, Sequence[int]]) -> tuple[Any, str]:
    """A deep copy of ``model`` with the heads removed, and the method used."""
    import warnings

    clone = copy.deepcopy(model)
    with warnings.catch_warnings():  # "Initializing zero-element tensors is a no-op" for all-pruned layers
        warnings.simplefilter("ignore", UserWarning)
        return clone, prune_heads(clone, heads_to_prune)


def hf_outputs(model: Any, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sequence_output, pooled_output)`` as numpy for int arrays (B, S)."""
    import torch

    with torch.inference_mode():
        out = model(input_ids=torch.from_numpy(np.asarray(ids, np.int64)),
                    token_type_ids=torch.from_numpy(np.asarray(types, np.int64)),
                    attention_mask=torch.from_numpy(np.asarray(mask, np.int64)))
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


def forward_runner(model: Any, ids: np.ndarray, types: np.ndarray, mask: np.ndarray):
    """A no-argument callable running one inference forward (inputs built once)."""
    import torch

    t_ids = torch.from_numpy(np.asarray(ids, np.int64))
    t_types = torch.from_numpy(np.asarray(types, np.int64))
    t_mask = torch.from_numpy(np.asarray(mask, np.int64))

    def run():
        with torch.inference_mode():
            return model(input_ids=t_ids, token_type_ids=t_types, attention_mask=t_mask).pooler_output

    return run


def attn_implementation(model: Any) -> str | None:
    return getattr(model.config, "_attn_implementation", None)


def train_step_runner(cfg: Any, params: Mapping[str, np.ndarray], head: Mapping[str, np.ndarray],
                      ids: np.ndarray, types: np.ndarray, mask: np.ndarray, labels: np.ndarray,
                      learning_rate: float = 2e-5, clip_norm: float = 1.0):
    """A no-argument callable running one PyTorch train step of the benchmark's classifier.

    The same function as the MindSpore side (``BertClassifierWithLoss`` with mean pooling, dropout
    off): HF ``BertModel`` (no pooler), the masked mean of the last hidden states, a linear head
    (``head``: ``weight`` (labels, hidden), ``bias``), cross-entropy, a global-norm clip and AdamW.
    """
    import torch

    bert = build_hf_bert(cfg, params)
    bert.pooler = None  # mean pooling: the pooler is not part of the step
    linear = torch.nn.Linear(cfg.hidden_size, int(head["weight"].shape[0]))
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.asarray(head["weight"], np.float32)))
        linear.bias.copy_(torch.from_numpy(np.asarray(head["bias"], np.float32)))
    bert.train()
    modules = torch.nn.ModuleList([bert, linear])
    opt = torch.optim.AdamW(modules.parameters(), lr=learning_rate, weight_decay=0.01)
    t_ids = torch.from_numpy(np.asarray(ids, np.int64))
    t_types = torch.from_numpy(np.asarray(types, np.int64))
    t_mask = torch.from_numpy(np.asarray(mask, np.int64))
    t_labels = torch.from_numpy(np.asarray(labels, np.int64))
    weights = t_mask.unsqueeze(-1).float()  # (B, S, 1)

    def run():
        opt.zero_grad(set_to_none=True)
        hidden = bert(input_ids=t_ids, token_type_ids=t_types, attention_mask=t_mask).last_hidden_state  # (B, S, H)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, H)
        loss = torch.nn.functional.cross_entropy(linear(pooled), t_labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(modules.parameters(), clip_norm)
        opt.step()
        return float(loss.detach())

    return run

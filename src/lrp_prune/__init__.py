"""lrp_prune: learn which BERT attention heads matter, then physically remove the rest.

A MindSpore port of Golden Stick's LRP head pruner (Voita et al. 2019): a Hard
Concrete gate per head, an L0 penalty, then slicing of Q/K/V/O; and a retraining-free
method (``PruningType.FISHER``, Kwon et al. 2022) from the same factory.

The package is layered (``docs/architecture.md``): :mod:`lrp_prune.network` (BERT,
gates, slicing), :mod:`lrp_prune.io` (checkpoints, HF import, saved models, export,
assets), :mod:`lrp_prune.data`, :mod:`lrp_prune.pruning` (the methods and convert),
:mod:`lrp_prune.training` and :mod:`lrp_prune.app` (pipeline, reports, CLI). The names
below are the public API.

Example:
    >>> from lrp_prune import BertConfig, BertModel, HeadPruningFactory, PruningType, SupportedModels
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> pruner = HeadPruningFactory.get_pruner({"prune_type": PruningType.LRP,
    ...     "arch_type": SupportedModels.BERT, "config": {"l0_penalty": 0.0015}})
    >>> gated = pruner.apply(BertModel(cfg, is_training=True))
    >>> pruned = pruner.convert(gated)
    >>> pruned.config.heads_per_layer
    (4, 4)
"""

from lrp_prune import _moved
from lrp_prune.errors import LRPPruneError
from lrp_prune.io.checkpoint import LoadReport, load_checkpoint, save_checkpoint
from lrp_prune.io.export import export_mindir, load_mindir
from lrp_prune.io.onnx_export import check_onnx, export_onnx
from lrp_prune.io.saved import load_pruned, read_heads_to_prune, save_pruned
from lrp_prune.network.bert import (BertClassifier, BertClassifierWithLoss, BertModel, check_inputs, prune_ffn,
                                    prune_heads)
from lrp_prune.network.config import BertConfig
from lrp_prune.network.gates import ModelGates
from lrp_prune.network.hard_concrete import GateSettings, HardConcreteGate
from lrp_prune.network.mask_gate import MaskGate
from lrp_prune.pruning.fisher import FisherConfig, FisherHeadPruner
from lrp_prune.pruning.importance import HeadImportance, head_importance
from lrp_prune.pruning.lrp import (HeadPruningFactory, LRPHeadPruner, PrunerConfig, PruningType, SupportedModels,
                                   parameter_groups)
from lrp_prune.pruning.summary import PruningSummary
from lrp_prune.training.distill import DistillationLoss

_moved.install()

__version__ = "0.1.0"

__all__ = [
    "BertConfig",
    "BertModel",
    "BertClassifier",
    "BertClassifierWithLoss",
    "DistillationLoss",
    "FisherConfig",
    "FisherHeadPruner",
    "GateSettings",
    "HardConcreteGate",
    "HeadImportance",
    "HeadPruningFactory",
    "LRPHeadPruner",
    "LRPPruneError",
    "LoadReport",
    "MaskGate",
    "ModelGates",
    "PrunerConfig",
    "PruningSummary",
    "PruningType",
    "SupportedModels",
    "check_inputs",
    "check_onnx",
    "export_mindir",
    "export_onnx",
    "head_importance",
    "load_checkpoint",
    "load_mindir",
    "load_pruned",
    "parameter_groups",
    "prune_heads",
    "prune_ffn",
    "read_heads_to_prune",
    "save_checkpoint",
    "save_pruned",
]

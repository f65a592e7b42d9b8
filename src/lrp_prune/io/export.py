"""Export a (pruned) model to MindIR, and load it back as a runnable graph.

Example:
    >>> import os, tempfile
    >>> import numpy as np, mindspore as ms
    >>> from lrp_prune import BertConfig, BertModel
    >>> cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
    ...                  num_attention_heads=4, intermediate_size=37, seq_length=8)
    >>> path = export_mindir(BertModel(cfg, False), os.path.join(tempfile.mkdtemp(), "m"), batch_size=2)
    >>> path.name
    'm.mindir'
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from lrp_prune.errors import LRPPruneError, check_int, expect
from lrp_prune.io.checkpoint import atomic_path, check_writable_dir
from lrp_prune.network.bert import the_bert

__all__ = ["export_mindir", "load_mindir"]

logger = logging.getLogger(__name__)


def _dummy_inputs(batch_size: int, seq_length: int) -> tuple[Tensor, Tensor, Tensor]:
    ids = Tensor(np.ones((batch_size, seq_length), np.int32))
    return ids, Tensor(np.zeros((batch_size, seq_length), np.int32)), Tensor(np.ones((batch_size, seq_length), np.int32))


def export_mindir(model: nn.Cell, path: str | Path, batch_size: int = 1, seq_length: int | None = None) -> Path:
    """Export ``model`` (eval mode) to a MindIR file for inputs ``(batch_size, seq_length)``.

    The file is written under a temporary name and renamed; ``.mindir`` is appended
    to ``path`` if missing. Reload with :func:`load_mindir` (an ``nn.GraphCell``).
    """
    bert = the_bert(model, "export_mindir")
    seq_length = bert.config.seq_length if seq_length is None else seq_length
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seq_length = check_int(seq_length, "seq_length", minimum=1, maximum=bert.config.max_position_embeddings)
    path = Path(path)
    if path.suffix != ".mindir":
        path = path.with_name(path.name + ".mindir")
    check_writable_dir(path.parent, "export directory")
    model.set_train(False)
    with atomic_path(path) as tmp:
        base = str(tmp)[: -len(".tmp")] + ".export"
        try:
            try:
                ms.export(model, *_dummy_inputs(batch_size, seq_length), file_name=base, file_format="MINDIR")
            except (OSError, RuntimeError) as err:  # a full disk is a RuntimeError from MindSpore's writer
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise LRPPruneError(f"MindIR {str(path)!r}: expected to write the file, got {type(err).__name__}: "
                                    f"{first[:200]} (is the disk full?); the earlier file, if any, is unchanged") \
                    from None
            os.replace(base + ".mindir", tmp)
        finally:
            if os.path.exists(base + ".mindir"):
                os.unlink(base + ".mindir")
    logger.info("exported %s for inputs (%d, %d) to %s", type(model).__name__, batch_size, seq_length, path)
    return path


def load_mindir(path: str | Path) -> nn.GraphCell:
    """Load a MindIR file written by :func:`export_mindir` as a runnable ``nn.GraphCell``."""
    path = Path(path)
    expect(path.is_file(), "MindIR file", "an existing .mindir file", str(path))
    try:
        graph = ms.load(str(path))
    except Exception as err:
        raise LRPPruneError(f"MindIR {str(path)!r}: expected a readable MindIR file, got {type(err).__name__}") from None
    return nn.GraphCell(graph)



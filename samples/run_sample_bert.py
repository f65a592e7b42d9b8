#!/usr/bin/env python
"""Prune BERT attention heads on MNLI (or SNLI) with lrp_prune: Golden Stick's sample, working.

Every flag of the original sample is accepted with the same meaning (string
booleans "true"/"false"); the flow itself lives in ``lrp_prune.app.pipeline`` and is shared
with ``lrp-prune prune``.

Single process, ModelZoo checkpoint::

    python samples/run_sample_bert.py --task mnli --data_dir /data/MNLI \\
        --model bert_config.json --load_checkpoint_path bert_cls.ckpt --vocab_file vocab.txt \\
        --l0_penalty 0.0015 --train_steps 2000 --save_dir_path ./pruned

Two data-parallel workers on CPU::

    msrun --worker_num=2 --local_worker_num=2 --log_dir=msrun_log --join=True \\
        samples/run_sample_bert.py --distribute true ...
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("GLOG_v", "3")

from lrp_prune.app.cli import run_sample  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_sample(sys.argv[1:]))

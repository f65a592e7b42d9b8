"""Data: NLI examples, readers, tokenization and batching (plain numpy, no MindSpore).

- :mod:`~lrp_prune.data.examples`: ``NLIExamples``, labels, premise-grouped splits.
- :mod:`~lrp_prune.data.readers`: SNLI jsonl / GLUE MNLI tsv readers, ``load_task``.
- :mod:`~lrp_prune.data.tokenization`: WordPiece pairs to fixed-length arrays.
- :mod:`~lrp_prune.data.batching`: shards and length-bucketed batches.
"""

from lrp_prune.data.batching import SEQUENCE_KEYS, batches, num_batches, shard
from lrp_prune.data.examples import LABEL_TO_ID, NLI_LABELS, NLIExamples, grouped_split
from lrp_prune.data.readers import TASKS, load_task, read_glue_mnli_tsv, read_snli_jsonl

__all__ = ["NLI_LABELS", "LABEL_TO_ID", "SEQUENCE_KEYS", "TASKS", "NLIExamples", "batches", "grouped_split",
           "load_task", "num_batches", "read_glue_mnli_tsv", "read_snli_jsonl", "shard"]

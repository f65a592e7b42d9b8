"""The network: BERT in MindSpore (ModelZoo names), its gates, and the pure slicing functions.

Modules, bottom-up (each imports only those above it and :mod:`lrp_prune.errors`):

- :mod:`~lrp_prune.network.config`: ``BertConfig``, frozen and validated.
- :mod:`~lrp_prune.network.slicing`: which rows and columns survive, as pure numpy functions.
- :mod:`~lrp_prune.network.compat`: the one private MindSpore API this library uses.
- :mod:`~lrp_prune.network.hard_concrete`: the Hard Concrete gate (a gate *kind*).
- :mod:`~lrp_prune.network.bert`: ``BertModel``, classifiers, ``prune_heads``.
- :mod:`~lrp_prune.network.gates`: ``ModelGates``, the one API over every gate of a model.
"""

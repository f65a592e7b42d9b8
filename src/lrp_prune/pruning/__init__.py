"""Pruning methods and ``convert``: the Golden Stick API on top of the network's gates.

- :mod:`~lrp_prune.pruning.lrp`: ``HeadPruningFactory``, ``LRPHeadPruner`` (Hard Concrete
  gates + L0 penalty, Voita et al. 2019), ``PrunerConfig``, ``parameter_groups``.
- :mod:`~lrp_prune.pruning.budget`: the Lagrangian controller of ``target_heads``.
- :mod:`~lrp_prune.pruning.convert`: gates -> a physically smaller model (any gate kind).
- :mod:`~lrp_prune.pruning.summary`: what ``convert`` removed, as a JSON-able record.
"""

"""I/O: what goes to and comes from disk.

- :mod:`~lrp_prune.io.checkpoint`: strict checkpoint loading with reports; atomic writes.
- :mod:`~lrp_prune.io.hf`: HuggingFace ``config.json`` + ``model.safetensors`` import (no torch).
- :mod:`~lrp_prune.io.saved`: the pruned-model directory ``convert()`` writes, read back.
- :mod:`~lrp_prune.io.export`: MindIR export.
- :mod:`~lrp_prune.io.assets`: the pinned registry downloads (all-MiniLM-L6-v2, SNLI) in a verified cache.
"""

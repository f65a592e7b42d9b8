"""The application: options and recipes, the pipeline, reports, tools and the command line.

- :mod:`~lrp_prune.app.options`: ``PruneOptions``; each field carries its CLI flag.
- :mod:`~lrp_prune.app.recipes`: the named recipes (``sample``, ``demo``, ``demo-full``).
- :mod:`~lrp_prune.app.runtime`: the process-wide MindSpore setup, for entry points.
- :mod:`~lrp_prune.app.pipeline`: the phases of a run and its ``RunReport``.
- :mod:`~lrp_prune.app.report`: pictures, report.md/json and the printed summary.
- :mod:`~lrp_prune.app.tools`: ``inspect`` and ``bench`` over saved models.
- :mod:`~lrp_prune.app.cli`: ``lrp-prune`` and the sample's entry point.
"""

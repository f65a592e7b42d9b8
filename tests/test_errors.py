"""The library's one error type."""

from __future__ import annotations

import lrp_prune
import pytest
from lrp_prune import load_pruned


def test_one_error_type_exported_from_the_package():
    assert lrp_prune.LRPPruneError is lrp_prune.errors.LRPPruneError
    assert "LRPPruneError" in lrp_prune.__all__
    assert issubclass(lrp_prune.LRPPruneError, ValueError)
    # a caller who only knows ValueError still catches the library's errors
    with pytest.raises(ValueError, match="save_dir_path"):
        load_pruned("/nonexistent/lrp_prune/dir")

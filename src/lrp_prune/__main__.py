"""``python -m lrp_prune`` runs the ``lrp-prune`` command line."""
import sys

from lrp_prune.app.cli import main

if __name__ == "__main__":
    sys.exit(main())

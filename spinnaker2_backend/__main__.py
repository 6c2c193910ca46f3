"""``python -m spinnaker2_backend``: see :mod:`spinnaker2_backend.cli`."""

import sys

from spinnaker2_backend.cli import main

if __name__ == "__main__":
    sys.exit(main())

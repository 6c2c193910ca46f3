"""``python -m lava_procs``: see :mod:`lava_procs.cli`."""

import sys

from lava_procs.cli import main

if __name__ == "__main__":
    sys.exit(main())

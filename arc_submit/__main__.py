"""Entry point: `python -m arc_submit [COMMAND] ...` (see `--help`)."""

import sys

from arc_submit.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""Entry point: `python -m arc_submit [COMMAND] ...` (see `--help`)."""

import os
import sys

# torch's C++ warnings printed outside Python's warnings (vLLM's CPU build: "NUMA binding: Using MEMBIND
# policy ...") would land between the progress bars; set before torch is imported, overridable.
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")

from arc_submit.cli import main  # noqa: E402 - after the environment above

if __name__ == "__main__":
    sys.exit(main())

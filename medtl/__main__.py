"""``python -m medtl ...`` (and ``torchrun ... -m medtl ...``): the same as the ``medtl`` command."""

import logging
import os
import sys

from .cli import main

if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun rank whose work is done and written (the process group already left): skip the interpreter's
        # teardown, where a C++ thread of the process group can abort the process ("terminate called without an
        # active exception"); torchrun would take that for a failure and restart a finished run.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code or 0)
    sys.exit(code)

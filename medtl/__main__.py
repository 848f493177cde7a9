"""``python -m medtl ...`` (and ``torchrun ... -m medtl ...``): the same as the ``medtl`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

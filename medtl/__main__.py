"""``python -m medtl ...`` (and ``torchrun ... -m medtl ...``): the same as the ``medtl`` command."""

import sys

from .cli import main

sys.exit(main())

"""Every integration module runs a command (``medtl cv``, ``predict``, ``scan`` ...) on data: the ``slow`` tier.

``make test-fast`` leaves them out (``-m "not slow and not heavy"``); ``make test`` runs them in parallel, but for
the tests marked ``heavy`` (over ~10 s each), which ``make test-heavy`` runs.
"""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.slow)

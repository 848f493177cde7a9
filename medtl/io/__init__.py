"""Medical image input: files and export trees to ``Volume`` objects.

See ``medtl.io.volume`` for the orientation convention and ``medtl.io.reasons``
for the reason codes.
"""

from .load import load_volume, load_volumes
from .reasons import Finding, Reason
from .volume import Volume

__all__ = ["Finding", "Reason", "Volume", "load_volume", "load_volumes"]

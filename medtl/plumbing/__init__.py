"""Plumbing shared by every layer: atomic writes, file hashes, registries, progress bars.

Nothing here knows about images, models or experiments; every other package may
import it, and it imports nothing from medtl except ``errors``.
"""

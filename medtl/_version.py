"""The version of medtl (imported by everyone, imports nothing)."""

__version__ = "0.1.0"

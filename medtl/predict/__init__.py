"""Batch inference over manifests and export trees (``medtl predict``), shard merging,
and the writers for its outputs (CSV, NIfTI, DICOM-SEG)."""

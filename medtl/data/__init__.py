"""Datasets, manifests and synthetic data."""

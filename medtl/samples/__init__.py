"""Synthetic sample data (never real patients): the generators behind `medtl sample-data` and the tests.

Not part of loading: nothing in medtl's pipeline imports from here.
"""

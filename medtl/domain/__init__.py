"""Hospitals differ: domain-shift measures and adaptation methods (docs/sites.md).

``gradient_reversal`` and ``discriminator`` (DANN), ``importance`` (covariate-shift
re-weighting), ``shift`` (how well features tell sites apart), ``targets`` (unlabelled
target images, which carry no label by construction) and ``features`` (pooled
encoder features).
"""

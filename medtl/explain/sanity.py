"""Sanity checks of explanation maps, reported beside them.

* Model randomisation (Adebayo et al. 2018): the maps of a copy whose top layers (the
  head and the last encoder stage) are re-initialised must differ from the trained
  model's; reported as the Spearman rank correlation per case (near 1 = the map does not
  depend on what the model learned, a warning sign).
* Pointing game: where the finding's mask is known, the share of positive cases whose
  map maximum falls inside it (chance = the mask's share of the image).
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def randomised_top(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy with the head and the last encoder stage re-initialised (seeded)."""
    clone = copy.deepcopy(model)
    torch.manual_seed(seed)
    _, last = clone.stages()[-1]
    for module in [*last, clone.head]:
        for layer in module.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    return clone.eval()


def rank_correlations(maps: np.ndarray, other: np.ndarray) -> list[float]:
    """Spearman correlation of each pair of maps (NaN when a map is constant)."""
    from scipy.stats import spearmanr

    out = []
    for a, b in zip(maps, other):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            out.append(float("nan"))
        else:
            out.append(float(spearmanr(a.ravel(), b.ravel()).statistic))
    return out


def pointing_game(maps: np.ndarray, masks: list[np.ndarray]) -> dict:
    """``{n, hits, share, chance, n_flat_maps}`` over cases with a non-empty mask: a hit when the map's maximum
    lies inside the mask. A flat map (no evidence anywhere, e.g. Grad-CAM all zero) points nowhere: a miss."""
    hits, chance, n, flat = 0, [], 0, 0
    for heat, mask in zip(maps, masks):
        mask = np.asarray(mask).reshape(heat.shape) > 0
        if not mask.any():
            continue
        n += 1
        chance.append(float(mask.mean()))
        if np.ptp(heat) == 0:
            flat += 1
            continue
        hits += bool(mask.flat[int(np.argmax(heat))])
    return {"n": n, "hits": hits, "share": hits / n if n else float("nan"),
            "chance": float(np.mean(chance)) if chance else float("nan"), "n_flat_maps": flat}

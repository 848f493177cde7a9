"""The explanation checks of a large fold: a seeded sample plus every case the figure shows."""

from types import SimpleNamespace

import numpy as np

from medtl.workflows.cv_explain import SANITY_CASES, _groups, _sanity_sample


def rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = float(rng.random())
        out.append({"case_id": f"c{i:05d}", "label_index": int(rng.random() < 0.4), "prob_no": 1 - p, "prob_yes": p})
    return out


def config(seed: int = 0, per_group: int = 3):
    return SimpleNamespace(train=SimpleNamespace(seed=seed), explain=SimpleNamespace(cases_per_group=per_group))


def test_a_small_fold_is_explained_whole():
    fold = rows(SANITY_CASES)
    assert _sanity_sample(fold, 1, config()) == fold


def test_a_large_fold_keeps_a_seeded_sample_and_every_shown_case_in_fold_order():
    fold = rows(1700)
    sample = _sanity_sample(fold, 1, config())
    shown = {r["case_id"] for chosen in _groups(fold, 1, 3).values() for r in chosen}
    ids = [r["case_id"] for r in sample]
    assert SANITY_CASES <= len(sample) <= SANITY_CASES + len(shown)
    assert shown <= set(ids) and ids == sorted(ids)  # the figure's cases, in the fold's order
    assert _sanity_sample(fold, 1, config()) == sample  # reproducible
    assert _sanity_sample(fold, 1, config(seed=1)) != sample  # drawn from the run's seed
    assert _groups(sample, 1, 3) == _groups(fold, 1, 3)  # the figure is the one the whole fold gives

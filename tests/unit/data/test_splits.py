"""Patient-grouped folds: disjoint, complete, refused when impossible; inner splits stay inside training."""

import numpy as np
import pytest

from medtl.data.splits import inner_split, make_folds
from medtl.errors import InputError


def test_folds_are_patient_disjoint_and_cover_everything():
    rng = np.random.default_rng(0)
    groups = [f"p{i // 3}" for i in range(60)]
    strata = list(rng.integers(0, 2, 60))
    folds = make_folds(groups, strata, folds=5, seed=1, repeats=2, need_all_classes=True)
    assert len(folds) == 10
    for fold in folds:
        assert not {groups[i] for i in fold.train} & {groups[i] for i in fold.val}
        assert sorted(fold.train + fold.val) == list(range(60))
    for repeat in (0, 1):
        val = sorted(i for f in folds if f.repeat == repeat for i in f.val)
        assert val == list(range(60))
    assert make_folds(groups, strata, 5, 1) == make_folds(groups, strata, 5, 1)


def test_impossible_folds_are_refused():
    with pytest.raises(InputError, match="cannot fill 5 folds"):
        make_folds(["a", "a", "b", "c"], [0, 1, 0, 1], folds=5, seed=0)
    groups = [f"p{i}" for i in range(10)]
    with pytest.raises(InputError, match="AUC is undefined"):
        make_folds(groups, [1] + [0] * 9, folds=3, seed=0, need_all_classes=True)


def test_inner_split_stays_inside_training_patients():
    groups = [f"p{i // 2}" for i in range(40)]
    strata = [i % 2 for i in range(40)]
    fold = make_folds(groups, strata, 4, 0)[0]
    fit, inner = inner_split(groups, strata, fold.train, 0.25, 0)
    assert set(fit) | set(inner) == set(fold.train)
    assert not {groups[i] for i in fit} & {groups[i] for i in inner}

"""Patient-grouped folds: disjoint, complete, refused when impossible; inner splits stay inside training."""

import numpy as np
import pytest

from medtl.data.splits import inner_split, leave_site_out_folds, make_folds
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


def _site_data(seed: int, n_sites: int = 3):
    """Cases at random sites; some patients also at a second site, some images copied to another site."""
    rng = np.random.default_rng(seed)
    sites, groups, hashes, strata = [], [], [], []
    for patient in range(40):
        home = f"site{rng.integers(n_sites)}"
        for image in range(int(rng.integers(1, 4))):
            travels = rng.random() < 0.1
            sites.append(f"site{rng.integers(n_sites)}" if travels else home)
            groups.append(f"g{patient}")
            hashes.append(f"h{patient}-{image}")
            strata.append(int(rng.integers(2)))
    for _ in range(5):  # the same pixels filed under another patient at another site
        i, j = rng.integers(len(hashes), size=2)
        hashes[j] = hashes[i]
    return sites, groups, hashes, strata


@pytest.mark.parametrize("seed", range(6))
def test_leave_site_out_keeps_every_test_site_patient_and_image_out_of_training_and_selection(seed):
    sites, groups, hashes, strata = _site_data(seed)
    folds, notes = leave_site_out_folds(sites, groups, hashes, strata, 0.2, seed)
    assert [sorted({sites[i] for i in f.val}) for f in folds] == [[s] for s in sorted(set(sites))]
    assert sorted(i for f in folds for i in f.val) == list(range(len(sites)))  # every case scored exactly once
    for fold in folds:
        used = set(fold.train) | set(fold.inner)
        assert not set(fold.train) & set(fold.inner)
        assert not {groups[i] for i in used} & {groups[i] for i in fold.val}
        assert not {hashes[i] for i in used} & {hashes[i] for i in fold.val}
        assert not {sites[i] for i in used} & {sites[i] for i in fold.val}
        assert {groups[i] for i in fold.train}.isdisjoint({groups[i] for i in fold.inner})
    left_out = [len(set(range(len(sites))) - set(f.val) - set(f.train) - set(f.inner)) for f in folds]
    assert len(notes) == sum(n > 0 for n in left_out)


def test_leave_site_out_is_deterministic_and_independent_of_case_order():
    sites, groups, hashes, strata = _site_data(3)
    first, _ = leave_site_out_folds(sites, groups, hashes, strata, 0.2, 0)
    again, _ = leave_site_out_folds(sites, groups, hashes, strata, 0.2, 0)
    assert first == again
    order = np.random.default_rng(0).permutation(len(sites))
    shuffled, _ = leave_site_out_folds([sites[i] for i in order], [groups[i] for i in order],
                                       [hashes[i] for i in order], [strata[i] for i in order], 0.2, 0)
    for a, b in zip(first, shuffled):  # the same cases are scored and left out in each fold, whatever the row order
        assert sorted(a.val) == sorted(int(order[i]) for i in b.val)
        assert sorted(a.train + a.inner) == sorted(int(order[i]) for i in b.train + b.inner)


def test_leave_site_out_refuses_one_site_and_a_site_without_a_class():
    with pytest.raises(InputError, match="at least 2 sites"):
        leave_site_out_folds(["a"] * 6, [str(i) for i in range(6)], [""] * 6, [0, 1] * 3, 0.2, 0)
    sites = ["a"] * 10 + ["b"] * 4
    strata = [0, 1] * 5 + [0] * 4
    with pytest.raises(InputError, match="site 'b' lacks a class"):
        leave_site_out_folds(sites, [str(i) for i in range(14)], [str(i) for i in range(14)], strata, 0.2, 0,
                             need_all_classes=True)


def _fold_data(seed: int):
    rng = np.random.default_rng(seed)
    groups, strata = [], []
    for patient in range(60):
        label = int(rng.random() < 0.3)
        for _ in range(int(rng.integers(1, 4))):
            groups.append(f"p{patient}")
            strata.append(label)
    return groups, strata


@pytest.mark.parametrize("seed", range(5))
def test_labelled_subsets_are_nested_stratified_whole_patients(seed):
    from medtl.data.splits import labelled_subset

    groups, strata = _fold_data(seed)
    train = tuple(i for i in range(len(groups)) if groups[i] not in {"p0", "p1", "p2"})
    patients = {groups[i] for i in train}
    previous: set[int] = set()
    for fraction in (0.1, 0.25, 0.5, 1.0):
        subset = labelled_subset(groups, strata, train, fraction, seed)
        assert set(subset) <= set(train) and previous <= set(subset)  # nested
        kept = {groups[i] for i in subset}
        assert {i for i in train if groups[i] in kept} == set(subset)  # whole patients
        assert len(kept) == max(2, round(fraction * len(patients)))  # the share, not a per-stratum ceiling
        for label in (0, 1):
            of_label = {groups[i] for i in train if groups[i] not in {"p0", "p1", "p2"} and strata[i] == label}
            chosen = of_label & kept
            assert chosen and abs(len(chosen) - fraction * len(of_label)) < 1 + 1e-9  # stratified within one
        previous = set(subset)
    assert previous == set(train) and len(patients) > 50


def test_labelled_subsets_are_deterministic_and_ignore_row_order():
    from medtl.data.splits import labelled_subset

    groups, strata = _fold_data(9)
    train = tuple(range(len(groups)))
    first = labelled_subset(groups, strata, train, 0.25, 3)
    assert first == labelled_subset(groups, strata, train, 0.25, 3)
    assert first != labelled_subset(groups, strata, train, 0.25, 4)
    order = np.random.default_rng(0).permutation(len(groups))
    shuffled = labelled_subset([groups[i] for i in order], [strata[i] for i in order], train, 0.25, 3)
    assert {groups[order[i]] for i in shuffled} == {groups[i] for i in first}


@pytest.mark.parametrize("sizes", [(20, 4), (13, 11), (7, 3, 2), (50, 1), (3, 3)])
def test_the_labelled_share_is_kept_within_one_patient_for_every_share(sizes):
    """Issue 27.9: rounding per stratum (a ceiling each) gave 4 of 24 patients for a share of 0.1."""
    from medtl.data.splits import labelled_subset

    groups = [f"p{s}-{i}" for s, n in enumerate(sizes) for i in range(n)]
    strata = [s for s, n in enumerate(sizes) for _ in range(n)]
    train = tuple(range(len(groups)))
    for step in range(1, 20):
        fraction = step / 20
        kept = labelled_subset(groups, strata, train, fraction, seed=step)
        assert set(strata[i] for i in kept) == set(strata)  # every class keeps a patient
        if fraction * len(groups) >= len(sizes):
            assert abs(len(kept) - fraction * len(groups)) <= 1, (fraction, len(kept))
        else:
            assert len(kept) == len(sizes)

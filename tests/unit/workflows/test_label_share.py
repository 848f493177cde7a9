"""Issue 27.9: a label-efficiency arm's model depends on the labels of its share of patients, and no more, in every
scheme: the share covers the selection set whose labels choose the epoch, and rounding keeps the share."""

from types import SimpleNamespace

import numpy as np
import pytest

from medtl.data.splits import fixed_split, leave_site_out_folds, make_folds
from medtl.workflows.fold_roles import fold_roles

NO_CALIBRATION = {"calibrate": SimpleNamespace(method="none"), "conformal": SimpleNamespace(alpha=None)}


def _data(seed=0, patients=120):
    rng = np.random.default_rng(seed)
    groups, strata, sites, roles = [], [], [], []
    for p in range(patients):
        label, site = int(rng.random() < 0.4), "abc"[p % 3]
        role = ("train", "train", "train", "val", "test")[p % 5]
        for _ in range(int(rng.integers(1, 3))):
            groups.append(f"p{p}")
            strata.append(label)
            sites.append(site)
            roles.append(role)
    return groups, strata, sites, roles


def _folds(scheme, groups, strata, sites, roles):
    if scheme == "kfold":
        return make_folds(groups, strata, 5, seed=0)
    if scheme == "fixed":
        return [fixed_split(groups, roles, strata)]
    return leave_site_out_folds(sites, groups, [""] * len(groups), strata, 0.3, 0)[0]


@pytest.mark.parametrize("selection", ["best_inner", "last"])
@pytest.mark.parametrize("scheme", ["kfold", "fixed", "leave_site_out"])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_the_achieved_share_is_within_one_patient_of_the_requested_share(scheme, selection, fraction):
    groups, strata, sites, roles = _data()
    config = SimpleNamespace(train=SimpleNamespace(label_fraction=fraction, selection=selection, inner_fraction=0.2),
                             **NO_CALIBRATION)
    full = SimpleNamespace(train=SimpleNamespace(label_fraction=1.0, selection=selection, inner_fraction=0.2),
                           **NO_CALIBRATION)
    for fold in _folds(scheme, groups, strata, sites, roles):
        held_out = scheme == "leave_site_out"
        share, whole = fold_roles(fold, groups, strata, config, 0, held_out), fold_roles(fold, groups, strata, full,
                                                                                         0, held_out)
        # the patients whose labels the fitted model depends on, counted independently of FoldRoles' own count
        depends = {groups[i] for i in share.train} | ({groups[i] for i in share.selection} if selection == "best_inner"
                                                      else set())
        available = {groups[i] for i in whole.train} | ({groups[i] for i in whole.selection}
                                                        if selection == "best_inner" else set())
        assert depends <= available
        selection_at_minimum = selection == "best_inner" and len({groups[i] for i in share.selection}) == 2
        if abs(len(depends) - fraction * len(available)) > 1:  # only where the selection set needs both classes
            assert selection_at_minimum and fraction * len({groups[i] for i in whole.selection}) < 1.5
            assert share.share_note(groups, fraction)
        else:
            assert share.share_note(groups, fraction) is None
        assert share.labelled_patients(groups) == len(depends)
        assert share.labelled_share(groups) == pytest.approx(len(depends) / len(available))
        scored = {groups[i] for i in fold.val}
        assert not scored & (depends | {groups[i] for i in share.reference})
        if held_out and selection == "best_inner":
            assert share.reference == whole.reference and not {groups[i] for i in share.reference} & depends


def test_a_share_too_small_for_an_inner_split_is_refused_with_the_fix():
    from medtl.errors import InputError

    groups, strata, sites, roles = _data(patients=30)
    config = SimpleNamespace(train=SimpleNamespace(label_fraction=0.1, selection="best_inner", inner_fraction=0.2), **NO_CALIBRATION)
    with pytest.raises(InputError, match="inner split.*label_fractions"):
        fold_roles(make_folds(groups, strata, 5, seed=0)[0], groups, strata, config, 0, False)


def test_calibration_draws_a_selection_split_of_training_patients_and_counts_its_labels():
    """Issue 29: calibration is fitted on the inner selection split, also under train.selection: last."""
    groups, strata, sites, roles = _data()
    config = SimpleNamespace(train=SimpleNamespace(label_fraction=1.0, selection="last", inner_fraction=0.2),
                             calibrate=SimpleNamespace(method="temperature"), conformal=SimpleNamespace(alpha=None),
                             task="classification")
    for fold in _folds("kfold", groups, strata, sites, roles):
        share = fold_roles(fold, groups, strata, config, 0, False)
        chosen = {groups[i] for i in share.selection}
        assert chosen and not chosen & {groups[i] for i in share.train} and not chosen & {groups[i] for i in fold.val}
        assert share.labelled_patients(groups) == len({groups[i] for i in share.train} | chosen)


def test_too_few_patients_for_the_calibration_split_say_how_to_fix_it():
    """The old hint (train.selection=last) does not help a run whose calibration needs the split."""
    from medtl.data.splits import Fold
    from medtl.errors import InputError

    groups, strata = ["a", "a", "b", "b", "c", "c"], [0, 1, 0, 1, 0, 1]
    config = SimpleNamespace(train=SimpleNamespace(label_fraction=1.0, selection="last", inner_fraction=0.2),
                             calibrate=SimpleNamespace(method="temperature"), conformal=SimpleNamespace(alpha=None),
                             task="classification")
    with pytest.raises(InputError, match="calibrate / conformal are fitted on that split"):
        fold_roles(Fold(0, 0, (0, 1, 2, 3), (4, 5)), groups, strata, config, 0, False)

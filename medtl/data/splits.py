"""Patient-grouped, stratified, seeded folds, with the guards that keep CV honest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Fold:
    """Indices of one fold's training and validation cases (into the run's case list)."""

    repeat: int
    fold: int
    train: tuple[int, ...]
    val: tuple[int, ...]  # the cases scored (k-fold: the validation fold; fixed splits: the test set)
    inner: tuple[int, ...] = ()  # fixed splits: the given validation set, used for model selection


def make_folds(groups: list[str], strata: list[int], folds: int, seed: int, repeats: int = 1,
               need_all_classes: bool = False) -> list[Fold]:
    """Stratified group K-fold (scikit-learn) on ``groups``; refuses impossible or leaky splits."""
    from sklearn.model_selection import StratifiedGroupKFold

    unique_groups = sorted(set(groups))
    if len(unique_groups) < folds:
        raise InputError(f"{len(unique_groups)} patients/groups cannot fill {folds} folds; lower cv.folds "
                         f"(at most {len(unique_groups)}) or add data")
    group_array, strata_array = np.asarray(groups), np.asarray(strata)
    result = []
    for repeat in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        for index, (train, val) in enumerate(splitter.split(np.zeros(len(groups)), strata_array, group_array)):
            leaked = set(group_array[train]) & set(group_array[val])
            if leaked:
                raise RuntimeError(f"fold {index} would put {len(leaked)} patients on both sides; refusing to run")
            if need_all_classes and len(set(strata_array[val])) < len(set(strata_array)):
                missing = sorted(set(strata_array) - set(strata_array[val]))
                raise InputError(f"fold {index} (repeat {repeat}) has no validation case of class index {missing}, "
                                 "so AUC is undefined there; lower cv.folds or add cases of that class")
            result.append(Fold(repeat, index, tuple(int(i) for i in train), tuple(int(i) for i in val)))
    return result


INNER_SPLIT_HINT = "use train.selection=last (or, for label-efficiency arms, larger cv.label_fractions)"


def inner_split(groups: list[str], strata: list[int], train: tuple[int, ...], fraction: float,
                seed: int, hint: str = INNER_SPLIT_HINT) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split a fold's training cases by patient into (fit, inner validation) for model selection; ``hint`` says
    how to do without one when there are too few patients."""
    from sklearn.model_selection import StratifiedGroupKFold

    train_array = np.asarray(train)
    n_splits = max(2, round(1 / fraction))
    sub_groups = np.asarray(groups)[train_array]
    if len(set(sub_groups)) < n_splits:
        raise InputError(f"only {len(set(sub_groups))} training patients: too few for an inner split; {hint}")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    try:
        fit, inner = next(splitter.split(np.zeros(len(train_array)), np.asarray(strata)[train_array], sub_groups))
    except ValueError as error:  # scikit-learn: a class with fewer patients than splits
        raise InputError(f"{len(set(sub_groups))} training patients cannot be split by patient and class for model "
                         f"selection ({error}); use train.selection=last, a smaller train.inner_fraction or, for "
                         "label-efficiency arms, larger cv.label_fractions") from None
    return tuple(int(i) for i in train_array[fit]), tuple(int(i) for i in train_array[inner])


def selection_and_reference(groups: list[str], strata: list[int], held_out: tuple[int, ...], selection: str,
                            seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split the training sites' held-out patients of a leave-one-site-out fold into (model selection, drop reference).

    Under ``best_inner`` the epoch is chosen as the best on the selection cases, so their
    score is the maximum over epochs: a reference measured on them makes every unseen site
    look worse than it is. Half of those patients (stratified, by patient) are kept apart as
    the reference instead; with fewer than two patients there is no reference (``()``) and the
    drop is not computed. Under ``last`` nothing is selected and both are the same cases.
    """
    if selection != "best_inner":
        return held_out, held_out
    try:
        return inner_split(groups, strata, held_out, 0.5, seed)
    except InputError:
        return held_out, ()


def fixed_split(groups: list[str], roles: list[str], strata: list[int], need_all_classes: bool = False) -> Fold:
    """The official split: train on ``train``, select on ``val``, score on ``test``; refuses a leaky split.

    A patient (group) in more than one of the three sets would let the test score see
    that patient in training, so that is an error naming how many patients are affected.
    """
    sets = {role: [i for i, r in enumerate(roles) if r == role] for role in ("train", "val", "test")}
    if not sets["train"] or not sets["test"]:
        raise InputError(f"the fixed split needs train and test cases (it has {len(sets['train'])} train, "
                         f"{len(sets['val'])} val, {len(sets['test'])} test); set split to train/val/test per row")
    owners: dict[str, set[str]] = {}
    for group, role in zip(groups, roles):
        owners.setdefault(group, set()).add(role)
    shared = [g for g, r in owners.items() if len(r) > 1]
    if shared:
        raise InputError(f"{len(shared)} patient(s) appear in more than one of train/val/test; a patient's cases "
                         "must all be in one set (fix the split column or the splits file)")
    if need_all_classes and len({strata[i] for i in sets["test"]}) < len(set(strata)):
        raise InputError("the test set lacks a class, so AUC is undefined there; every class needs test cases")
    return Fold(0, 0, tuple(sets["train"]), tuple(sets["test"]), tuple(sets["val"]))


def leave_site_out_folds(sites: list[str], groups: list[str], copy_keys: list[str], strata: list[int],
                         inner_fraction: float, seed: int, need_all_classes: bool = False
                         ) -> tuple[list[Fold], list[str]]:
    """One fold per site: that site's cases are scored, the other sites' patients train and select the model.

    A training-site case is left out of the fold when its patient (group) also has cases
    at the test site, or when it is a copy of a test-site image (the same ``copy_keys`` entry:
    identical pixels or an identical network input, ``medtl.data.overlap.copy_keys``; a list of
    pixel hashes finds identical pixels only): no test-site
    patient or image is ever trained on or used for model selection. Returns the folds
    (fold ``k`` holds out the ``k``-th site in sorted order) and a note per fold that
    left cases out.
    """
    names = sorted(set(sites))
    if len(names) < 2:
        raise InputError(f"cv.scheme: leave_site_out needs at least 2 sites in the manifest's site column; it has "
                         f"{names or 'none (add a site column)'}")
    for site in names:
        present = {strata[i] for i, s in enumerate(sites) if s == site}
        if need_all_classes and len(present) < len(set(strata)):
            raise InputError(f"site '{site}' lacks a class (class indices {sorted(present)} of {sorted(set(strata))}), "
                             "so its AUC as a test site is undefined; add cases of every class or merge it with "
                             "another site")
    folds, notes = [], []
    for k, site in enumerate(names):
        val = [i for i, s in enumerate(sites) if s == site]
        held_groups, held_images = {groups[i] for i in val}, {copy_keys[i] for i in val if copy_keys[i]}
        others = [i for i, s in enumerate(sites) if s != site]
        excluded = {i for i in others if groups[i] in held_groups or copy_keys[i] in held_images}
        train = tuple(i for i in others if i not in excluded)
        try:
            fit, inner = inner_split(groups, strata, train, inner_fraction, seed)
        except InputError:
            raise InputError(f"test site '{site}': the other sites have {len({groups[i] for i in train})} patient(s), "
                             "too few to hold some out for model selection; add data or merge sites") from None
        folds.append(Fold(0, k, fit, tuple(val), inner))
        if excluded:
            notes.append(f"test site '{site}': {len(excluded)} case(s) of other sites left out of its training and "
                         "model selection (same patient as a test-site case, or a copy of a test-site image: "
                         "identical pixels or identical network input)")
    return folds, notes


def labelled_subset(groups: list[str], strata: list[int], train: tuple[int, ...], fraction: float,
                    seed: int) -> tuple[int, ...]:
    """The training cases whose labels are kept at ``fraction``: whole patients, stratified, nested.

    ``round(fraction * patients)`` patients are kept (the share itself, within half a patient;
    at least one per stratum, so every class can be learned). Patients are ranked within their
    stratum (a patient's stratum is that of its first case) by a permutation seeded by ``seed``
    over the sorted patient keys, and the strata are interleaved in proportion: the patient of
    rank ``r`` in a stratum of ``n`` sorts at ``(r + 0.5) / n``. Every prefix of that order is
    stratified to within about one patient per stratum (each stratum's first patient leads), and the
    kept set is a prefix, so the 10% subset
    lies inside the 25% subset; nothing depends on the row order of the manifest.
    """
    if fraction >= 1:
        return tuple(train)
    stratum_of: dict[str, int] = {}
    for i in train:
        stratum_of.setdefault(groups[i], strata[i])
    ranked: list[tuple[float, int, str]] = []
    firsts = set()
    for stratum in sorted(set(stratum_of.values())):
        patients = sorted(g for g, s in stratum_of.items() if s == stratum)
        order = np.random.default_rng([seed, stratum]).permutation(len(patients))
        ranked += [((rank + 0.5) / len(patients), stratum, patients[j]) for rank, j in enumerate(order)]
        firsts.add(patients[order[0]])
    ranked.sort(key=lambda entry: (entry[2] not in firsts, entry))  # one of each stratum before the rest
    count = max(len(firsts), round(fraction * len(ranked)))
    kept = {patient for _, _, patient in ranked[:count]}
    return tuple(i for i in train if groups[i] in kept)


def read_splits_file(path, cases) -> tuple[list[str] | None, list[dict] | None]:
    """``cv.splits_file``: per-case roles (a ``split`` column) or fold rows (``fold``, optional ``repeat``).

    Returns ``(roles, None)`` or ``(None, rows)``; every case of ``cases`` must be listed by its ``case_id``.
    """
    from ..plumbing.atomic import read_csv

    columns, rows = read_csv(path, "cv.splits_file")
    if "case_id" not in columns or not ({"split", "fold"} & set(columns)):
        raise InputError(f"cv.splits_file {path} needs a case_id column and a split (train/val/test) or fold column; "
                         f"it has {columns}")
    by_id = {r["case_id"]: r for r in rows}
    missing = [c.case_id for c in cases if c.case_id not in by_id]
    if missing:
        raise InputError(f"cv.splits_file {path} does not list {len(missing)} case(s) of the manifest (e.g. "
                         f"{missing[0]}); case ids must match (give the manifest a case_id column, or keep the salt)")
    if "split" in columns:
        return [by_id[c.case_id]["split"].strip().lower() for c in cases], None
    return None, [{"case_id": c.case_id, "patient_key": c.patient_key, "repeat": int(by_id[c.case_id].get("repeat") or 0),
                   "fold": int(by_id[c.case_id]["fold"])} for c in cases]


def folds_from_rows(rows: list[dict], groups: list[str]) -> list[Fold]:
    """K-fold folds from per-case ``{repeat, fold}`` rows (``read_splits_file``); a patient on both sides of a
    fold is refused."""
    folds = []
    for repeat, fold in sorted({(r["repeat"], r["fold"]) for r in rows}):
        val = [i for i, r in enumerate(rows) if (r["repeat"], r["fold"]) == (repeat, fold)]
        held_out = set(val)
        train = [i for i, r in enumerate(rows) if r["repeat"] == repeat and i not in held_out]
        if set(groups[i] for i in val) & set(groups[i] for i in train):
            raise InputError(f"cv.splits_file puts a patient on both sides of fold {fold} (repeat {repeat}); "
                             "refusing to run a leaky split")
        folds.append(Fold(repeat, fold, tuple(train), tuple(val)))
    return folds

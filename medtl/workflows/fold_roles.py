"""Which of a fold's cases train, choose the epoch, are the leave-site-out drop's reference, and carry labels
(label-efficiency arms): one decision per (arm, fold), the same in every process that trains it."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.splits import INNER_SPLIT_HINT, Fold, inner_split, labelled_subset, selection_and_reference


@dataclass(frozen=True)
class FoldRoles:
    """Which of a fold's cases train, choose the epoch, and serve as the site-drop reference; and the labelled pool.

    ``selects``: the selection cases' labels choose the epoch (``best_inner``), so they count as
    labelled; ``pool``: the cases a label share is taken of (training, and a given selection set).
    """

    train: tuple[int, ...]
    selection: tuple[int, ...]
    reference: tuple[int, ...]
    pool: tuple[int, ...]
    selects: bool

    def labelled_patients(self, groups: list[str]) -> int:
        """Patients whose labels the fitted model depends on (training, and selection under ``best_inner``)."""
        return len({groups[i] for i in self.train + (self.selection if self.selects else ())})

    def labelled_share(self, groups: list[str]) -> float:
        """The achieved share: labelled patients / patients of the pool."""
        return self.labelled_patients(groups) / max(1, len({groups[i] for i in self.pool}))

    def share_note(self, groups: list[str], fraction: float) -> str | None:
        """A note when the labelled patients exceed the requested share by more than one patient (a selection set
        needs a patient of every class to choose an epoch on), else ``None``."""
        pool = len({groups[i] for i in self.pool})
        labelled = self.labelled_patients(groups)
        if labelled - fraction * pool <= 1:
            return None
        return (f"label share {fraction:g}: {labelled} of {pool} patients labelled (share {labelled / pool:.3f}) "
                f"where {fraction * pool:.1f} were requested: the model-selection set keeps a patient of every class "
                "so that train.selection: best_inner can choose an epoch; use train.selection: last for an exact share")


def fold_roles(fold: Fold, groups: list[str], strata: list[int], config, seed: int, held_out_site: bool) -> FoldRoles:
    """The roles of ``fold``'s cases for one arm.

    A label-efficiency arm (``train.label_fraction`` < 1) keeps the labels of a nested, stratified
    share of the patients whose labels the model depends on: of the training patients before
    an inner split is drawn (which then comes from labelled patients only), and of a selection
    set given by the fold (fixed split's ``val``, a leave-one-site-out fold's held-out patients)
    when ``best_inner`` chooses the epoch on it. Leave-one-site-out folds also keep the drop's
    reference apart from the selection cases (``selection_and_reference``). Calibration
    (``calibrate`` / ``conformal``) is fitted on the selection set, so it draws the inner split
    too and its labels count as used.
    """
    from .cv_calibration import calibration_enabled

    fraction = config.train.label_fraction
    calibrates = calibration_enabled(config)
    selects = config.train.selection == "best_inner" or calibrates
    train = labelled_subset(groups, strata, fold.train, fraction, seed)
    selection, reference = tuple(fold.inner), ()  # fixed splits: the given val set scores every epoch
    if selects and not fold.inner:
        hint = ("calibrate / conformal are fitted on that split: add patients, lower cv.folds, or remove the "
                "calibrate / conformal sections" if calibrates else INNER_SPLIT_HINT)
        train, selection = inner_split(groups, strata, train, config.train.inner_fraction, seed, hint)
    if held_out_site and selection:  # the drop's reference: never the cases the epoch was chosen on
        selection, reference = selection_and_reference(groups, strata, selection, config.train.selection, seed)
    pool = tuple(fold.train)
    if selects and fold.inner:
        pool += selection
        selection = labelled_subset(groups, strata, selection, fraction, seed)
    return FoldRoles(train, selection, reference, pool, selects)

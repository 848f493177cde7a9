"""``medtl cv`` on a cluster engine: each unfinished (arm, fold) is a unit that a worker trains from the run
folder alone.

The main process prepares the run (config, cases in the cache, splits, source models)
exactly as for a sequential run, then sends the units out; a worker rebuilds the arm,
its cases (from the prepared-case cache) and the fold from ``splits.csv`` and calls the
same ``run_fold``. Its ``done.json`` (and epoch checkpoints) land in the run folder, so a
lost worker costs only its unit, a re-run trains only the missing units, and the
results are summarised by the same code as a sequential run. Workers need the run
folder and the input files at the same paths (a shared file system).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

log = logging.getLogger("medtl")


@dataclass(frozen=True)
class Unit:
    """One (arm, repeat, fold) and the checkpoint its model starts from (a source model resolved beforehand)."""

    arm: str
    repeat: int
    fold: int
    pretrained: str

    @property
    def label(self) -> str:
        return f"{self.arm} repeat{self.repeat}_fold{self.fold}"


def train_unit(out: str, unit: Unit, threads: int | None, distributed: bool = False) -> dict:
    """Train (or resume) one unit in this process from the run folder; returns its fold record.

    ``distributed``: this process is a follower rank of a ``torchrun`` group training the unit with rank 0."""
    from ..arms import resolve_arms
    from ..data.case_cache import CaseCache
    from ..data.dataset import prepare_cases
    from ..data.manifest import read_config_manifest
    from ..rundir import RunDir
    from . import run_state
    from .cv_cases import own_cases
    from .cv_fold import arm_num_classes, run_fold

    rundir = RunDir(out)
    config = rundir.read_config()
    arm = next(a for a in resolve_arms(config, check_paths=False) if a.name == unit.arm)
    if threads and arm.config.train.threads is None:  # a local cluster shares the cores between its workers
        arm = replace(arm, config=arm.config.derive({"train.threads": threads}, check_paths=False))
    manifest = read_config_manifest(config)
    cases, _ = prepare_cases(manifest, config, CaseCache(), progress=False)  # from the cache the run filled
    fold = next(f for f in run_state.folds_from_splits(rundir, cases) if (f.repeat, f.fold) == (unit.repeat,
                                                                                                   unit.fold))
    num_classes = arm_num_classes(arm, manifest.class_names, cases)
    arm_cases = own_cases(arm, manifest, config, rundir, cases) or cases
    done = run_fold(arm, fold, rundir.fold(arm.name, fold.repeat, fold.fold), arm_cases, manifest.class_names,
                    num_classes, unit.pretrained, on_epoch=lambda record: None,
                    held_out_site=config.cv.scheme == "leave_site_out", distributed=distributed)
    return done.record


def follow(out: str) -> None:
    """A follower rank of ``torchrun ... medtl cv``: train each unit rank 0 announces, with it, until it says stop."""
    from ..train import distributed as ddp

    while True:
        unit = ddp.broadcast(None)
        if unit is None:
            return
        train_unit(out, unit, None, distributed=True)


def dispatch_units(store, arms, folds, pretrained: dict[str, str], executor) -> int:
    """Send every unfinished (arm, fold) of the arms in ``pretrained`` to ``executor`` and wait; returns how many
    were sent. ``store`` is the run's ``RunDir``."""
    units = [Unit(arm.name, fold.repeat, fold.fold, pretrained[arm.name]) for arm in arms for fold in folds
             if arm.name in pretrained and not store.fold(arm.name, fold.repeat, fold.fold).done.exists()]
    if not units:
        return 0
    line = f"sending {len(units)} unit(s) to the {executor.name} executor"
    store.log(line)
    log.info(line)
    executor.map(train_unit, [(str(store.root), unit, executor.threads_per_unit) for unit in units],
                 [unit.label for unit in units])
    return len(units)

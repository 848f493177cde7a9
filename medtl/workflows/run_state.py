"""Run state of ``medtl cv``: is this folder's run the one asked for, and which splits does it use?

Three checks before any training, each refusing with a message that names what differs:

1. the resolved config (every key; the user picks another ``--out`` to change settings);
2. the data: each case's id and the hash of its files and preprocessing (``run.json``);
3. the splits: ``splits.csv`` is the source of truth on resume. It is read back, never
   recomputed, and must list exactly the current cases with the same patient keys
   (a changed salt or manifest changes those).
"""

from __future__ import annotations

from ..config import Config, config_differences
from ..data.splits import Fold
from ..errors import RunMismatchError
from ..plumbing.hashing import sha256_file, sha256_text
from ..rundir import RunDir

_HOW_TO = "use a new --out folder (or delete this one) so that results of different runs are never mixed"


def check_config(rundir: RunDir, config: Config) -> None:
    """Refuse a run folder whose stored config differs from ``config``.

    A folder whose run never got as far as its splits (it failed on its inputs, say)
    holds no results yet: its config may be replaced.
    """
    if not rundir.exists() or not (rundir.splits.exists() or rundir.run_json.exists()):
        return
    if not rundir.run_json.exists() and any((rundir.root / "arms").glob("*/*/done.json")):
        raise RunMismatchError(f"{rundir.root} holds a run made by an older medtl (no run.json), which cannot be "
                               f"checked or resumed safely; {_HOW_TO} (its models still work with medtl predict)")
    stored = rundir.read_config()
    # the model card's text, the experiment trackers and where units run do not change any result: they may
    # change on resume
    differs = [k for k in config_differences(stored, config)
               if not k.startswith(("card.", "track", "tracking.", "run."))]
    if differs:
        shown = ", ".join(differs[:8]) + (f" and {len(differs) - 8} more" if len(differs) > 8 else "")
        raise RunMismatchError(f"{rundir.root} holds a run with a different config ({shown} differ); {_HOW_TO}")


def case_fingerprints(cases, task) -> dict[str, str]:
    """``case_id -> hash prefix of files + preprocessing, every target the task reads, and the site``.

    The targets come from the ``Task`` (``target_fingerprint``: a single task's label, every
    classification label of a multi-task case), so no kind of target can change unnoticed.
    The site decides leave-one-site-out folds and every per-site figure, so a changed
    site column must be refused on resume like a changed label.
    """
    return {c.case_id: f"{c.content_hash[:16]}:{task.target_fingerprint(c)}" + (f":site={c.site}" if c.site else "")
            for c in cases}


def check_data(rundir: RunDir, cases, skipped: list[dict], task) -> None:
    """Refuse a resume whose cases (ids, files or preprocessing) are not those the run started with."""
    state = rundir.read_state()
    if "cases" not in state:
        return
    before, now = state["cases"], case_fingerprints(cases, task)
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(k for k in set(now) & set(before) if now[k] != before[k])
    skipped_now = sorted(s["case_id"] for s in skipped)
    if added or removed or changed or skipped_now != sorted(state.get("skipped", [])):
        parts = [f"{len(changed)} case(s) changed (e.g. {changed[0]})" if changed else "",
                 f"{len(added)} case(s) not in the run (e.g. {added[0]})" if added else "",
                 f"{len(removed)} case(s) of the run missing now (e.g. {removed[0]})" if removed else "",
                 "a different set of unusable cases" if skipped_now != sorted(state.get("skipped", [])) else ""]
        cause = ("case ids derived from image paths change with the salt (MEDTL_SALT or ~/.medtl/salt)"
                 if added and removed and not changed else "the manifest or its files changed")
        raise RunMismatchError(f"{rundir.root}: the data differ from the run's ({'; '.join(p for p in parts if p)}); "
                               f"likely cause: {cause}; {_HOW_TO}")


def split_rows(cases, folds: list[Fold]) -> list[dict]:
    """``splits.csv`` rows: the validation fold of every case per repeat (fixed splits: every case's role)."""
    def row(i: int, fold: Fold, role: str) -> dict:
        return {"case_id": cases[i].case_id, "patient_key": cases[i].patient_key, "repeat": fold.repeat,
                "fold": fold.fold, "role": role}

    if any(f.inner for f in folds):  # fixed splits and leave-one-site-out: every case's role in every fold
        return [row(i, fold, role) for fold in folds for role, members in
                (("train", fold.train), ("val", fold.inner), ("test", fold.val)) for i in members]
    return [row(i, f, "val") for f in folds for i in f.val]


def folds_from_splits(rundir: RunDir, cases) -> list[Fold]:
    """Folds read back from ``splits.csv``, checked against the current cases."""
    expected = rundir.read_state().get("fingerprints", {}).get("splits")
    if expected and sha256_file(rundir.splits) != expected:
        raise RunMismatchError(f"{rundir.splits} was modified after the run started (its hash differs from "
                               f"run.json); {_HOW_TO}")
    rows = rundir.read_splits()
    index = {c.case_id: i for i, c in enumerate(cases)}
    listed = {r["case_id"] for r in rows}
    unknown, unlisted = sorted(listed - set(index)), sorted(set(index) - listed)
    if unknown or unlisted:
        raise RunMismatchError(
            f"{rundir.splits} does not fit the data: {len(unknown)} listed case(s) are not in the data now, "
            f"{len(unlisted)} case(s) are not listed; the manifest or the salt (MEDTL_SALT or ~/.medtl/salt) "
            f"changed since the splits were made; {_HOW_TO}")
    moved = sorted(r["case_id"] for r in rows if cases[index[r["case_id"]]].patient_key != r["patient_key"])
    if moved:
        raise RunMismatchError(
            f"{rundir.splits}: {len(moved)} case(s) now belong to other patient keys (e.g. {moved[0]}): the salt "
            f"(MEDTL_SALT or ~/.medtl/salt) or the patient ids changed, so these splits may no longer keep each "
            f"patient on one side; {_HOW_TO}")
    if any(r.get("role") == "test" for r in rows):  # fixed splits, leave-one-site-out: roles per fold
        folds = []
        for repeat, fold in sorted({(int(r["repeat"]), int(r["fold"])) for r in rows}):
            members = {role: sorted(index[r["case_id"]] for r in rows if r["role"] == role and
                                    (int(r["repeat"]), int(r["fold"])) == (repeat, fold))
                       for role in ("train", "val", "test")}
            folds.append(Fold(repeat, fold, tuple(members["train"]), tuple(members["test"]), tuple(members["val"])))
        return folds
    folds = []
    for repeat, fold in sorted({(r["repeat"], r["fold"]) for r in rows}):
        in_repeat = {index[r["case_id"]] for r in rows if r["repeat"] == repeat}
        if len(in_repeat) != len(cases):
            raise RunMismatchError(f"{rundir.splits}: repeat {repeat} does not assign every case to one fold; "
                                   f"{_HOW_TO}")
        val = sorted(index[r["case_id"]] for r in rows if (r["repeat"], r["fold"]) == (repeat, fold))
        train = sorted(set(range(len(cases))) - set(val))
        folds.append(Fold(repeat, fold, tuple(train), tuple(val)))
    return folds


def write_state(rundir: RunDir, config_text: str, cases, skipped: list[dict], arms: list[str], task) -> None:
    """``run.json``: fingerprints of config, data and splits, the arms, and the medtl version."""
    from .._version import __version__

    rundir.write_state({
        "medtl_version": __version__,
        "fingerprints": {"config": sha256_text(config_text),
                         "data": sha256_text(*sorted(f"{k}:{v}" for k, v in case_fingerprints(cases, task).items())),
                         "splits": sha256_file(rundir.splits)},
        "arms": arms, "n_cases": len(cases), "cases": case_fingerprints(cases, task),
        "skipped": sorted(s["case_id"] for s in skipped)})

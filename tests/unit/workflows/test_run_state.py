"""Run state: folds read back from splits.csv equal the folds made; every kind of drift is refused."""

from types import SimpleNamespace

import pytest

from medtl.config import load_config
from medtl.data.splits import make_folds
from medtl.errors import RunMismatchError
from medtl.rundir import RunDir
from medtl.tasks import get_task
from medtl.workflows import run_state

TASK = get_task("classification")


def cases(n=12, salt="a"):
    return [SimpleNamespace(case_id=f"c{i}", patient_key=f"{salt}-p{i // 2}", group_key=f"{salt}-p{i // 2}",
                            label=i % 2, content_hash=f"{i:064x}", site="") for i in range(n)]


def started_run(tmp_path, data, repeats=2):
    rundir = RunDir(tmp_path / "run")
    folds = make_folds([c.group_key for c in data], [c.label for c in data], 3, 0, repeats)
    rundir.write_config(load_config(None, ["cv.folds=3"]))
    rundir.write_splits(run_state.split_rows(data, folds))
    run_state.write_state(rundir, "config text", data, [], ["scratch"], TASK)
    return rundir, folds


def test_folds_read_back_equal_the_folds_made(tmp_path):
    data = cases()
    rundir, folds = started_run(tmp_path, data)
    assert run_state.folds_from_splits(rundir, data) == folds


def test_leave_site_out_folds_read_back_equal_the_folds_made_with_left_out_cases(tmp_path):
    from medtl.data.splits import leave_site_out_folds

    data = cases(24)
    for i, case in enumerate(data):
        case.site = "abc"[i % 3]  # patients (pairs of cases) span two sites: some cases are left out of folds
    folds, notes = leave_site_out_folds([c.site for c in data], [c.group_key for c in data],
                                        [c.content_hash for c in data], [c.label for c in data], 0.25, 0)
    assert notes and any(len(f.train) + len(f.inner) + len(f.val) < len(data) for f in folds)
    rundir = RunDir(tmp_path / "run")
    rundir.write_splits(run_state.split_rows(data, folds))
    run_state.write_state(rundir, "config text", data, [], ["erm"], TASK)
    assert run_state.folds_from_splits(rundir, data) == folds
    moved = cases(24)
    for i, case in enumerate(moved):
        case.site = "abc"[(i + (i == 0)) % 3]
    with pytest.raises(RunMismatchError, match="1 case"):  # a case moved to another site: the folds are stale
        run_state.check_data(rundir, moved, [], TASK)


def test_a_new_salt_a_moved_patient_or_an_edited_splits_file_is_refused(tmp_path):
    data = cases()
    rundir, _ = started_run(tmp_path, data)
    with pytest.raises(RunMismatchError, match="salt"):
        run_state.folds_from_splits(rundir, cases(salt="b"))
    renamed = cases()
    renamed[0].case_id = "other"
    with pytest.raises(RunMismatchError, match="not in the data now"):
        run_state.folds_from_splits(rundir, renamed)
    rows = rundir.read_splits()
    rows[0]["fold"] = (rows[0]["fold"] + 1) % 3
    rundir.write_splits(rows)
    with pytest.raises(RunMismatchError, match="modified after the run started"):
        run_state.folds_from_splits(rundir, data)


def test_data_drift_is_named(tmp_path):
    data = cases()
    rundir, _ = started_run(tmp_path, data)
    run_state.check_data(rundir, data, [], TASK)  # unchanged: fine
    changed = cases()
    changed[3].content_hash = "f" * 64
    with pytest.raises(RunMismatchError, match="1 case\\(s\\) changed"):
        run_state.check_data(rundir, changed, [], TASK)
    with pytest.raises(RunMismatchError, match="missing now"):
        run_state.check_data(rundir, data[:-1], [], TASK)
    with pytest.raises(RunMismatchError, match="unusable cases"):
        run_state.check_data(rundir, data, [{"case_id": "c99"}], TASK)


def test_config_drift_names_the_keys_but_an_unstarted_folder_may_change(tmp_path):
    data = cases()
    rundir, _ = started_run(tmp_path, data)
    with pytest.raises(RunMismatchError, match="cv.folds, train.epochs"):
        run_state.check_config(rundir, load_config(None, ["cv.folds=4", "train.epochs=2"]))
    fresh = RunDir(tmp_path / "fresh")
    fresh.write_config(load_config(None))  # failed before its splits: nothing to protect yet
    run_state.check_config(fresh, load_config(None, ["train.epochs=2"]))


def test_the_source_stage_fingerprint_ignores_what_the_source_stage_does_not_use(tmp_path):
    from medtl.workflows.pretrain import source_stage_config, stage_fingerprint_text

    (tmp_path / "s.csv").write_text("image,label\n")
    base = load_config(None, [f"source.manifest={tmp_path / 's.csv'}", "model.pretrained=source"])
    text = stage_fingerprint_text(source_stage_config(base))
    for unused in ({"cv.folds": 3}, {"compare": ["scratch"]}, {"finetune.strategy": "linear"},
                   {"model.dropout": 0.5}):
        assert stage_fingerprint_text(source_stage_config(base.derive(unused))) == text
    for used in (["source.epochs=3"], ["data.image_size=[64,64]"], ["model.backbone=tiny-resnet"]):
        key, value = used[0].split("=")
        changed = load_config(None, [f"source.manifest={tmp_path / 's.csv'}", "model.pretrained=source", used[0]])
        assert stage_fingerprint_text(source_stage_config(changed)) != text, key

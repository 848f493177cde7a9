"""RunDir owns the layout: paths, splits round trip, arm configs, fold listing."""

import pytest

from medtl.config import load_config
from medtl.errors import InputError
from medtl.rundir import RunDir


def make_run(tmp_path, arms=("scratch", "linear")):
    rundir = RunDir(tmp_path / "run")
    config = load_config(None, ["model.pretrained=none", "compare=[linear]", "cv.folds=2"])
    rundir.write_config(config)
    rundir.write_state({"arms": list(arms)})
    rows = [{"case_id": f"c{i}", "patient_key": f"p{i}", "repeat": r, "fold": i % 2} for r in (0, 1)
            for i in range(4)]
    rundir.write_splits(rows)
    return rundir, config, rows


def test_splits_and_folds_round_trip(tmp_path):
    rundir, _, rows = make_run(tmp_path)
    assert rundir.read_splits() == [{**r, "role": "val"} for r in rows]
    assert rundir.fold_ids() == [(0, 0), (0, 1), (1, 0), (1, 1)]
    folds = rundir.folds("linear")
    assert [f.name for f in folds] == ["repeat0_fold0", "repeat0_fold1", "repeat1_fold0", "repeat1_fold1"]
    assert all(f.path.parent == rundir.arm_dir("linear") and not f.is_finished() for f in folds)
    assert folds[0].model.name == "model.safetensors" and folds[0].done.name == "done.json"


def test_arm_configs_come_from_their_files_or_are_derived_for_older_runs(tmp_path):
    rundir, config, _ = make_run(tmp_path)
    assert rundir.main_arm() == "scratch"
    derived = rundir.read_arm_config("linear")  # no arms/linear/config.yaml: derived again
    assert derived.finetune.strategy == "linear" and derived.model.pretrained == "none"
    rundir.write_arm_config("linear", config.derive({"train.epochs": 2}, check_paths=False))
    assert rundir.read_arm_config("linear").train.epochs == 2
    with pytest.raises(InputError, match="did you mean 'linear'"):
        rundir.read_arm_config("lineer")


def test_log_lines_are_appended(tmp_path):
    rundir, _, _ = make_run(tmp_path)
    rundir.log("first")
    rundir.log("second")
    lines = rundir.log_file.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["first", "second"]


def test_a_folder_without_a_run_is_refused(tmp_path):
    with pytest.raises(InputError, match="not a medtl cv run folder"):
        RunDir(tmp_path).read_config()


def test_a_child_run_folder_is_laid_out_like_a_run_and_stays_inside(tmp_path):
    from medtl.errors import OutsideOutputError

    parent = RunDir(tmp_path / "run")
    child = parent.child("tune/outer0/trial-3")
    assert child.root == tmp_path / "run" / "tune" / "outer0" / "trial-3"
    assert child.fold("scratch", 0, 1).path == child.root / "arms" / "scratch" / "repeat0_fold1"
    assert child.child("inner1").root == child.root / "inner1"
    for escape in ("../elsewhere", "tune/../../elsewhere"):
        with pytest.raises(OutsideOutputError):
            parent.child(escape)
    with pytest.raises(ValueError):
        parent.child(tmp_path / "absolute")


def test_a_fold_result_round_trips_through_done_json(tmp_path):
    from medtl.results import ArmResult, FoldResult

    folder = RunDir(tmp_path / "run").fold("scratch", 0, 0)
    result = FoldResult({"fold": 0, "repeat": 0, "auc": 0.5}, [{"case_id": "c1", "prob_1": 0.25}],
                        [{"epoch": 0, "train_loss": 0.7}], [], {"method": "dann", "n_target_images": 3},
                        {"file": "w.safetensors"}, ["a note"])
    folder.write_result(result)
    assert folder.read_result() == result
    assert folder.read_done()["domain"] == {"method": "dann", "n_target_images": 3}  # the done.json key
    arm = ArmResult("scratch", None, (result, result))
    assert arm.rows == result.rows * 2 and arm.records == [result.record] * 2 and arm.notes == ["a note"] * 2
    old = {"record": {"fold": 1}, "rows": [], "history": [], "domain": {}, "adaptation": {}}  # no inner_rows, notes
    assert FoldResult.from_dict(old).notes == [] and FoldResult.from_dict(old).inner_rows == []

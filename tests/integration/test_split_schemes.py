"""Fixed (official) splits, reused splits, and folds that do not depend on the salt."""

import csv
import json

import pytest

from medtl.cli import main
from medtl.plumbing.atomic import read_csv
from medtl.samples.sample_sets import write_radiograph_set


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = write_radiograph_set(tmp_path_factory.mktemp("data"), n_patients=12, images_per_patient=2, size=32, seed=8)
    rows = list(csv.DictReader(open(root / "manifest.csv")))
    for i, row in enumerate(rows):
        row["case_id"] = f"case{i:02d}"
        patient = int(row["patient_id"].rsplit("-", 1)[1])
        row["split"] = "train" if patient < 6 else ("val" if patient < 8 else "test")
    return root, rows


def write(path, rows, columns=None):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def config(tmp_path, manifest, **cv):
    text = (f"task: classification\ndata: {{manifest: {manifest}, dims: 2, image_size: 32}}\n"
            "model: {backbone: tiny-resnet, pretrained: none}\n"
            "train: {epochs: 2, batch_size: 8, selection: best_inner}\n"
            f"cv: {json.dumps({'folds': 3, 'bootstrap': 100, **cv})}\n")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_a_split_column_runs_train_val_test_once(dataset, tmp_path, capsys):
    root, rows = dataset
    manifest = write(root / "fixed.csv", rows)
    run = tmp_path / "run"
    assert main(["cv", str(config(tmp_path, manifest)), "--out", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    (fold,) = metrics["folds"]
    assert (fold["n_train"], fold["n_inner"], fold["n_val"]) == (12, 4, 8)  # train / val (selection) / test
    assert "splits: fixed, from the manifest's split column" in (run / "log.txt").read_text()
    roles = {r["case_id"]: r["role"] for r in read_csv(run / "splits.csv")[1]}
    assert roles == {r["case_id"]: r["split"] for r in rows}
    predictions = read_csv(run / "predictions.csv")[1]
    assert sorted(r["case_id"] for r in predictions) == sorted(r["case_id"] for r in rows if r["split"] == "test")
    capsys.readouterr()
    assert main(["cv", str(config(tmp_path, manifest)), "--out", str(run)]) == 0  # resumes as is
    assert json.loads((run / "metrics.json").read_text())["summary"] == metrics["summary"]
    printed = capsys.readouterr().out
    assert "one scored set, so no spread over folds" in printed and "nan" not in printed  # issue 28.19


def test_a_patient_on_two_sides_of_a_fixed_split_is_refused(dataset, tmp_path, capsys):
    root, rows = dataset
    leaky = [dict(r) for r in rows]
    leaky[0]["split"] = "test"  # its twin image (same patient) stays in train
    assert main(["cv", str(config(tmp_path, write(root / "leaky.csv", leaky))), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert "more than one of train/val/test" in capsys.readouterr().err


def test_splits_of_an_earlier_run_are_reused_exactly(dataset, tmp_path, capsys):
    root, rows = dataset
    manifest = write(root / "plain.csv", rows, ["image", "label", "patient_id", "case_id"])
    first = tmp_path / "first"
    assert main(["cv", str(config(tmp_path, manifest)), "--out", str(first), "--quiet"]) == 0
    reuse = config(tmp_path, manifest, splits_file=str(first / "splits.csv"), folds=3)
    second = tmp_path / "second"
    assert main(["cv", str(reuse), "--out", str(second), "--quiet", "--set", "train.seed=5"]) == 0
    assignment = lambda run: {(r["case_id"], r["fold"]) for r in read_csv(run / "splits.csv")[1]}  # noqa: E731
    assert assignment(first) == assignment(second)
    capsys.readouterr()


def test_folds_keyed_by_patient_id_are_the_same_under_any_salt(dataset, tmp_path, monkeypatch, capsys):
    root, rows = dataset
    manifest = write(root / "plain2.csv", rows, ["image", "label", "patient_id", "case_id"])
    assignments = []
    for salt in ("salt-one", "salt-two"):
        monkeypatch.setenv("MEDTL_SALT", salt)
        run = tmp_path / salt
        assert main(["cv", str(config(tmp_path, manifest, split_seed_by="patient_id")), "--out", str(run),
                     "--quiet", "--set", "train.epochs=1"]) == 0
        assignments.append({(r["case_id"], r["fold"]) for r in read_csv(run / "splits.csv")[1]})
    assert assignments[0] == assignments[1]
    capsys.readouterr()

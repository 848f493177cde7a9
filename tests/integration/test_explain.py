"""medtl predict --explain: one map per case, on the input's original grid, for the right class; refusals."""

import json

import nibabel as nib
import numpy as np
import pytest

from medtl.cli import main
from medtl.io import load_volume
from medtl.predict.writers import OutputGeometry
from medtl.samples.sample_data import write_ct_set
from medtl.samples.sample_sets import write_radiograph_set
from tests.integration.test_predict_cli import read_csv, train


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory):
    return write_radiograph_set(tmp_path_factory.mktemp("xr"), n_patients=6, images_per_patient=2, size=40, seed=9)


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    return write_ct_set(tmp_path_factory.mktemp("ct"), 6, (12, 32, 32), seed=5)


@pytest.fixture(scope="module")
def runs(radiographs, ct, tmp_path_factory):
    return {"2d": train(tmp_path_factory.mktemp("r2"), radiographs / "manifest.csv"),
            "3d": train(tmp_path_factory.mktemp("r3"), ct / "manifest.csv",
                        **{"data.dims": 3, "data.image_size": [12, 32, 32], "train.batch_size": 4})}


@pytest.mark.parametrize("method", ["gradcam", "occlusion"])
@pytest.mark.parametrize("dims", ["2d", "3d"])
def test_maps_lie_on_the_original_grid_of_each_input(method, dims, runs, radiographs, ct, tmp_path):
    data = radiographs if dims == "2d" else ct
    out = tmp_path / "p"
    args = ["predict", str(runs[dims]), str(data / "manifest.csv"), "--out", str(out), "--explain", method, "--quiet",
            "--occlusion-size", "8"]
    assert main(args) == 0
    rows = read_csv(out / "predictions.csv")
    manifest = read_csv(data / "manifest.csv")
    assert len(rows) == len(manifest) and all(r["explain_file"] == f"maps/{r['case_id']}_{method}.nii.gz"
                                              for r in rows)
    assert all(r["explained_class"] == r["predicted"] for r in rows)  # default: the predicted class
    for row, case in zip(rows, manifest):
        source = load_volume(data / case["image"])
        written = load_volume(out / row["explain_file"])
        ours, theirs = OutputGeometry.of(written), OutputGeometry.of(source)  # 2D: the one-slice volume
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours.spacing, theirs.spacing, atol=1e-5)
        np.testing.assert_allclose(ours.origin, theirs.origin, atol=1e-4)
        np.testing.assert_allclose(ours.direction, theirs.direction, atol=1e-6)
        values = np.asarray(nib.load(out / row["explain_file"]).dataobj)
        assert np.isfinite(values).all()
        if method == "gradcam":
            assert values.min() >= 0 and values.max() <= 1 + 1e-6
    assert main(args) == 0  # a resume with the same settings adds nothing and changes nothing
    assert read_csv(out / "predictions.csv") == rows


def test_explain_class_and_settings_are_part_of_the_job(runs, radiographs, tmp_path, capsys):
    out = tmp_path / "p"
    manifest = str(radiographs / "manifest.csv")
    assert main(["predict", str(runs["2d"]), manifest, "--out", str(out), "--explain", "gradcam",
                 "--explain-class", "1", "--quiet"]) == 0
    assert {r["explained_class"] for r in read_csv(out / "predictions.csv")} == {"1"}
    assert json.loads((out / "job.json").read_text())["explain"][:2] == ["gradcam", "1"]
    assert main(["predict", str(runs["2d"]), manifest, "--out", str(out), "--explain", "occlusion", "--quiet"]) != 0
    assert "explain" in capsys.readouterr().err  # not mixed into a folder of other explanations


@pytest.mark.parametrize("extra,message", [
    (["--explain-class", "nodule"], "not a class of this model"),
])
def test_impossible_requests_are_refused_before_predicting(extra, message, runs, radiographs, tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["predict", str(runs["2d"]), str(radiographs / "manifest.csv"), "--out", str(out), "--explain",
                 "gradcam", *extra]) != 0
    assert message in capsys.readouterr().err and not out.exists()


def test_segmentation_and_gradcam_on_an_export_are_refused(ct, radiographs, runs, tmp_path, capsys):
    (tmp_path / "seg").mkdir()
    seg = train(tmp_path / "seg", ct / "manifest.csv", task="segmentation",
                **{"data.dims": 3, "data.image_size": [12, 32, 32], "train.batch_size": 4})
    assert main(["predict", str(seg), str(ct / "manifest.csv"), "--out", str(tmp_path / "a"), "--explain",
                 "gradcam"]) != 0
    assert "explain a classification" in capsys.readouterr().err
    assert main(["export", str(runs["2d"]), "--out", str(tmp_path / "x"), "--quiet"]) == 0
    assert main(["predict", str(tmp_path / "x"), str(radiographs / "manifest.csv"), "--out", str(tmp_path / "b"),
                 "--explain", "gradcam"]) != 0
    assert "Grad-CAM needs the PyTorch model" in capsys.readouterr().err


def test_the_cv_report_shows_maps_and_their_sanity_checks(runs, radiographs):
    metrics = json.loads((runs["2d"] / "metrics.json").read_text())
    entry = metrics["explanations"]["arms"]["scratch"]
    assert entry["fold"] == "repeat0_fold0" and entry["layer"].startswith("backbone.")
    assert entry["n_cases"] == len(json.loads((runs["2d"] / "arms" / "scratch" / "repeat0_fold0" / "done.json")
                                              .read_text())["rows"])
    rank = entry["randomisation_spearman"]
    assert rank["n"] + rank["n_flat"] == entry["n_cases"]
    assert entry["pointing_game"]["n"] >= 1 and 0 < entry["pointing_game"]["chance"] < 0.2  # masks were found
    report = (runs["2d"] / "report.html").read_text()
    assert "Explanation maps" in report and "pointing game" in report.lower()
    assert not any(r["patient_id"] in report for r in read_csv(radiographs / "manifest.csv"))

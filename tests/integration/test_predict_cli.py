"""`medtl predict`, `medtl merge` and `medtl evaluate` through the CLI on tiny data and messy exports."""

import csv
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pydicom
import pytest
import yaml

from medtl.cli import main
from medtl.samples.sample_sets import write_radiograph_set
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series

SECRETS = ("DOE", "JOHN", "SYNTH-")  # the export folder name and the radiograph patient ids


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def train(root, manifest, task="classification", **overrides):
    config = {"task": task, "data": {"manifest": str(manifest), "dims": 2, "image_size": [32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 1, "batch_size": 8, "lr": 0.003}, "cv": {"folds": 2, "bootstrap": 200}}
    for key, value in overrides.items():
        section, name = key.split(".")
        config.setdefault(section, {})[name] = value
    (root / "cv.yaml").write_text(yaml.safe_dump(config))
    assert main(["cv", str(root / "cv.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory):
    return write_radiograph_set(tmp_path_factory.mktemp("xr"), n_patients=20, images_per_patient=2, size=48, seed=5)


@pytest.fixture(scope="module")
def cls_run(radiographs, tmp_path_factory):
    return train(tmp_path_factory.mktemp("cls"), radiographs / "manifest.csv")


@pytest.fixture(scope="module")
def export(radiographs, tmp_path_factory):
    """40 radiographs in a folder named like a patient, plus junk a hospital export may hold."""
    root = tmp_path_factory.mktemp("export")
    study = root / "DOE^JOHN_12345" / "study"
    study.mkdir(parents=True)
    images = sorted((radiographs / "images").glob("*.dcm"))
    for path in images:
        shutil.copy(path, study / path.name)
    (study / "notes.txt").write_text("referral letter")
    (study / "empty.dcm").write_bytes(b"")
    (study / "noise.bin").write_bytes(np.random.default_rng(0).bytes(3000))
    (study / "zipped.dcm.gz").write_bytes(gzip.compress(images[0].read_bytes()))
    cut = images[1].read_bytes()
    import pydicom

    truncated = pydicom.dcmread(images[1])
    truncated.SOPInstanceUID = truncated.file_meta.MediaStorageSOPInstanceUID = "1.2.3.999"
    truncated.save_as(study / "cut.dcm")
    (study / "cut.dcm").write_bytes((study / "cut.dcm").read_bytes()[: len(cut) // 2])
    write_series(root / "DOE^JOHN_12345" / "ct", SeriesSpec(stored=phantom_volume((4, 16, 16), seed=1),
                                                            patient_id="DOE^JOHN_12345"))
    return root


@pytest.fixture(scope="module")
def reference(cls_run, export, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "out"
    assert main(["predict", str(cls_run), str(export), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    return out


def assert_no_secrets(folder):
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json", ".jsonl", ".html"):
            text = path.read_text()
            assert not any(secret in text for secret in SECRETS), path
        if path.is_file():
            assert not any(secret in str(path.relative_to(folder)) for secret in SECRETS)


def test_every_file_of_a_messy_export_is_accounted_for(reference, export):
    rows, skipped = read_csv(reference / "predictions.csv"), read_csv(reference / "skipped.csv")
    summary = json.loads((reference / "predict.json").read_text())
    files = [p for p in export.rglob("*") if p.is_file()]
    assert len(rows) == 40 and summary["predicted"] == 40
    assert sum(int(r["n_files"]) for r in rows) + len(skipped) == len(files) == summary["files_found"]
    reasons = {r["reason"] for r in skipped}
    assert {"NOT_DICOM", "GZIP_WRAPPED", "TRUNCATED_PIXEL_DATA", "UNSUPPORTED_DIMENSIONS"} <= reasons
    ct_rows = [r for r in skipped if r["reason"] == "UNSUPPORTED_DIMENSIONS"]
    assert len(ct_rows) == 4 and len({r["series_key"] for r in ct_rows}) == 1  # the 3D series, per file
    assert list(rows[0]) == ["series_key", "patient_key", "n_files", "prob_0", "prob_1", "predicted", "model_id",
                             "status", "reasons"]
    assert all(abs(float(r["prob_0"]) + float(r["prob_1"]) - 1) < 1e-4 for r in rows)
    assert all(r["predicted"] == ("1" if float(r["prob_1"]) > float(r["prob_0"]) else "0") for r in rows)
    assert {r["model_id"] for r in rows} == {summary["model_id"]} and "ensemble2" in summary["model_id"]
    assert len({r["series_key"] for r in rows}) == 40
    assert_no_secrets(reference)


def test_logs_carry_no_patient_data(cls_run, export, tmp_path, capfd):
    assert main(["predict", str(cls_run), str(export), "--out", str(tmp_path / "o"), "--workers", "0"]) == 0
    captured = capfd.readouterr()
    assert "40 predicted" in captured.out
    assert not any(secret in captured.out + captured.err for secret in SECRETS)


def test_resume_after_kill_loses_and_duplicates_nothing(cls_run, export, reference, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "medtl.cli", "predict", str(cls_run), str(export), "--out", str(out),
               "--quiet", "--workers", "0", "--batch-size", "1"]
    process = subprocess.Popen(command, env=os.environ.copy())
    journal = out / "journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    done_at_kill = journal.read_text().count("\n")
    assert 3 <= done_at_kill < 41, "the run must be interrupted part-way"
    assert not (out / "predictions.csv").exists()
    assert main(["predict", str(cls_run), str(export), "--out", str(out), "--quiet", "--workers", "0"]) == 0
    keys = [json.loads(line)["key"] for line in journal.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 41  # 40 radiographs + the 3D series that failed
    resumed = {r["series_key"]: r for r in read_csv(out / "predictions.csv")}
    expected = {r["series_key"]: r for r in read_csv(reference / "predictions.csv")}
    assert resumed.keys() == expected.keys()
    for key, row in expected.items():
        assert abs(float(resumed[key]["prob_1"]) - float(row["prob_1"])) < 1e-5
    assert sorted(map(str, read_csv(out / "skipped.csv"))) == sorted(map(str, read_csv(reference / "skipped.csv")))
    assert main(["predict", str(cls_run), str(export), "--out", str(out), "--quiet"]) == 0  # finished: a no-op
    assert journal.read_text().count("\n") == 41


def test_shards_partition_the_input_and_merge_to_the_unsharded_result(cls_run, export, reference, tmp_path):
    parts = []
    for index in (1, 2, 3):
        parts.append(tmp_path / f"shard{index}")
        assert main(["predict", str(cls_run), str(export), "--out", str(parts[-1]), "--quiet", "--shard",
                     f"{index}/3", "--workers", "0"]) == 0
    keys = [{r["series_key"] for r in read_csv(p / "predictions.csv")} for p in parts]
    assert all(keys) and sum(len(k) for k in keys) == len(set().union(*keys)) == 40
    inputs = [[r["input"] for r in read_csv(p / "skipped.csv")] for p in parts]
    assert sorted(sum(inputs, [])) == sorted(r["input"] for r in read_csv(reference / "skipped.csv"))
    assert main(["merge", str(parts[0]), str(parts[1]), "--out", str(tmp_path / "bad")]) == 2  # shard 3 missing
    assert main(["merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 0
    merged = {r["series_key"]: r for r in read_csv(tmp_path / "merged" / "predictions.csv")}
    expected = {r["series_key"]: r for r in read_csv(reference / "predictions.csv")}
    assert merged.keys() == expected.keys()
    assert all(abs(float(merged[k]["prob_1"]) - float(expected[k]["prob_1"])) < 1e-5 for k in expected)
    summary = json.loads((tmp_path / "merged" / "predict.json").read_text())
    assert summary["files_found"] == summary["files_predicted"] + summary["files_skipped"]


def test_a_folder_of_another_job_is_not_mixed_into(cls_run, export, reference, capsys):
    assert main(["predict", str(cls_run), str(export), "--out", str(reference), "--shard", "1/2"]) == 2
    assert "different" in capsys.readouterr().err


def test_manifest_input_needs_only_an_image_column(cls_run, radiographs, tmp_path):
    images = [r["image"] for r in read_csv(radiographs / "manifest.csv")][:5]
    manifest = radiographs / "to_predict.csv"
    manifest.write_text("image\n" + "\n".join(images + ["images/missing.dcm"]) + "\n")
    assert main(["predict", str(cls_run), str(manifest), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    rows, skipped = read_csv(tmp_path / "o" / "predictions.csv"), read_csv(tmp_path / "o" / "skipped.csv")
    assert len(rows) == 5 and list(rows[0])[:2] == ["case_id", "patient_key"]
    assert [r["reason"] for r in skipped] == ["FILE_NOT_FOUND"]
    assert all(r["patient_key"] for r in rows)  # from the DICOM header, hashed


def test_run_folder_problems_are_one_line_errors(radiographs, tmp_path, capsys):
    assert main(["predict", str(tmp_path), str(radiographs), "--out", str(tmp_path / "o")]) == 2
    assert "not a medtl cv run folder" in capsys.readouterr().err


def test_evaluate_equals_the_cv_code_path_on_the_same_model_and_cases(cls_run, radiographs, tmp_path):
    splits = read_csv(cls_run / "splits.csv")
    fold0 = {r["case_id"] for r in splits if r["fold"] == "0"}
    from medtl.io.pseudonym import keyed_hash

    manifest_rows = [r for r in read_csv(radiographs / "manifest.csv") if keyed_hash(r["image"], "case") in fold0]
    external = radiographs / "fold0.csv"  # same folder, same relative paths: the same case ids as in cv
    with open(external, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(manifest_rows[0]))
        writer.writeheader()
        writer.writerows(manifest_rows)
    out = tmp_path / "eval"
    assert main(["evaluate", str(cls_run), str(external), "--out", str(out), "--fold", "0", "--quiet"]) == 0
    cv_rows = {r["case_id"]: r for r in read_csv(cls_run / "predictions.csv") if r["fold"] == "0"}
    rows = {r["case_id"]: r for r in read_csv(out / "predictions.csv")}
    assert rows.keys() == cv_rows.keys()
    assert all(abs(float(rows[c]["prob_1"]) - float(cv_rows[c]["prob_1"])) < 1e-5 for c in rows)
    assert all(rows[c]["label"] == cv_rows[c]["label"] for c in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    cv_metrics = json.loads((cls_run / "metrics.json").read_text())
    cv_fold0 = next(f for f in cv_metrics["folds"] if f["fold"] == 0)
    for name in ("auc", "accuracy", "sensitivity", "specificity", "f1"):
        assert metrics["folds"][0][name] == pytest.approx(cv_fold0[name], abs=1e-4), name
        assert metrics["summary"][name]["pooled"] == pytest.approx(cv_fold0[name], abs=1e-4), name
    assert metrics["task"] == "classification" and metrics["primary_metric"] == "auc"
    assert set(metrics["summary"]["auc"]) >= {"mean", "std", "ci95"} and metrics["external"] is True
    assert metrics["n_patients"] == len({r["patient_id"] for r in manifest_rows})
    assert metrics["training_overlap"] == len(manifest_rows)  # these are the run's own images: said loudly
    assert "not an independent external validation" in metrics["warnings"][0]
    assert (out / "report.html").exists()
    assert_no_secrets(out)


def test_evaluate_on_new_images_reports_no_training_overlap(cls_run, tmp_path, capsys):
    other = write_radiograph_set(tmp_path / "site_b", n_patients=6, images_per_patient=2, size=48, seed=11)
    out = tmp_path / "eval"
    assert main(["evaluate", str(cls_run), str(other / "manifest.csv"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training_overlap"] == 0 and metrics["n_cases"] == 12 and metrics["n_patients"] == 6
    printed = capsys.readouterr().out
    assert "auc" in printed and "patient bootstrap" in printed and "external validation" not in printed


def test_evaluate_refuses_labels_the_run_never_saw(cls_run, radiographs, tmp_path, capsys):
    rows = read_csv(radiographs / "manifest.csv")[:4]
    bad = radiographs / "bad_labels.csv"
    with open(bad, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{**r, "label": "7"} for r in rows])
    assert main(["evaluate", str(cls_run), str(bad), "--out", str(tmp_path / "e")]) == 2
    assert "not trained on" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ct_set(tmp_path_factory):
    from medtl.samples.sample_data import write_sample_data

    return write_sample_data(tmp_path_factory.mktemp("sample"), seed=0, size="tiny") / "ct3d"


@pytest.fixture(scope="module")
def seg_run(ct_set, tmp_path_factory):
    return train(tmp_path_factory.mktemp("seg"), ct_set / "manifest.csv", task="segmentation",
                 **{"data.dims": 3, "data.image_size": [12, 32, 32], "train.batch_size": 4})


def test_segmentation_masks_follow_the_source_geometry_and_dicom_seg_matches(seg_run, ct_set, tmp_path):
    import highdicom as hd
    import pydicom

    from medtl.io import load_volume
    from medtl.io.dicom import dicom_plan

    out = tmp_path / "pred"
    assert main(["predict", str(seg_run), str(ct_set / "dicom"), "--out", str(out), "--quiet",
                 "--probability-maps"]) == 0
    rows = {r["series_key"]: r for r in read_csv(out / "predictions.csv")}
    folders = sorted(p for p in (ct_set / "dicom").iterdir() if p.is_dir())
    assert len(rows) == len(folders) > 0
    for folder in folders:
        plan = dicom_plan(folder)
        row = rows[plan.series_key]
        source = load_volume(folder)
        mask = load_volume(out / row["mask_file"], as_label=True)
        assert mask.array.shape == source.array.shape
        assert np.allclose(mask.spacing, source.spacing, atol=1e-4)
        assert np.allclose(mask.origin, source.origin, atol=1e-3)
        assert np.allclose(mask.direction, source.direction, atol=1e-5)
        assert int(row["foreground_voxels"]) == int((mask.array > 0).sum())
        probability = load_volume(out / row["prob_files"])
        assert np.array_equal(probability.array > 0.5, mask.array > 0)
        seg = hd.seg.segread(out / row["seg_file"])
        uids = [pydicom.dcmread(f.path, stop_before_pixels=True).SOPInstanceUID for f in plan.frames]
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
        assert np.array_equal(pixels, mask.array)


def test_evaluate_segmentation_scores_the_written_masks_on_the_original_grid(seg_run, ct_set, tmp_path):
    from medtl.io import load_volume
    from medtl.tasks.metrics import segmentation_case_metrics

    out = tmp_path / "eval"
    assert main(["evaluate", str(seg_run), str(ct_set / "manifest.csv"), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primary_metric"] == "dice" and metrics["segmentation_grid"] == "original image grid"
    assert len(metrics["folds"]) == 2 and 0 <= metrics["summary"]["dice"]["pooled"] <= 1
    rows = read_csv(out / "predictions.csv")
    manifest = {r["image"]: r for r in read_csv(ct_set / "manifest.csv")}
    from medtl.io.pseudonym import keyed_hash

    by_case = {keyed_hash(image, "case"): r for image, r in manifest.items()}
    for row in rows:
        truth = load_volume(ct_set / by_case[row["case_id"]]["mask"], as_label=True)
        predicted = load_volume(out / row["mask_file"], as_label=True)
        expected = segmentation_case_metrics(predicted.array, truth.array, 2, truth.spacing)
        assert float(row["dice"]) == pytest.approx(expected["dice"], abs=1e-6)
    dice = np.mean([float(r["dice"]) for r in rows if r["truth_empty"] == "0.0"])  # cases with a lesion
    assert metrics["summary"]["dice"]["pooled"] == pytest.approx(dice, abs=1e-6)
    assert metrics["summary"]["dice_all"]["pooled"] == pytest.approx(np.mean([float(r["dice"]) for r in rows]))


def test_a_series_that_kills_the_loader_is_skipped_after_two_crashes(cls_run, export, reference, tmp_path,
                                                                      monkeypatch, capsys):
    import medtl.predict.loading as loading

    victim = read_csv(reference / "predictions.csv")[5]["series_key"]
    real_load_item = loading.load_item

    def crashing_load_item(item, config, truth):
        if item.key == victim:
            os._exit(3)  # what a segfault in a native decoder looks like from outside
        return real_load_item(item, config, truth)

    monkeypatch.setattr(loading, "load_item", crashing_load_item)
    out = tmp_path / "out"
    command = ["predict", str(cls_run), str(export), "--out", str(out), "--quiet", "--workers", "1"]
    assert main(command) == 2
    assert "loader process died" in capsys.readouterr().err
    from medtl.predict.inflight import InflightMarks

    assert InflightMarks(out / "inflight").suspects() == {victim: 1}
    assert main(command) == 2  # retried alone first: the second crash names it
    assert main(command) == 0
    skipped = [r for r in read_csv(out / "skipped.csv") if r["series_key"] == victim]
    assert [r["reason"] for r in skipped] == ["LOADER_CRASHED"]
    rows = read_csv(out / "predictions.csv")
    assert len(rows) == 39 and victim not in {r["series_key"] for r in rows}
    assert not list((out / "inflight").iterdir())


def test_renamed_and_re_exported_training_images_still_count_as_overlap(cls_run, radiographs, tmp_path):
    rows = read_csv(radiographs / "manifest.csv")[:3]
    folder = tmp_path / "external"
    folder.mkdir()
    shutil.copy(radiographs / rows[0]["image"], folder / "renamed_copy.dcm")  # same bytes, other name
    ds = pydicom.dcmread(radiographs / rows[1]["image"])  # same pixels, new identity
    ds.SOPInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    ds.PatientName, ds.InstitutionName = "OTHER^SITE", "Hospital B"
    ds.save_as(folder / "re_exported.dcm")
    shutil.copy(radiographs / rows[2]["image"], folder / "real_other.dcm")
    other = pydicom.dcmread(folder / "real_other.dcm")
    other.PixelData = (other.pixel_array // 2).astype(other.pixel_array.dtype).tobytes()  # a different image
    other.save_as(folder / "real_other.dcm")
    names = ["renamed_copy.dcm", "re_exported.dcm", "real_other.dcm"]
    manifest = folder / "manifest.csv"
    manifest.write_text("image,label,patient_id\n" + "".join(f"{n},{r['label']},x{i}\n" for i, (n, r) in
                                                               enumerate(zip(names, rows))))
    assert main(["evaluate", str(cls_run), str(manifest), "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["training_overlap"] == 2


def test_a_folder_of_png_images_predicts_nothing_and_says_why_with_exit_2(cls_run, tmp_path, capsys):
    """Issue 28.18: a folder of PNGs predicted nothing and exited 0 (a 3D folder gave 2)."""
    import SimpleITK as sitk

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        sitk.WriteImage(sitk.GetImageFromArray(np.full((16, 16), 40 * i, np.uint8)), str(folder / f"x{i}.png"))
    assert main(["predict", str(cls_run), str(folder), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "nothing could be predicted" in error and "PNG image: list it in a manifest (image column)" in error
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(cls_run), str(empty), "--out", str(tmp_path / "out2"), "--quiet"]) == 2
    assert "holds no files" in capsys.readouterr().err  # already one line, exit 2


def test_predictions_from_a_manifest_carry_its_line(cls_run, radiographs, tmp_path):
    """Issue 28.13: predict/evaluate rows join back to the manifest by its line number (no patient data)."""
    assert main(["evaluate", str(cls_run), str(radiographs / "manifest.csv"), "--out", str(tmp_path / "e"),
                 "--quiet"]) == 0
    manifest = read_csv(radiographs / "manifest.csv")
    rows = read_csv(tmp_path / "e" / "predictions.csv")
    assert rows and all(manifest[int(r["manifest_row"]) - 2]["label"] == r["label"] for r in rows)


def test_the_python_api_predicts_and_evaluates_as_the_cli_does(cls_run, radiographs, tmp_path):
    """Issue 28.20: predict and evaluate from Python, with the CLI's code path and outputs."""
    import medtl

    options = medtl.PredictOptions(progress=False)
    outcome, inputs = medtl.predict_run(cls_run, radiographs / "manifest.csv", tmp_path / "api", options)
    assert main(["predict", str(cls_run), str(radiographs / "manifest.csv"), "--out", str(tmp_path / "cli"),
                 "--quiet"]) == 0
    assert read_csv(tmp_path / "api" / "predictions.csv") == read_csv(tmp_path / "cli" / "predictions.csv")
    assert len(outcome.rows) == len(inputs.items)
    external = medtl.evaluate_run(cls_run, radiographs / "manifest.csv", tmp_path / "eval", options)
    assert external.metrics == json.loads((tmp_path / "eval" / "metrics.json").read_text())
    with pytest.raises(medtl.MedtlError, match="is a `medtl cv` run folder"):
        medtl.predict_run(cls_run, radiographs / "manifest.csv", cls_run, options)  # the CLI's checks

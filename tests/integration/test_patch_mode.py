"""``data.mode: patch`` end to end: cv on patches, sliding-window scoring, predict/evaluate on the original grid."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from medtl.cli import main
from medtl.data.case_cache import CaseCache
from medtl.samples.sample_data import write_ct_set


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_manifest(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def ct_set(tmp_path_factory):
    """12 x 48 x 40 voxels at the run's spacing: larger than the 32^3 patch in-plane, smaller along the slices."""
    root = write_ct_set(tmp_path_factory.mktemp("ct"), 8, (12, 48, 40), seed=3)
    rows = read_csv(root / "manifest.csv")
    write_manifest(root / "manifest.csv", [{"case_id": f"case{i}", **row} for i, row in enumerate(rows)])
    return root


def run_cv(root, manifest, task, compare=(), **data):
    config = {"compare": list(compare), "task": task,
              "data": {"manifest": str(manifest), "dims": 3, "mode": "patch", "patch_size": [32, 32, 32],
                       "patches_per_case": 2, "spacing": [3.0, 0.9, 0.9], "intensity": "window", **data},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 1, "batch_size": 4}, "cv": {"folds": 2, "bootstrap": 100}}
    (root / "cv.yaml").write_text(yaml.safe_dump(config))
    assert main(["cv", str(root / "cv.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def seg_run(ct_set, tmp_path_factory):
    resize = {"name": "resize", "set": {"data.mode": "resize", "data.patch_size": None,
                                        "data.image_size": [12, 24, 20]}}
    return run_cv(tmp_path_factory.mktemp("seg"), ct_set / "manifest.csv", "segmentation", compare=[resize])



def entry_images(run):
    """The main arm's stored images: the shared cache entries the run recorded."""
    used = json.loads((run / "cache_entries.json").read_text())
    cache = CaseCache(used["cache"])
    return [cache.entry_folder(digest) / "image.npy" for digest in next(iter(used["entries"].values())).values()]

def test_segmentation_cv_trains_on_patches_and_scores_whole_volumes_in_mm(seg_run):
    metrics = json.loads((seg_run / "metrics.json").read_text())
    assert metrics["n_cases"] == 8 and set(metrics["summary"]) >= {"dice", "iou", "hd95"}
    done = json.loads(next(seg_run.glob("arms/*/*/done.json")).read_text())
    assert done["record"]["n_val"] == 4  # every validation case scored whole, not per patch
    report = (seg_run / "report.html").read_text()
    assert "patches of 32x32x32" in report and "12x48x40" in report
    stored = entry_images(seg_run)
    assert len(stored) == 8 and np.load(stored[0], mmap_mode="r").shape == (1, 12, 48, 40)


def test_an_arm_with_its_own_data_settings_trains_on_its_own_inputs_and_the_grids_are_named(seg_run):
    # the resize arm saw 12x24x20 volumes, not the main arm's native-extent cases
    report = (seg_run / "report.html").read_text()
    assert "arm resize (its own data settings)" in report and "12x24x20" in report
    metrics = json.loads((seg_run / "metrics.json").read_text())
    assert set(metrics["arms"]) == {"scratch", "resize"} and metrics["comparisons"][0]["b"] == "resize"
    assert any("different grids" in w and "resized to [12, 24, 20]" in w for w in metrics["warnings"])
    overlays = np.load(next(seg_run.glob("arms/resize/*/overlays.npz")))
    assert overlays["pred"].shape[1:] == (24, 20)  # the slice with most foreground, on the arm's own grid


def test_predicted_masks_lie_on_the_original_grid_and_equal_a_direct_sliding_window(seg_run, ct_set, tmp_path):
    from medtl.io import load_volume
    from medtl.models.sliding import network_logits
    from medtl.models.trained import load_trained_run
    from medtl.transforms.network_input import network_input

    out = tmp_path / "pred"
    assert main(["predict", str(seg_run), str(ct_set / "manifest.csv"), "--out", str(out), "--quiet",
                 "--workers", "0", "--fold", "0", "--probability-maps"]) == 0
    rows = {r["case_id"]: r for r in read_csv(out / "predictions.csv")}
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows.values())
    trained = load_trained_run(seg_run, fold=0)
    model = trained.build_models(torch.device("cpu"))[0]
    for index, row in enumerate(read_csv(ct_set / "manifest.csv")):
        source = load_volume(ct_set / row["image"])
        mask = load_volume(out / rows[row["case_id"]]["mask_file"], as_label=True)
        assert mask.array.shape == source.array.shape
        assert np.allclose(mask.affine, source.affine, atol=1e-4)
        if index < 3:  # by hand: preprocess, slide the fold model's windows, softmax (the grids coincide here)
            image = network_input(source, trained.config, row["case_id"]).sample["image"]
            with torch.no_grad():
                logits = network_logits(model, torch.as_tensor(np.asarray(image))[None], trained.config.data,
                                        torch.device("cpu"))
            expected = torch.softmax(logits, 1)[0, 1].numpy()
            foreground = load_volume(out / rows[row["case_id"]]["prob_files"]).array
            assert foreground.shape == expected.shape
            assert np.allclose(foreground, expected, atol=1e-4)
            assert np.array_equal(mask.array, (expected > 0.5).astype(mask.array.dtype))


def test_classification_on_whole_volumes_aggregates_window_logits(ct_set, tmp_path):
    run = run_cv(tmp_path, ct_set / "manifest.csv", "classification", aggregate="max")
    rows = read_csv(run / "predictions.csv")
    assert len(rows) == 8
    assert all(abs(float(r["prob_0"]) + float(r["prob_1"]) - 1) < 1e-5 for r in rows)
    assert "reduced by max" in (run / "report.html").read_text()
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(ct_set / "manifest.csv"), "--out", str(out), "--quiet",
                 "--workers", "0"]) == 0
    assert len(read_csv(out / "predictions.csv")) == 8


@pytest.fixture(scope="module")
def roi_set(ct_set, tmp_path_factory):
    """The CT set with an organ-like ROI mask per case; one case's ROI is empty."""
    root = tmp_path_factory.mktemp("roi")
    rows = read_csv(ct_set / "manifest.csv")
    for index, row in enumerate(rows):
        lesion = nib.load(ct_set / row["mask"])
        roi = np.zeros(lesion.shape, np.uint8)
        if index != 3:
            roi[10 + index:20 + index, 8:24, 2:8] = 1
        path = root / f"roi{index}.nii.gz"
        nib.save(nib.Nifti1Image(roi, lesion.affine, lesion.header), path)
        row["image"], row["mask"] = str(ct_set / row["image"]), str(path)
    write_manifest(root / "manifest.csv", rows)
    return root


def test_classification_with_a_mask_roi_crops_around_it_and_records_an_empty_roi(roi_set, tmp_path):
    run = run_cv(tmp_path, roi_set / "manifest.csv", "classification", roi="mask", patch_size=[32, 32, 32])
    skipped = read_csv(run / "skipped_cases.csv")
    assert [r["reason"] for r in skipped] == ["ROI_MASK_EMPTY"]
    assert "32x32x32" in (run / "report.html").read_text()
    shapes = {np.load(p, mmap_mode="r").shape for p in entry_images(run)}
    assert shapes == {(1, 32, 32, 32)}
    pred = tmp_path / "pred"
    assert main(["predict", str(run), str(roi_set / "manifest.csv"), "--out", str(pred), "--quiet",
                 "--workers", "0"]) == 0
    predicted = read_csv(pred / "predictions.csv")
    assert len(predicted) == 7 and [r["reason"] for r in read_csv(pred / "skipped.csv")] == ["ROI_MASK_EMPTY"]
    # a folder has no masks to crop around: refused before any work, with the way out
    assert main(["predict", str(run), str(roi_set), "--out", str(tmp_path / "refused"), "--quiet"]) != 0
    assert not (tmp_path / "refused").exists()


def test_2d_patch_mode_fine_tunes_a_source_pretrained_encoder(tmp_path):
    from pathlib import Path

    from medtl.samples.sample_data import write_sample_data

    data = write_sample_data(tmp_path / "sample", seed=0, size="tiny")  # 48 px radiographs
    config = Path(__file__).parents[2] / "configs" / "sample_seg2d.yaml"
    sets = [f"data.manifest={data / 'cls2d_target' / 'manifest.csv'}",
            f"source.manifest={data / 'cls2d_source' / 'manifest.csv'}", "source.epochs=1",
            "model.backbone=tiny-resnet", "train.epochs=1", "cv.folds=2", "cv.bootstrap=100", "compare=[]",
            "data.mode=patch", "data.patch_size=32", "data.patches_per_case=2"]
    out = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(out), "--quiet", *[a for s in sets for a in ("--set", s)]]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["main_arm"] == "source-pretrained"
    done = json.loads(next(out.glob("arms/source-pretrained/*/done.json")).read_text())
    assert done["adaptation"]["source"] == "checkpoint" and done["adaptation"]["loaded"]
    assert "patches of 32x32" in (out / "report.html").read_text()

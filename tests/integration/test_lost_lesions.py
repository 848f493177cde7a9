"""Issue 27.3: a lesion that vanishes when its mask is resized to the network grid is still a lesion: strata,
counts and the lesion/empty split use the mask as given; the case is not scored on that grid (never counted
lesion-free, never Dice 0), and the run says how many were lost and what to do."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from medtl.cli import main
from medtl.config import load_config
from medtl.data.dataset import prepare_cases
from medtl.data.manifest import read_config_manifest
from medtl.tasks import get_task


@pytest.fixture(scope="module")
def tiny_lesions(tmp_path_factory):
    """12 images of 128 px: 8 with a lesion (4 of them 1 pixel across, 4 of them 12 pixels), 4 without."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        image = (rng.random((128, 128)) * 200).astype(np.uint8)
        mask = np.zeros((128, 128), np.uint8)
        if i < 4:
            mask[61, 61] = 1  # one pixel: an area/nearest resize to 32 px samples (2 + 4k): it misses 61
        elif i < 8:
            mask[50:62, 50:62] = 1
            image[50:62, 50:62] = 250
        sitk.WriteImage(sitk.GetImageFromArray(image), str(root / f"img{i}.png"))
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(root / f"mask{i}.png"))
        rows.append({"image": f"img{i}.png", "mask": f"mask{i}.png", "patient_id": f"P{i}"})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


def _config(manifest, out):
    config = {"task": "segmentation", "data": {"manifest": str(manifest), "dims": 2, "image_size": [32, 32],
                                               "intensity": "range"},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 1, "batch_size": 4},
              "cv": {"folds": 2, "bootstrap": 100}}
    path = out.parent / "seg.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_prepared_cases_remember_the_lesion_the_resize_lost(tiny_lesions, tmp_path):
    config = load_config(_config(tiny_lesions, tmp_path / "run"))
    cases, skipped = prepare_cases(read_config_manifest(config), config, tmp_path / "cache", progress=False)
    assert not skipped
    lost = [c for c in cases if c.lost_foreground]
    assert len(lost) == 4 and all(c.had_foreground and not c.mask.any() for c in lost)
    seg = get_task("segmentation")
    assert sum(seg.stratum(c) for c in cases) == 8  # strata from the masks as given
    assert seg.data_counts(cases, [])["cases with foreground"] == 8
    warning = seg.preparation_warnings(cases)[0]
    assert warning.startswith("4 of 8 case(s) with a lesion have none left") and "data.mode: patch" in warning
    row = seg.case_row(lost[0], np.zeros((32, 32), np.int64), [], 2)
    assert row["truth_empty"] == 0.0 and np.isnan(row["dice"])  # a lesion case, unscorable here: not Dice 1 or 0
    again, _ = prepare_cases(read_config_manifest(config), config, tmp_path / "cache", progress=False)
    assert [c.source_foreground for c in again] == [c.source_foreground for c in cases]  # from the cache


def test_a_cv_run_never_counts_a_lost_lesion_as_lesion_free_and_says_so(tiny_lesions, tmp_path):
    path = _config(tiny_lesions, tmp_path / "run")
    assert main(["cv", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert any(w.startswith("4 of 8 case(s) with a lesion have none left") for w in metrics["warnings"])
    with open(tmp_path / "run" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sum(r["truth_empty"] == "0.0" for r in rows) == 8  # 8 lesion cases, 4 of them unscorable on this grid
    assert sum(r["dice"] == "" for r in rows if r["truth_empty"] == "0.0") == 4
    assert "have none left after preprocessing" in (tmp_path / "run" / "report.html").read_text()

"""A public-dataset layout: PNG images and PNG masks in a manifest, fixed 0-255 range, through cv and predict."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from medtl.cli import main
from medtl.io import load_volume
from medtl.samples.sample_sets import write_radiograph_set


@pytest.fixture(scope="module")
def png_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("png")
    source = write_radiograph_set(root / "dicom", n_patients=8, images_per_patient=2, size=32, seed=21)
    rows = []
    for row in csv.DictReader(open(source / "manifest.csv")):
        image = load_volume(source / row["image"]).array
        scaled = np.clip((image - image.min()) / (np.ptp(image) or 1) * 255, 0, 255).astype(np.uint8)
        name = row["image"].split("/")[-1].replace(".dcm", ".png")
        sitk.WriteImage(sitk.GetImageFromArray(scaled), str(root / name))
        mask = load_volume(source / row["mask"], as_label=True).array[0].astype(np.uint8)
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(root / f"mask_{name}"))
        rows.append({"image": name, "mask": f"mask_{name}", "label": row["label"], "patient_id": row["patient_id"]})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_png_datasets_train_and_predict(png_dataset, tmp_path, task, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"task: {task}\ndata: {{manifest: {png_dataset / 'manifest.csv'}, dims: 2, image_size: 32, "
                      "intensity: range, value_range: [0, 255]}\n"
                      "model: {backbone: tiny-resnet, pretrained: none}\n"
                      "train: {epochs: 1, batch_size: 8}\ncv: {folds: 2, bootstrap: 100}\n")
    assert main(["cv", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_cases"] == 16 and not any("skipped" in w for w in metrics["warnings"])
    # recorded once, as a note (every PNG lacks a spacing: expected, not a warning; issue 28.19)
    assert any("NO_PIXEL_SPACING" in n for n in metrics["notes"]) and not any("NO_PIXEL" in w for w in
                                                                             metrics["warnings"])
    assert main(["predict", str(tmp_path / "run"), str(png_dataset / "manifest.csv"), "--out",
                 str(tmp_path / "pred"), "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "pred" / "predictions.csv")))
    assert len(rows) == 16 and all(r["status"] in ("ok", "warn") for r in rows)
    capsys.readouterr()

"""Issue 27.6: under ``train.selection: best_inner`` the leave-one-site-out drop's reference is never the set the
epoch was chosen on: the training sites' held-out patients are split into a selection part and a disjoint
reference part, and on null sites (no site effect, no signal) the drop is centred on 0."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from medtl.cli import main

pytestmark = pytest.mark.heavy  # the heavy tier: `make test-heavy` (see the Makefile)


@pytest.fixture(scope="module")
def null_sites(tmp_path_factory):
    """Three sites of 16 patients each: noise images, coin-flip labels (balanced per site)."""
    root = tmp_path_factory.mktemp("null_sites")
    rng = np.random.default_rng(7)
    rows = []
    for site in ("a", "b", "c"):
        labels = rng.permutation([0, 1] * 8)
        for i, label in enumerate(labels):
            image = (rng.random((16, 16)) * 255).astype(np.uint8)
            name = f"{site}{i}.png"
            sitk.WriteImage(sitk.GetImageFromArray(image), str(root / name))
            rows.append({"image": name, "label": int(label), "patient_id": f"{site}-{i}", "site": site})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


def _run(manifest, out, seed):
    config = {"task": "classification", "data": {"manifest": str(manifest), "dims": 2, "image_size": [16, 16],
                                                 "augment": {"enabled": False}},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 6, "batch_size": 8, "lr": 0.01, "selection": "best_inner", "inner_fraction": 0.4,
                        "seed": seed},
              "cv": {"scheme": "leave_site_out", "bootstrap": 100}}
    path = out.parent / f"null{seed}.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["cv", str(path), "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_the_drop_reference_is_disjoint_from_the_selection_patients(null_sites, tmp_path):
    metrics = _run(null_sites, tmp_path / "run", seed=0)
    arm = metrics["main_arm"]
    for fold, site in enumerate(["a", "b", "c"]):
        images = json.loads((tmp_path / "run" / "arms" / arm / f"repeat0_fold{fold}" / "fold_images.json").read_text())
        reference = set(images["reference"]["patient_keys"])
        assert reference and images["selection"]["patient_keys"]
        for role in ("train", "selection", "scored"):
            assert not reference & set(images[role]["patient_keys"])
        drop = metrics["sites"]["drop"][arm][site]
        assert drop["n_held_out_patients"] == len(reference)
        assert drop["reference"] == "held-out patients of the training sites not used for model selection"


def test_on_null_sites_the_best_inner_drop_is_centred_on_zero(null_sites, tmp_path):
    drops = []
    for seed in range(8):
        metrics = _run(null_sites, tmp_path / f"run{seed}", seed=seed)
        drops += [d["drop"] for d in metrics["sites"]["drop"][metrics["main_arm"]].values()]
    drops = np.array(drops)
    standard_error = drops.std(ddof=1) / np.sqrt(len(drops))
    # here +0.023 (SE 0.049) over 24 drops; the old reference (the selection set itself: the max over epochs) gave
    # +0.083 (SE 0.037) on these sites and seeds
    assert abs(drops.mean()) < 2 * standard_error, (drops.mean(), standard_error)

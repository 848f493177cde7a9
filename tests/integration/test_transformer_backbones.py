"""ViT and Swin backbones end to end (cv, predict with Grad-CAM, evaluate; export with its parity gate for the ViT LoRA
runs), 2D and 3D, classification and segmentation: the merged LoRA model is what predict and export use."""

import json

import nibabel as nib
import numpy as np
import pytest
from safetensors import safe_open

from medtl.cli import main
from medtl.samples.sample_data import write_ct_set
from medtl.samples.sample_sets import write_radiograph_set
from tests.integration.test_predict_cli import read_csv, train

pytestmark = pytest.mark.heavy  # the heavy tier: `make test-heavy` (see the Makefile)


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory):
    return write_radiograph_set(tmp_path_factory.mktemp("xr"), n_patients=8, images_per_patient=2, size=40, seed=7)


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    return write_ct_set(tmp_path_factory.mktemp("ct"), 6, (12, 32, 32), seed=4)


_3D = {"data.dims": 3, "data.image_size": [16, 32, 32], "train.batch_size": 4}
RUNS = {  # ViT and Swin, 2D and 3D, classification and segmentation; LoRA on half of them
    "vit2d_lora": ("classification", {"model.backbone": "tiny-vit", "finetune.strategy": "lora"}),
    "vit2d_seg": ("segmentation", {"model.backbone": "tiny-vit"}),
    "vit3d_lora": ("classification", {"model.backbone": "tiny-vit", "finetune.strategy": "lora", **_3D}),
    "vit3d_seg": ("segmentation", {"model.backbone": "tiny-vit", **_3D}),
    "swin2d": ("classification", {"model.backbone": "tiny-swin"}),
    "swin2d_lora_seg": ("segmentation", {"model.backbone": "tiny-swin", "finetune.strategy": "lora"}),
    "swin3d": ("classification", {"model.backbone": "tiny-swin", **_3D}),
    "swin3d_lora_seg": ("segmentation", {"model.backbone": "tiny-swin", "finetune.strategy": "lora", **_3D}),
}  # SegResNet: its layout, LoRA merge and features are unit-tested; it shares the CNN paths end to end


@pytest.fixture(scope="module")
def runs(radiographs, ct, tmp_path_factory):
    return {name: train(tmp_path_factory.mktemp(name), (ct if "3d" in name else radiographs) / "manifest.csv",
                        task=task, **overrides) for name, (task, overrides) in RUNS.items()}


@pytest.mark.parametrize("name", list(RUNS))
def test_cv_predict_evaluate_and_export_work_and_lora_is_merged(name, runs, radiographs, ct, tmp_path):
    run = runs[name]
    data = (ct if "3d" in name else radiographs) / "manifest.csv"
    arm = "lora" if "lora" in name else next(p.name for p in (run / "arms").iterdir())
    models = sorted((run / "arms" / arm).rglob("model.safetensors"))
    assert len(models) == 2
    for path in models:
        with safe_open(str(path), "pt") as f:
            assert not any(".lora_" in k or ".base." in k for k in f.keys()), "the saved model is merged"
    record = json.loads(next((run / "arms" / arm).rglob("done.json")).read_text())["history"][0]
    if "lora" in name:  # adapters and head only (a segmentation decoder is most of a tiny network)
        share = 0.5 if RUNS[name][0] == "classification" else 0.9
        assert 0 < record["trainable_params"] < record["total_params"] * share
    else:
        assert record["trainable_params"] == record["total_params"]
    report = (run / "report.html").read_text()
    assert "Training cost per arm" in report and f"{record['trainable_params'] / 1e6:.3f}M" in report
    task = RUNS[name][0]
    explain = ["--explain", "gradcam"] if task == "classification" else []
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "p"), "--quiet", *explain]) == 0
    rows = read_csv(tmp_path / "p" / "predictions.csv")
    assert len(rows) == len(read_csv(data))
    if explain:  # a ViT's Grad-CAM hooks its token grid: maps with a spatial extent, not constants
        maps = [np.asarray(nib.load(tmp_path / "p" / r["explain_file"]).dataobj) for r in rows]
        assert any(float(np.ptp(m)) > 0 for m in maps), "Grad-CAM maps say where"
    assert main(["evaluate", str(run), str(data), "--out", str(tmp_path / "e"), "--quiet"]) == 0
    if name in ("vit2d_lora", "vit3d_lora"):  # a merged LoRA arm passes the export's parity gate (the ONNX export
        # of every new backbone, Swin included, is unit-tested: a 3D Swin export takes a minute on 2 cores)
        assert main(["export", str(run), "--out", str(tmp_path / "x"), "--quiet"]) == 0
        model_json = json.loads((tmp_path / "x" / "model.json").read_text())
        assert len(model_json["members"]) == 2

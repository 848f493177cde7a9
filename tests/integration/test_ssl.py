"""Self-supervised source stages end to end: checkpoint, leak guard, ignored labels, 3D restore, per-arm sources."""

import json
import shutil

import pytest
import yaml
from safetensors import safe_open

from medtl.cli import main
from medtl.models import create_model
from medtl.plumbing.atomic import read_csv, write_csv
from medtl.samples.pool_sets import write_unlabelled_pool
from medtl.samples.sample_sets import write_radiograph_set


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    write_radiograph_set(root / "target", n_patients=8, images_per_patient=2, size=40, seed=11)
    write_radiograph_set(root / "labelled_source", n_patients=6, images_per_patient=2, size=40, seed=12, task="side")
    write_unlabelled_pool(root / "pool", n_patients=10, images_per_patient=2, size=40, seed=13, probe_patients=6)
    return root


def config_file(path, data, **sections) -> str:
    config = {"task": "classification", "data": {"manifest": str(data / "target" / "manifest.csv"), "dims": 2,
                                                 "image_size": [32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "source"},
              "source": {"manifest": str(data / "pool" / "manifest.csv"), "task": "simclr", "epochs": 2,
                         "batch_size": 8},
              "ssl": {"probe_manifest": str(data / "pool" / "probe.csv")},
              "train": {"epochs": 1, "batch_size": 8}, "cv": {"folds": 2, "bootstrap": 100}, "compare": []}
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values} if isinstance(values, dict) else values
    path.write_text(yaml.safe_dump(config))
    return str(path)


def pretrain(config: str, out) -> dict:
    assert main(["pretrain", config, "--out", str(out), "--quiet"]) == 0
    with safe_open(str(out), "pt") as f:
        return {"metadata": f.metadata(), "keys": list(f.keys())}


@pytest.mark.parametrize("method", ["simclr", "byol", "restore"])
def test_checkpoint_carries_the_method_and_pool_hash_and_starts_any_model(method, data, tmp_path):
    config = config_file(tmp_path / "c.yaml", data, source={"task": method})
    saved = pretrain(config, tmp_path / "model.safetensors")
    meta = saved["metadata"]
    assert meta["ssl_method"] == meta["source_task"] == method
    assert len(meta["pool_sha256"]) == 64 and meta["backbone"] == "tiny-resnet" and meta["class_names"] == "[]"
    assert all(k.startswith("backbone.") for k in saved["keys"])  # the encoder only: no projector, no decoder
    for task in ("classification", "segmentation"):
        model = create_model("tiny-resnet", dims=2, num_classes=2, task=task,
                             pretrained=str(tmp_path / "model.safetensors"))
        backbone = [k for k in model.state_dict() if k.startswith("backbone.")]
        assert sorted(model.adaptation.loaded) == sorted(backbone)
        assert "no head" in model.adaptation.new["head.*"]


def test_the_pool_must_not_hold_target_images_unless_allowed(data, tmp_path, capsys):
    _, pool_rows = read_csv(data / "pool" / "manifest.csv")
    _, target_rows = read_csv(data / "target" / "manifest.csv")
    leaked = [{"image": str(data / "target" / r["image"]), "patient_id": f"renamed-{i}"}
              for i, r in enumerate(target_rows[:3])]  # copies under other ids: caught by pixels
    shutil.copyfile(data / "pool" / pool_rows[0]["image"], tmp_path / "extra.png")  # a target patient's other image
    leaked.append({"image": str(tmp_path / "extra.png"), "patient_id": target_rows[5]["patient_id"]})
    write_csv(tmp_path / "pool.csv", ["image", "patient_id"],
              [{"image": str(data / "pool" / r["image"]), "patient_id": r["patient_id"]} for r in pool_rows] + leaked)
    config = config_file(tmp_path / "c.yaml", data, source={"manifest": str(tmp_path / "pool.csv")})
    assert main(["pretrain", config, "--quiet"]) != 0
    assert ("4 source image(s) belong to the target run (3 with identical pixels, 0 with an identical network input "
            "after preprocessing (a re-export), 1 of its patients)" in capsys.readouterr().err)
    allowed = config_file(tmp_path / "a.yaml", data,
                          source={"manifest": str(tmp_path / "pool.csv"), "allow_target_images": True})
    out = tmp_path / "run"
    assert main(["cv", allowed, "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert any("transductive" in w for w in metrics["warnings"])
    assert any("transductive" in n for n in metrics["source_stages"][0]["notes"])
    assert "transductive" in (out / "report.html").read_text()


def test_labels_in_the_pool_are_ignored_and_reported(data, tmp_path):
    config = config_file(tmp_path / "c.yaml", data, source={"manifest": str(data / "labelled_source" / "manifest.csv"),
                                                            "task": "byol"})
    out = tmp_path / "run"
    assert main(["cv", config, "--out", str(out), "--quiet"]) == 0
    stage = json.loads((out / "metrics.json").read_text())["source_stages"][0]
    assert stage["method"] == "byol" and stage["n_labels_ignored"] == 12 and stage["n_cases"] == 12
    assert any("labels in 12 row(s): ignored" in n for n in stage["notes"])


def test_restore_pretrains_a_3d_encoder(tmp_path):
    from medtl.samples.sample_data import write_ct_set

    ct = write_ct_set(tmp_path / "ct", 4, (12, 32, 32), seed=3)
    config = {"task": "segmentation", "data": {"manifest": str(ct / "manifest.csv"), "dims": 3,
                                               "image_size": [12, 32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "source"},
              "source": {"manifest": str(ct / "manifest.csv"), "task": "restore", "epochs": 1, "batch_size": 2,
                         "allow_target_images": True}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    saved = pretrain(str(path), tmp_path / "m.safetensors")
    assert saved["metadata"]["dims"] == "3" and saved["metadata"]["ssl_method"] == "restore"


def test_each_arm_starts_from_its_own_source_stage_and_a_changed_pool_is_refused_on_resume(data, tmp_path, capsys):
    shutil.copytree(data / "pool", tmp_path / "pool")
    supervised = {"name": "supervised", "set": {"source.task": "classification", "source.manifest":
                                                str(data / "labelled_source" / "manifest.csv")}}
    config = config_file(tmp_path / "c.yaml", data, source={"manifest": str(tmp_path / "pool" / "manifest.csv")},
                         compare=["scratch", supervised])
    out = tmp_path / "run"
    assert main(["cv", config, "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    stages = {tuple(s["arms"]): s for s in metrics["source_stages"]}
    assert set(stages) == {("source-pretrained",), ("supervised",)}
    assert stages[("source-pretrained",)]["method"] == "simclr" and "method" not in stages[("supervised",)]
    assert stages[("source-pretrained",)]["fingerprint"] != stages[("supervised",)]["fingerprint"]
    env = json.loads((out / "env.json").read_text())
    files = {arm: entries[0]["sha256"] for arm, entries in env["weights"].items()}
    assert files["source-pretrained"] != files["supervised"]  # no arm inherits another arm's source model
    assert "Source pretraining" in (out / "report.html").read_text()
    # resuming the finished run with the same pool changes nothing; a changed pool is refused
    assert main(["cv", config, "--out", str(out), "--quiet"]) == 0
    columns, rows = read_csv(tmp_path / "pool" / "manifest.csv")
    write_csv(tmp_path / "pool" / "manifest.csv", columns, rows[:-2])
    assert main(["cv", config, "--out", str(out), "--quiet"]) != 0
    assert "source stage of arm 'source-pretrained' now gives model" in capsys.readouterr().err


def test_unusable_pool_images_are_left_out_and_said(data, tmp_path, capsys):
    _, rows = read_csv(data / "pool" / "manifest.csv")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    write_csv(tmp_path / "pool.csv", ["image", "patient_id"],
              [{"image": str(data / "pool" / r["image"]), "patient_id": r["patient_id"]} for r in rows] +
              [{"image": str(tmp_path / "missing.png"), "patient_id": "x1"},
               {"image": str(tmp_path / "broken.png"), "patient_id": "x2"}])
    config = config_file(tmp_path / "c.yaml", data, source={"manifest": str(tmp_path / "pool.csv"), "epochs": 1},
                         ssl={"probe_manifest": None})
    assert main(["pretrain", config, "--out", str(tmp_path / "m.safetensors")]) == 0
    printed = capsys.readouterr().out
    assert "note: 2 pool image(s) could not be used and were left out (FILE_NOT_FOUND 1" in printed


def test_a_labelled_source_holding_target_patients_is_refused_too(data, tmp_path, capsys):
    config = config_file(tmp_path / "c.yaml", data, source={"manifest": str(data / "target" / "manifest.csv"),
                                                            "task": "classification"})
    assert main(["pretrain", config, "--quiet"]) != 0
    assert "the labelled source manifest holds images of the target run: 16 source image(s)" in capsys.readouterr().err
    allowed = config_file(tmp_path / "a.yaml", data, source={"manifest": str(data / "target" / "manifest.csv"),
                                                             "task": "classification", "allow_target_images": True})
    assert main(["pretrain", allowed, "--out", str(tmp_path / "m.safetensors")]) == 0
    assert "optimistic" in capsys.readouterr().out

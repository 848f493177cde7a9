"""`medtl cv` run state: a resumed run is the same run, or it is refused before any training."""

import csv
import json
import shutil

import numpy as np
import pytest
import yaml

from medtl.cli import main
from medtl.data.case_cache import CaseCache
from medtl.rundir import RunDir
from medtl.samples.sample_sets import write_radiograph_set


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_radiograph_set(tmp_path_factory.mktemp("data"), n_patients=10, images_per_patient=2, size=40, seed=5)


def write_config(path, manifest, compare=(), **sections):
    raw = {"task": "classification", "data": {"manifest": str(manifest), "dims": 2, "image_size": 40},
           "model": {"backbone": "tiny-resnet", "pretrained": "none"},
           "train": {"epochs": 1, "batch_size": 8, "lr": 0.003}, "cv": {"folds": 2, "bootstrap": 100},
           "compare": list(compare)}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(raw))
    return path


def fold_files(run):
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in (run / "arms").glob("*/repeat*/*")}


def copy_dataset(dataset, target):
    shutil.copytree(dataset, target)
    return target / "manifest.csv"


def test_unchanged_rerun_resumes_identically_and_a_new_salt_is_refused(dataset, tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv")
    run = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0
    first = json.loads((run / "metrics.json").read_text())
    state = json.loads((run / "run.json").read_text())
    assert set(state["fingerprints"]) == {"config", "data", "splits"} and state["arms"] == ["scratch"]
    files = fold_files(run)
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0
    second = json.loads((run / "metrics.json").read_text())
    assert {k: v for k, v in first.items() if k != "warnings"} == {k: v for k, v in second.items() if k != "warnings"}
    assert fold_files(run) == files
    assert "splits read back from splits.csv" in (run / "log.txt").read_text()
    capsys.readouterr()
    monkeypatch.setenv("MEDTL_SALT", "another-salt")
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert "salt" in error and len(error.splitlines()) == 1
    assert fold_files(run) == files  # refused before any training


def test_a_changed_manifest_or_image_is_refused(dataset, tmp_path, capsys):
    manifest = copy_dataset(dataset, tmp_path / "data")
    config = write_config(tmp_path / "c.yaml", manifest)
    run = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0
    files = fold_files(run)
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + "\n")
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 2
    assert "missing now" in capsys.readouterr().err
    manifest.write_text("\n".join(lines) + "\n")
    relabelled = lines[:]
    cells = relabelled[1].split(",")
    cells[1] = "0" if cells[1] == "1" else "1"
    relabelled[1] = ",".join(cells)
    manifest.write_text("\n".join(relabelled) + "\n")  # a corrected label: same files, other truth
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 2
    assert "1 case(s) changed" in capsys.readouterr().err
    manifest.write_text("\n".join(lines) + "\n")
    image = tmp_path / "data" / lines[1].split(",")[0]
    image.write_bytes(image.read_bytes()[:-2] + b"\x07\x07")
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 2
    assert "changed" in capsys.readouterr().err
    assert fold_files(run) == files
    # refused although the shared cache still holds every entry the run used, the old image's included
    used = json.loads((run / "cache_entries.json").read_text())
    assert len(used["entries"]["scratch"]) == len(lines) - 1
    cache = CaseCache(used["cache"])
    assert all(cache.get(digest) is not None for digest in used["entries"]["scratch"].values())


def test_edited_splits_and_changed_settings_are_refused(dataset, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv")
    run = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0
    assert main(["cv", str(config), "--out", str(run), "--quiet", "--set", "cv.folds=3"]) == 2
    assert "cv.folds" in capsys.readouterr().err
    rows = list(csv.DictReader(open(run / "splits.csv")))
    rows[0]["fold"], rows[-1]["fold"] = rows[-1]["fold"], rows[0]["fold"]
    RunDir(run).write_splits(rows if rows[0]["fold"] != rows[-1]["fold"] else rows[::-1])
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 2
    assert "splits.csv was modified" in capsys.readouterr().err


def test_arm_configs_are_written_and_the_report_shows_the_network_size(dataset, tmp_path):
    arms = ["linear", {"name": "l2", "set": {"finetune.l2sp": 0.01}}]
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv", compare=arms)
    run = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0
    main_arm = yaml.safe_load((run / "arms" / "scratch" / "config.yaml").read_text())
    assert main_arm == yaml.safe_load((run / "config.yaml").read_text())
    l2 = yaml.safe_load((run / "arms" / "l2" / "config.yaml").read_text())
    assert l2["finetune"]["l2sp"] == 0.01 and {**l2, "finetune": main_arm["finetune"]} == main_arm
    report = (run / "report.html").read_text()
    assert "network input size (as trained)</td><td>40x40" in report
    log = (run / "log.txt").read_text()
    assert "l2 r0 fold 1 epoch 1/1" in log and "cv finished" in log


def test_a_missing_checkpoint_is_an_error_not_a_skipped_arm(dataset, tmp_path, capsys):
    (tmp_path / "my_source.safetensors").write_bytes(b"x")
    own = {"name": "own", "set": {"model.pretrained": "./my_sourse.safetensors"}}
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv", compare=[own])
    assert main(["cv", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "did you mean" in error and "my_source.safetensors" in error
    assert not (tmp_path / "run").exists()
    main_typo = write_config(tmp_path / "d.yaml", dataset / "manifest.csv", model={"pretrained": "imagnet"})
    assert main(["cv", str(main_typo), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "did you mean 'imagenet'" in capsys.readouterr().err


def test_an_arm_whose_weights_are_unavailable_offline_is_skipped_visibly(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MEDTL_WEIGHTS_MIRROR", "http://127.0.0.1:9")  # nothing listens: like being offline
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv", compare=["imagenet"],
                          model={"backbone": "resnet18"}, data={"image_size": 32})
    assert main(["cv", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert list(metrics["arms"]) == ["scratch"]
    assert any(w.startswith("arm 'imagenet' skipped") and "medtl weights import" in w for w in metrics["warnings"])


def test_a_run_that_failed_before_its_splits_can_be_rerun_with_a_fixed_config(dataset, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tmp_path / "no_such_manifest.csv")
    run = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 2
    assert "manifest not found" in capsys.readouterr().err
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv")
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0


@pytest.mark.parametrize("change, hint", [
    ({"compare": ["scrach"]}, "did you mean 'scratch'"),
    ({"model": {"backbone": "resnet19"}}, "did you mean 'resnet18'"),
    ({"model": {"pretrained": "imagenett"}}, "did you mean 'imagenet'"),
    ({"compare": ["medicalnet"], "model": {"backbone": "densenet121"}}, "no 'medicalnet' weights"),
])
def test_config_and_cv_refuse_what_cannot_run_before_writing_anything(dataset, tmp_path, capsys, change, hint):
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv", compare=change.pop("compare", ()), **change)
    assert main(["config", str(config)]) == 2
    assert hint in capsys.readouterr().err
    assert main(["cv", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert hint in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_main_arm_weights_that_cannot_be_had_claim_no_folder(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MEDTL_WEIGHTS_MIRROR", "http://127.0.0.1:9")
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv", model={"backbone": "resnet18",
                                                                                "pretrained": "imagenet"})
    assert main(["config", str(config)]) == 2  # issue 28.15: config said "will be downloaded" and exited 0
    out = capsys.readouterr()
    assert "cannot be had here" in out.err and "medtl weights import" in out.err and not out.out  # no dump first
    assert main(["cv", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "medtl weights import" in capsys.readouterr().err and not (tmp_path / "run").exists()


@pytest.mark.heavy
def test_without_a_terminal_every_epoch_is_one_plain_line_and_quiet_only_silences_the_console(dataset, tmp_path):
    import subprocess
    import sys

    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv", model={"pretrained": "source"},
                          source={"manifest": str(dataset / "manifest.csv"), "epochs": 2, "allow_target_images": True})
    result = subprocess.run([sys.executable, "-m", "medtl.cli", "cv", str(config), "--out", str(tmp_path / "a")],
                            capture_output=True, text=True)  # stderr is a pipe, as under nohup or Slurm
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stderr.splitlines() if " epoch " in line]
    assert any(line.startswith("medtl: INFO: source stage (classification) epoch 2/2 loss") for line in epochs)
    assert any("source-pretrained r0 fold 1 epoch 1/1 loss" in line and line.endswith(" s); ETA 0 s")
               for line in epochs)  # the last epoch: nothing left but a moment
    assert all("; ETA " in line for line in epochs)
    quiet = subprocess.run([sys.executable, "-m", "medtl.cli", "cv", str(config), "--out", str(tmp_path / "b"),
                            "--quiet"], capture_output=True, text=True)
    assert quiet.returncode == 0 and " epoch " not in quiet.stderr
    log = (tmp_path / "b" / "log.txt").read_text()
    assert "source stage" in log and "source-pretrained r0 fold 0 epoch 1/1" in log



def test_a_missing_file_names_its_manifest_line_and_only_keep_paths_shows_the_path(dataset, tmp_path, capsys):
    manifest = copy_dataset(dataset, tmp_path / "data")
    lines = manifest.read_text().splitlines()
    missing = tmp_path / "data" / lines[3].split(",")[0]
    missing.unlink()
    config = write_config(tmp_path / "c.yaml", manifest)
    assert main(["cv", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    skipped = read_csv_rows(tmp_path / "a" / "skipped_cases.csv")
    assert skipped[0]["reason"] == "FILE_NOT_FOUND" and "manifest line 4" in skipped[0]["detail"]
    assert missing.name not in skipped[0]["detail"]
    assert main(["cv", str(config), "--out", str(tmp_path / "b"), "--quiet", "--keep-paths"]) == 0
    assert missing.name in read_csv_rows(tmp_path / "b" / "skipped_cases.csv")[0]["detail"]
    capsys.readouterr()


def read_csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_eta_plans_only_the_epochs_that_will_run(dataset, tmp_path, monkeypatch):
    """Issue 28.12: the ETA counted an arm skipped later (offline imagenet) and the folds a resume never trains."""
    from medtl.plumbing import eta

    plans = []
    real = eta.WorkEstimate.__init__

    def record(self, planned, *args, **kwargs):
        plans.append(dict(planned))
        real(self, planned, *args, **kwargs)

    monkeypatch.setattr(eta.WorkEstimate, "__init__", record)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MEDTL_WEIGHTS_MIRROR", "http://127.0.0.1:9")  # nothing listens: like being offline
    config = write_config(tmp_path / "c.yaml", dataset / "manifest.csv", compare=["imagenet"],
                          model={"backbone": "resnet18"}, data={"image_size": 32}, train={"epochs": 2})
    run = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0
    assert plans[-1] == {"scratch": 2 * 2}  # 2 folds x 2 epochs; the imagenet arm is known to be skipped
    log = (run / "log.txt").read_text()
    assert log.index("arm 'imagenet' will be skipped") < log.index("scratch r0 fold 0 epoch 1/2")
    shutil.rmtree(run / "arms" / "scratch" / "repeat0_fold1")
    (run / "metrics.json").unlink()
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0
    assert plans[-1] == {"scratch": 2}  # only the fold the resume trains


def test_config_runs_the_checks_cv_runs_and_says_them_first(dataset, tmp_path, monkeypatch, capsys):
    """Issue 28.15: `medtl config` passed missing image files and missing patient ids and exited 0."""
    import csv

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MEDTL_WEIGHTS_MIRROR", "http://127.0.0.1:9")
    manifest = copy_dataset(dataset, tmp_path / "data")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    (manifest.parent / rows[2]["image"]).unlink()
    config = write_config(tmp_path / "c.yaml", manifest)
    assert main(["config", str(config)]) == 1  # cv would run, skipping one case
    out = capsys.readouterr()
    first = out.err.splitlines()[0]
    assert first.startswith("medtl: warning: 1 case(s) FILE_NOT_FOUND (image): manifest line(s) 4;")
    assert "task: classification" in out.out and f"{len(rows) - 1} of {len(rows)} cases usable" in out.err

    offline_extra = write_config(tmp_path / "d.yaml", manifest, compare=["imagenet"], model={"backbone": "resnet18"})
    assert main(["config", str(offline_extra)]) == 1
    assert "arm 'imagenet' would be skipped" in capsys.readouterr().err

    # without a patient_id column the DICOM headers' PatientID serves (read during cv); PNGs have none
    headers = tmp_path / "data" / "headers.csv"
    with open(headers, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "label"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert main(["config", str(write_config(tmp_path / "e.yaml", headers))]) == 1  # only the missing file
    assert "patients read from the DICOM headers during cv" in capsys.readouterr().err
    from skimage.io import imsave

    pngs = tmp_path / "data" / "pngs.csv"
    for k in range(6):
        imsave(tmp_path / "data" / f"x{k}.png", np.full((8, 8), 40 * k, np.uint8), check_contrast=False)
    pngs.write_text("image,label\n" + "".join(f"x{k}.png,{k % 2}\n" for k in range(6)))
    assert main(["config", str(write_config(tmp_path / "g.yaml", pngs))]) == 2
    out = capsys.readouterr()
    assert "6 case(s) NO_PATIENT_ID" in out.err and "add a patient_id column" in out.err and not out.out

    few = write_config(tmp_path / "f.yaml", manifest, cv={"folds": 50})
    assert main(["config", str(few)]) == 2
    assert "usable patients for cv.folds: 50" in capsys.readouterr().err

"""Hostile and unlucky inputs, generated here, against every command.

Mutants: byte flips and truncation of DICOM and NIfTI files, absurd declared sizes,
NaN rescale values / voxels / voxel sizes, dangling links and link loops, unreadable
files and folders, manifest ids that try to escape ``--out`` and spreadsheet formula
cells. For each command: exit 0 or 2 and no traceback, every file accounted for,
nothing written outside ``--out``, peak memory bounded, and no planted patient
string (name, id, folder name) in any output or log.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medtl.cli import main
from medtl.samples.sample_sets import write_radiograph_set

PHI = ("DOE", "JOHN", "12345", "19700101")
GUARD_MB = 256


def plant_patient_data(folder: Path) -> None:
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JOHN", "DOE-12345", "19700101"
        ds.save_as(path)


def mutate_export(export: Path, rng: np.random.Generator) -> None:
    """Turn a clean export into a hostile one (in place)."""
    images = sorted((export / "DOE^JOHN_12345").glob("*.dcm"))
    for path in images[:3]:  # byte flips in the header region and in the pixels
        data = bytearray(path.read_bytes())
        for position in rng.integers(132, len(data), 40):
            data[position] ^= 0xFF
        path.write_bytes(bytes(data))
    images[3].write_bytes(images[3].read_bytes()[: len(images[3].read_bytes()) // 3])  # truncated
    ds = pydicom.dcmread(images[4])
    ds.NumberOfFrames, ds.Rows, ds.Columns = 1_000_000, 4096, 4096  # a small file declaring terabytes
    ds.save_as(images[4])
    ds = pydicom.dcmread(images[5])
    ds.RescaleSlope = "NaN"
    ds.save_as(images[5])
    ds = pydicom.dcmread(images[6])
    ds.NumberOfFrames = -3
    ds.save_as(images[6])
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.full((8, 8, 4), np.nan, np.float32), affine), export / "nan_voxels.nii.gz")
    header = nib.Nifti1Image(np.ones((8, 8, 4), np.float32), affine).header.copy()
    header["sform_code"], header["qform_code"] = 0, 0  # no transform: the geometry is pixdim alone, which is NaN
    header["pixdim"][1] = np.nan
    header["vox_offset"] = 352
    (export / "nan_pixdim.nii").write_bytes(header.binaryblock + b"\0" * 4 + np.ones((8, 8, 4), "<f4").tobytes("F"))
    big = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), affine)
    big.header.set_data_shape((4096, 4096, 4096))  # declares 64 G voxels; holds 8 bytes
    raw = big.header.binaryblock + b"\0" * 8
    (export / "huge.nii").write_bytes(raw)
    good = nib.Nifti1Image(np.ones((8, 8, 4), np.float32), affine)
    nib.save(good, export / "truncated.nii.gz")
    payload = (export / "truncated.nii.gz").read_bytes()
    (export / "truncated.nii.gz").write_bytes(payload[: len(payload) // 2])
    nib.save(nib.Nifti1Image(np.ones((8, 8, 0), np.float32), affine), export / "empty.nii")
    (export / "dangling.dcm").symlink_to(export / "does_not_exist.dcm")
    os.symlink("loop_b", export / "loop_a")
    os.symlink("loop_a", export / "loop_b")
    locked = export / "locked"
    locked.mkdir()
    (locked / "inside.dcm").write_bytes(images[7].read_bytes())
    unreadable = export / "unreadable.dcm"
    shutil.copy(images[8], unreadable)
    unreadable.chmod(0)
    locked.chmod(0)
    (export / "notes.txt").write_text("patient DOE^JOHN, DOB 19700101")


def tree_state(root: Path, *excluded: Path) -> dict:
    """Every path under ``root`` outside the ``excluded`` folders, with its size and modification time."""
    skip = {os.path.abspath(p) for p in excluded}
    state = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.abspath(Path(folder) / d) not in skip]
        for name in names + dirs:
            path = Path(folder) / name
            if os.path.abspath(path) in skip:
                continue
            try:
                info = path.lstat()
            except OSError:
                continue
            state[str(path)] = (info.st_size, info.st_mtime_ns)
    return state


def assert_no_phi(folder: Path, *texts: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix != ".dcm":  # a DICOM-SEG carries the source's patient data by design
            content = path.read_bytes()
            assert not any(s.encode() in content for s in PHI), path
    for text in texts:
        assert not any(s in text for s in PHI), text[:500]


# ru_maxrss survives fork + exec (it would report pytest's own peak): the process's VmHWM starts afresh with
# its address space; its loader/header workers are forked from it, so their ru_maxrss is theirs.
_MEASURED = ("import re, resource, sys\n"
             "from medtl.cli import main\n"
             "code = main(sys.argv[1:])\n"
             "own = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
             "workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
             "sys.stderr.write(f'\\nPEAK_MB={max(own, workers) // 1024}\\n')\n"
             "sys.exit(code)\n")


def run_cli(args: list[str], env: dict) -> tuple[int, str, int]:
    """Run ``medtl`` in a child process: (exit code, its output, its peak memory and its workers', in MB)."""
    result = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, env=env,
                            timeout=300)
    output = result.stderr + result.stdout
    peak = int(output.rsplit("PEAK_MB=", 1)[1].split()[0]) if "PEAK_MB=" in output else 10**9
    return result.returncode, output.replace(f"PEAK_MB={peak}", ""), peak


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = write_radiograph_set(root / "train", n_patients=8, images_per_patient=2, size=32, seed=11)
    config = root / "seg.yaml"
    config.write_text(f"task: segmentation\ndata: {{manifest: {data / 'manifest.csv'}, dims: 2, image_size: 32}}\n"
                      "model: {backbone: tiny-resnet, pretrained: none}\n"
                      "train: {epochs: 1, batch_size: 8}\ncv: {folds: 2, bootstrap: 100}\n")
    assert main(["cv", str(config), "--out", str(root / "run"), "--quiet"]) == 0
    export = root / "export"
    clean = write_radiograph_set(root / "clean", n_patients=6, images_per_patient=2, size=32, seed=12)
    shutil.copytree(clean / "images", export / "DOE^JOHN_12345")
    plant_patient_data(export / "DOE^JOHN_12345")
    mutate_export(export, np.random.default_rng(0))
    yield root, export, clean
    for path in (export / "locked", export / "unreadable.dcm"):
        path.chmod(0o755)


def test_scan_and_predict_survive_a_hostile_export(workspace):
    root, export, _ = workspace
    env = {**os.environ, "MEDTL_MAX_VOLUME_MB": str(GUARD_MB)}
    before = tree_state(root, root / "out_scan", root / "out_predict")
    code, log, peak = run_cli(["scan", str(export), "--out", str(root / "out_scan")], env)
    assert code == 0 and "Traceback" not in log, log
    assert peak < 300, f"scan peaked at {peak} MB"  # 54 MB measured; a 1 KB file once cost 432 MB
    summary = json.loads((root / "out_scan" / "scan.json").read_text())
    entries = sum(len(names) for _, _, names in os.walk(export))
    entries += sum(1 for d, dirs, _ in os.walk(export) for name in dirs if not os.access(Path(d) / name, os.R_OK))
    assert summary["files_found"] == entries
    assert summary["files_in_series"] + summary["files_skipped"] == summary["files_found"]
    reasons = set(summary["skipped_by_reason"])
    assert {"TOO_LARGE", "NON_FINITE_VALUES", "BROKEN_LINK", "NOT_DICOM", "NO_GEOMETRY", "EMPTY_IMAGE"} <= reasons
    assert reasons & {"NIFTI_TRUNCATED", "IMAGE_UNREADABLE"} and reasons & {"TRUNCATED_PIXEL_DATA", "BAD_VALUE"}
    if os.geteuid() != 0:  # root reads everything: permissions cannot be tested as root
        assert "PERMISSION_DENIED" in reasons

    code, log, peak = run_cli(["predict", str(root / "run"), str(export), "--out", str(root / "out_predict"),
                               "--workers", "1"], env)
    assert code == 0 and "Traceback" not in log, log
    assert peak < 1200, f"predict peaked at {peak} MB"  # 531 MB measured (torch + models + 1 worker)
    result = json.loads((root / "out_predict" / "predict.json").read_text())
    assert result["files_predicted"] + result["files_skipped"] == result["files_in_shard"] == entries
    assert tree_state(root, root / "out_scan", root / "out_predict") == before  # nothing written outside --out
    assert_no_phi(root / "out_scan", log)
    assert_no_phi(root / "out_predict")


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


HOSTILE_IDS = ["../../../escaped", "/tmp/medtl_hostile_abs", "..", "=HYPERLINK(\"http://x\")", "+1+1", "@SUM(1)",
               "-2+3", "a/b\\c", "DOE^JOHN_12345/x"]


def test_hostile_case_ids_stay_inside_out_and_formula_cells_are_neutralised(workspace, capsys):
    root, _, clean = workspace
    source = list(csv.DictReader(open(clean / "manifest.csv")))
    rows = [{"image": str(clean / r["image"]), "mask": str(clean / r["mask"]), "label": r["label"],
             "patient_id": r["patient_id"], "case_id": case_id} for r, case_id in zip(source, HOSTILE_IDS)]
    manifest = write_manifest(root / "hostile.csv", rows)
    outs = [root / name for name in ("out_eval", "out_pred_ids", "shard1", "shard2", "merged")]
    victim = root / "victim.txt"
    victim.write_text("must survive")
    before = tree_state(root, *outs)
    assert main(["evaluate", str(root / "run"), str(manifest), "--out", str(root / "out_eval"), "--quiet"]) == 0
    assert not Path("/tmp/medtl_hostile_abs").exists()
    assert not any(p.exists() for p in (root.parent / "escaped", root.parent.parent / "escaped", root / "escaped"))
    masks = sorted(p.name for p in (root / "out_eval" / "masks").iterdir())
    assert len(masks) == len(HOSTILE_IDS) and all("/" not in m and not m.startswith(".") for m in masks)
    text = (root / "out_eval" / "predictions.csv").read_text()
    for formula in ("=HYPERLINK", "+1+1", "@SUM(1)", "-2+3"):
        assert f"\n{formula}" not in text and f",{formula}" not in text and f"'{formula}" in text
    assert main(["predict", str(root / "run"), str(manifest), "--out", str(root / "out_pred_ids"), "--quiet"]) == 0
    shards = []
    for index in (1, 2):
        shard = root / f"shard{index}"
        assert main(["predict", str(root / "run"), str(manifest), "--out", str(shard), "--quiet",
                     "--shard", f"{index}/2"]) == 0
        shards.append(str(shard))
    tampered = Path(shards[0]) / "predictions.csv"
    lines = tampered.read_text().splitlines()
    if len(lines) > 1:
        header = lines[0].split(",")
        cells = next(csv.reader([lines[1]]))
        cells[header.index("mask_file")] = str(victim)
        lines[1] = ",".join(f'"{c}"' for c in cells)
        tampered.write_text("\n".join(lines) + "\n")
        assert main(["merge", *shards, "--out", str(root / "merged")]) == 2
        assert victim.read_text() == "must survive"
    assert tree_state(root, *outs) == before  # nothing written or deleted outside the --out folders
    capsys.readouterr()


def test_nan_input_is_never_predicted_and_never_trains(workspace, tmp_path, capsys):
    root, _, clean = workspace
    nan_image = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(np.full((32, 32, 1), np.nan, np.float32), np.eye(4)), nan_image)
    source = list(csv.DictReader(open(clean / "manifest.csv")))
    rows = [{"image": str(nan_image), "mask": str(clean / source[0]["mask"]), "label": "1", "patient_id": "p-nan"}]
    rows += [{"image": str(clean / r["image"]), "mask": str(clean / r["mask"]), "label": r["label"],
              "patient_id": r["patient_id"]} for r in source]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    assert main(["predict", str(root / "run"), str(manifest), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    skipped = list(csv.DictReader(open(tmp_path / "p" / "skipped.csv")))
    assert [r["reason"] for r in skipped] == ["NON_FINITE_VALUES"]
    config = tmp_path / "c.yaml"
    config.write_text(f"task: classification\ndata: {{manifest: {manifest}, dims: 2, image_size: 32}}\n"
                      "model: {backbone: tiny-resnet, pretrained: none}\n"
                      "train: {epochs: 1, batch_size: 8}\ncv: {folds: 2, bootstrap: 100}\n")
    assert main(["cv", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_cases"] == len(source) and any("NON_FINITE_VALUES" in w for w in metrics["warnings"])
    capsys.readouterr()


def test_unwritable_or_full_output_is_one_clear_error(workspace, tmp_path, monkeypatch, capsys):
    root, _, clean = workspace
    code, log, _ = run_cli(["scan", str(clean / "images"), "--out", f"/sys/medtl_out_{os.getpid()}"],
                           dict(os.environ))  # sysfs refuses new entries, even to root
    assert code == 2 and "Traceback" not in log and "cannot read or write" in log
    import errno

    import medtl.plumbing.atomic as atomic

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[-1]))

    monkeypatch.setattr(atomic.os, "replace", disk_full)
    assert main(["scan", str(clean / "images"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "No space left on device" in error and error.count("\n") == 1
    assert not [p for p in (tmp_path / "o").rglob("*") if p.is_file()]  # no half-written output left behind


def ctrl_c_enabled() -> None:
    """In the child before it starts: SIGINT acts as Ctrl-C even when this test runs as a background job.

    A shell starts background jobs with SIGINT ignored, and Python (so medtl) keeps an
    ignored SIGINT ignored, as it should; the test is about what Ctrl-C does.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.heavy
def test_ctrl_c_and_sigterm_print_one_line_and_the_run_resumes(workspace, tmp_path):
    import signal
    import time

    root, _, clean = workspace
    config = tmp_path / "c.yaml"
    config.write_text(f"task: classification\ndata: {{manifest: {clean / 'manifest.csv'}, dims: 2, image_size: 32}}\n"
                      "model: {backbone: tiny-resnet, pretrained: none}\n"
                      "train: {epochs: 2000, batch_size: 4}\ncv: {folds: 2, bootstrap: 100}\n")  # never finishes here
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-m", "medtl.cli", "cv", str(config), "--out", str(out), "--quiet"],
                             stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_enabled)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("arms/*/*/state.pt")):
        time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143 and "Traceback" not in stderr, stderr[-4000:]
    assert stderr.strip().splitlines()[-1].startswith("medtl: interrupted; re-run the same command to resume")
    epochs_before = (out / "log.txt").read_text().count(" epoch ")
    child = subprocess.Popen([sys.executable, "-m", "medtl.cli", "cv", str(config), "--out", str(out), "--quiet"],
                             stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_enabled)
    resumed_by = time.time() + 120  # its own deadline: a slow first phase must not cut this one short
    while time.time() < resumed_by and (out / "log.txt").read_text().count(" epoch ") <= epochs_before:
        time.sleep(0.2)  # resumed and training again
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130 and "Traceback" not in stderr, stderr[-4000:]
    assert not [p for p in out.rglob(".tmp-*")]

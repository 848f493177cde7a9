"""medtl export: exported networks give the PyTorch answers (the gate), predict on an export equals predict on
the run, a perturbed export is refused, and the card carries no patient data."""

import builtins
import json

import nibabel as nib
import numpy as np
import pytest

from medtl.cli import main
from medtl.errors import MedtlError
from medtl.export.spec import read_spec
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


RUNS = {
    "cls2d": ("classification", {}),
    "seg2d": ("segmentation", {"data.image_size": [40, 40]}),
    "cls3d": ("classification", {"data.dims": 3, "data.image_size": [12, 32, 32], "train.batch_size": 4}),
    "seg3d": ("segmentation", {"data.dims": 3, "data.image_size": [12, 32, 32], "train.batch_size": 4}),
    "seg3d_patch": ("segmentation", {"data.dims": 3, "data.mode": "patch", "data.patch_size": [32, 32, 32],
                                     "data.image_size": [12, 32, 32], "train.batch_size": 2}),
}


@pytest.fixture(scope="module")
def runs(radiographs, ct, tmp_path_factory):
    out = {}
    for name, (task, overrides) in RUNS.items():
        manifest = (ct if "3d" in name else radiographs) / "manifest.csv"
        out[name] = train(tmp_path_factory.mktemp(name), manifest, task=task, **overrides)
    return out


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    out = {}
    for name, run in runs.items():
        target = tmp_path_factory.mktemp(f"export_{name}") / "export"
        assert main(["export", str(run), "--out", str(target), "--quiet"]) == 0
        out[name] = target
    return out


@pytest.mark.parametrize("name", list(RUNS))
def test_every_exported_network_passed_the_gate_and_is_described(name, exports, runs):
    export = exports[name]
    model = json.loads((export / "model.json").read_text())
    assert model["parity"]["passed"] and model["parity"]["max_abs_error"] <= 1e-4
    assert model["parity"]["n_cases"] == len(read_csv(runs[name] / "predictions.csv"))  # every validation case
    assert model["format"] == "onnx" and model["opset"] == 18 and len(model["members"]) == 2
    assert all((export / m["file"]).is_file() for m in model["members"])
    assert sorted(p.name for p in export.iterdir() if not p.name.endswith(".onnx")) == [
        "model.json", "model_card.html", "model_card.md", "preprocessing.json", "preprocessing.schema.json"]
    spec = read_spec(export / "preprocessing.json")
    run_config = json.loads(json.dumps(spec.config().data.model_dump(mode="json")))
    assert run_config["image_size"] == RUNS[name][1].get("data.image_size", [32, 32])
    assert spec.network.input_shape[:2] == ["batch", 1]


def predictions_agree(a, b):
    rows_a, rows_b = read_csv(a / "predictions.csv"), read_csv(b / "predictions.csv")
    assert [r["case_id"] for r in rows_a] == [r["case_id"] for r in rows_b] and rows_a
    for x, y in zip(rows_a, rows_b):
        for key in x:
            if (key.startswith("prob_") or key in ("dice", "iou")) and (x[key] or y[key]):
                assert float(x[key]) == pytest.approx(float(y[key]), abs=1e-5), key
            elif key not in ("reasons", "model_id"):
                assert x[key] == y[key], key


@pytest.mark.parametrize("name", ["cls2d", "seg3d", "seg3d_patch"])
def test_predict_from_the_export_equals_predict_from_the_run(name, exports, runs, radiographs, ct, tmp_path):
    manifest = (ct if "3d" in name else radiographs) / "manifest.csv"
    assert main(["predict", str(exports[name]), str(manifest), "--out", str(tmp_path / "e"), "--quiet"]) == 0
    assert main(["predict", str(runs[name]), str(manifest), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    predictions_agree(tmp_path / "e", tmp_path / "r")
    # the export's id covers its preprocessing and ONNX files; model.json links it to the run's id
    model = json.loads((exports[name] / "model.json").read_text())
    assert {r["model_id"] for r in read_csv(tmp_path / "e" / "predictions.csv")} == {model["model_id"]}
    assert {r["model_id"] for r in read_csv(tmp_path / "r" / "predictions.csv")} == {model["run_model_id"]}
    for mask in (tmp_path / "r" / "masks").glob("*.nii.gz"):
        ours, theirs = nib.load(mask), nib.load(tmp_path / "e" / "masks" / mask.name)
        assert np.array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj))
        assert np.allclose(ours.affine, theirs.affine)


def test_torch_export_passes_the_gate_but_predict_runs_only_onnx(runs, radiographs, tmp_path, capsys):
    target = tmp_path / "pt2"
    assert main(["export", str(runs["cls2d"]), "--out", str(target), "--format", "torch-export", "--fold", "1",
                 "--quiet"]) == 0
    model = json.loads((target / "model.json").read_text())
    assert model["format"] == "torch-export" and [m["name"] for m in model["members"]] == ["repeat0_fold1"]
    assert model["parity"]["passed"] and model["parity"]["max_abs_error"] <= 1e-4
    # torch.export.load unpickles: a .pt2 from a folder is never loaded by predict
    assert main(["predict", str(target), str(radiographs / "manifest.csv"), "--out", str(tmp_path / "e")]) != 0
    assert "runs ONNX exports only" in capsys.readouterr().err and not (tmp_path / "e").exists()


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_an_export_prints_no_torch_deprecation_notices(fmt, runs, tmp_path):
    """Issue 28.19: torch's notices about its own internals were printed as WARNING lines during export."""
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["export", str(runs["cls2d"]), "--out", str(tmp_path / "x"), "--format", fmt, "--fold", "0",
                     "--quiet"]) == 0
    assert not [w for w in seen if issubclass(w.category, (FutureWarning, DeprecationWarning))], seen


def test_a_network_that_differs_after_export_fails_the_gate_and_leaves_nothing(runs, tmp_path, monkeypatch, capsys):
    import onnx
    from onnx import numpy_helper

    import medtl.workflows.export as workflow

    original = workflow.write_network

    def perturbed(model, path, fmt, example):
        original(model, path, fmt, example)
        graph = onnx.load(str(path))
        weights = max(graph.graph.initializer, key=lambda t: np.prod(t.dims))
        changed = numpy_helper.to_array(weights) * 1.05  # a 5% different layer
        weights.CopyFrom(numpy_helper.from_array(changed.astype(np.float32), weights.name))
        onnx.save(graph, str(path))

    monkeypatch.setattr(workflow, "write_network", perturbed)
    target = tmp_path / "bad"
    assert main(["export", str(runs["cls2d"]), "--out", str(target), "--quiet"]) != 0
    assert "parity gate failed" in capsys.readouterr().err
    assert not target.exists()


def test_a_tampered_export_file_and_arm_options_are_refused(exports, radiographs, tmp_path, capsys):
    manifest = str(radiographs / "manifest.csv")
    assert main(["predict", str(exports["cls2d"]), manifest, "--out", str(tmp_path / "a"), "--fold", "0"]) != 0
    assert "exported model" in capsys.readouterr().err
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(exports["cls2d"], copy)
    network = next(copy.glob("*.onnx"))
    network.write_bytes(network.read_bytes() + b"\0")
    assert main(["predict", str(copy), manifest, "--out", str(tmp_path / "b")]) != 0
    assert "sha256 mismatch" in capsys.readouterr().err


def test_the_card_has_metrics_and_caveats_but_no_patient_data(exports, runs, radiographs):
    card = (exports["cls2d"] / "model_card.md").read_text() + (exports["cls2d"] / "model_card.html").read_text()
    metrics = json.loads((runs["cls2d"] / "metrics.json").read_text())
    assert f"{metrics['summary']['auc']['pooled']:.3f}" in card and "Intended use" in card
    assert "Licence of the starting weights" in card and "Parity gate passed" in card
    patient_ids = {row["patient_id"] for row in read_csv(radiographs / "manifest.csv")}
    assert not any(pid in card for pid in patient_ids) and "SYNTH" not in card
    assert str(radiographs) not in card


def test_missing_onnx_names_the_extra(monkeypatch):
    from medtl.export.extra import require_onnx

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(MedtlError, match=r"pip install 'medtl\[export\]'"):
        require_onnx()


def test_a_re_export_replaces_the_old_one_and_foreign_folders_are_refused(runs, tmp_path, capsys):
    target = tmp_path / "x"
    assert main(["export", str(runs["cls2d"]), "--out", str(target), "--quiet"]) == 0
    assert len(list(target.glob("*.onnx"))) == 2
    assert main(["export", str(runs["cls2d"]), "--out", str(target), "--fold", "1", "--quiet"]) == 0
    assert sorted(p.name for p in target.glob("*.onnx")) == ["repeat0_fold1.onnx"]  # the fold-0 network is gone
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("mine")
    assert main(["export", str(runs["cls2d"]), "--out", str(foreign), "--quiet"]) != 0
    assert "not a medtl export" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.docx"]


def test_an_export_killed_while_replacing_the_previous_one_is_recovered_by_the_next(runs, tmp_path, monkeypatch):
    """Issue 35.1: a kill during the final replacement left --out without model.json, and export then refused it."""
    from medtl.plumbing import swap

    target = tmp_path / "x"
    assert main(["export", str(runs["cls2d"]), "--out", str(target), "--quiet"]) == 0
    before = json.loads((target / "model.json").read_text())["members"]
    real, calls = swap._move, []

    def killed_after_two(source, destination):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(source)
        real(source, destination)

    monkeypatch.setattr(swap, "_move", killed_after_two)
    assert main(["export", str(runs["cls2d"]), "--out", str(target), "--fold", "1", "--quiet"]) != 0  # killed
    assert not (target / "model.json").exists()  # mid-replacement: the old model.json is aside
    monkeypatch.setattr(swap, "_move", real)
    assert main(["export", str(runs["cls2d"]), "--out", str(target), "--fold", "1", "--quiet"]) == 0
    after = json.loads((target / "model.json").read_text())["members"]
    assert [m["name"] for m in before] == ["repeat0_fold0", "repeat0_fold1"] and [m["name"] for m in after] == [
        "repeat0_fold1"]
    assert sorted(p.name for p in target.glob("*.onnx")) == ["repeat0_fold1.onnx"]


def _repin(folder):
    """A consistent forgery: every hash and the model id recomputed after an edit (what a careful tamperer does)."""
    from medtl.export.manifest import export_model_id
    from medtl.plumbing.hashing import sha256_file

    model = json.loads((folder / "model.json").read_text())
    model["preprocessing_sha256"] = sha256_file(folder / "preprocessing.json")
    for member in model["members"]:
        member["sha256"] = sha256_file(folder / member["file"])
    model["model_id"] = export_model_id(model["arm"], model["preprocessing_sha256"],
                                        [m["sha256"] for m in model["members"]], model.get("calibration"))
    (folder / "model.json").write_text(json.dumps(model))


def _edit_json(folder, name, change, repin=False):
    data = json.loads((folder / name).read_text())
    change(data)
    (folder / name).write_text(json.dumps(data))
    if repin:
        _repin(folder)


def _swap_network(folder, other):
    """The segmentation export's networks (40 px) in the classification export, sizes made to agree."""
    for file in folder.glob("*.onnx"):
        file.write_bytes(next(other.glob("*.onnx")).read_bytes())
    _edit_json(folder, "preprocessing.json", lambda d: (d["data"].update(image_size=[40, 40]),
                                                        d["network"].update(input_shape=["batch", 1, 40, 40])),
               repin=True)


TAMPERINGS = {  # name: (edit of a copy of the cls2d export, words the one-line refusal must contain)
    "reversed class names": (lambda f, e: _edit_json(f, "preprocessing.json", lambda d: d["class_names"].reverse()),
                             "preprocessing.json differs from the one exported"),
    "other percentiles": (lambda f, e: _edit_json(f, "preprocessing.json",
                                                  lambda d: d["data"].update(percentiles=[5.0, 95.0])),
                          "sha256 mismatch"),
    "patch mode switched on": (lambda f, e: _edit_json(f, "preprocessing.json",
                                                       lambda d: d["data"].update(mode="patch")), "sha256 mismatch"),
    "third class, repinned": (lambda f, e: _edit_json(f, "preprocessing.json",
                                                      lambda d: d["class_names"].append("third"), repin=True),
                              "model.json says"),
    "version as a string": (lambda f, e: _edit_json(f, "model.json", lambda d: d.update(version="1")), "version"),
    "model.json a list": (lambda f, e: (f / "model.json").write_text("[1, 2]"), "JSON list"),
    "model.json truncated": (lambda f, e: (f / "model.json").write_text((f / "model.json").read_text()[:200]),
                             "not readable JSON"),
    "members missing": (lambda f, e: _edit_json(f, "model.json", lambda d: d.pop("members")), "members"),
    "sha256 missing": (lambda f, e: _edit_json(f, "model.json", lambda d: d["members"][0].pop("sha256")),
                       "sha256"),
    "members empty": (lambda f, e: _edit_json(f, "model.json", lambda d: d.update(members=[])), "members"),
    "member outside the folder": (lambda f, e: _edit_json(
        f, "model.json", lambda d: d["members"][0].update(file="../x.onnx")), "file"),
    "model id kept after an edit": (lambda f, e: _edit_json(
        f, "model.json", lambda d: d.update(preprocessing_sha256="0" * 64)), "model_id"),
    "garbage network, repinned": (lambda f, e: (next(f.glob("*.onnx")).write_bytes(b"not a network"), _repin(f)),
                                  "does not run"),
    "segmentation network, repinned": (lambda f, e: _swap_network(f, e["seg2d"]), "gives outputs of shape"),
    "image size the network cannot take, repinned": (
        lambda f, e: _edit_json(f, "preprocessing.json", lambda d: (d["data"].update(image_size=[48, 48]),
                                                                   d["network"].update(input_shape=["batch", 1, 48, 48])),
                                repin=True), "does not run"),
    "input shape unlike the data settings": (
        lambda f, e: _edit_json(f, "preprocessing.json", lambda d: d["network"].update(
            input_shape=["batch", 1, 48, 48]), repin=True), "does not match the data settings"),
    "spacing NaN, repinned": (lambda f, e: _edit_json(f, "preprocessing.json", lambda d: d["data"].update(
        dims=3, spacing=[float("nan"), 1, 1]), repin=True), "preprocessing.json"),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_every_tampering_of_an_export_is_one_line_exit_2_and_nothing_written(tampering, exports, radiographs,
                                                                             tmp_path, capsys):
    """Issue 28.5: an export is verified whole (hash pins, both schemas, one dry run) before any case is read."""
    import shutil

    edit, words = TAMPERINGS[tampering]
    copy = tmp_path / "copy"
    shutil.copytree(exports["cls2d"], copy)
    edit(copy, exports)
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["predict", str(copy), str(radiographs / "manifest.csv"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err
    assert not out.exists()

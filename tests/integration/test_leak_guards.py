"""Issue 27.2: every leak guard sees a copy that is not byte-identical. Re-exports (+1 grey level, 16-bit PNG) have
other pixels but the same network input: refused by source stages and folds, left out by leave-one-site-out, counted
by ``adapt.target_manifest`` and ``medtl evaluate``; JPEG re-encodes are reported as possible copies."""

import json

import pytest
import yaml

from medtl.cli import main
from medtl.config import load_config
from medtl.data.dataset import prepare_cases
from medtl.data.manifest import read_manifest
from medtl.errors import InputError
from medtl.io import load_volume
from medtl.workflows.cv_fold import write_fold_images
from medtl.workflows.source_guard import guard_notes
from tests.copies import original, write_copy, write_manifest, write_originals

RE_EXPORTS = ("plus1", "sixteen")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Sites a, b, c (8 patients each); site b also holds copies of site a's first three images under new patients:
    +1 grey, 16-bit and JPEG. ``copies.csv``: the same three copies alone (an SSL pool / target / external set)."""
    root = tmp_path_factory.mktemp("guards")
    rows = []
    for k, site in enumerate("abc"):
        rows += write_originals(root, n=8, site=site, seed=k)
    copies = []
    for i, kind in enumerate((*RE_EXPORTS, "jpeg")):
        path = write_copy(original(i), kind, root / f"copy-{kind}")
        copies.append({"image": path.name, "label": i % 2, "patient_id": f"B-copy-{kind}", "site": "b"})
    write_manifest(root / "manifest.csv", rows + copies)
    write_manifest(root / "copies.csv", [{"image": r["image"], "label": r["label"]} for r in copies])
    outside = []  # copies of site a's images 3-5 that are not cases of the run: a target set, a pool
    for i, kind in enumerate((*RE_EXPORTS, "jpeg")):
        path = write_copy(original(3 + i), kind, root / f"outside-{kind}")
        outside.append({"image": path.name, "label": i % 2, "patient_id": f"S{i}"})
    write_manifest(root / "outside.csv", outside)
    return root


def _config(data, **extra):
    return {"task": "classification",
            "data": {"manifest": str(data / "manifest.csv"), "dims": 2, "image_size": [32, 32]},
            "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 1, "batch_size": 8},
            "cv": {"scheme": "leave_site_out", "bootstrap": 100}, **extra}


@pytest.fixture(scope="module")
def site_run(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = _config(data, compare=["dann"], adapt={"target_manifest": str(data / "outside.csv")})
    (root / "cv.yaml").write_text(yaml.safe_dump(config))
    assert main(["cv", str(root / "cv.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def test_leave_site_out_leaves_re_exports_of_test_site_images_out_and_reports_the_jpeg(data, site_run):
    pixels = {kind: load_volume(data / f"copy-{kind}.png").pixel_hash() for kind in RE_EXPORTS}
    originals = [load_volume(data / f"orig0-{i}.png").pixel_hash() for i in range(2)]
    for arm in ("erm", "dann"):
        images = json.loads((site_run / "arms" / arm / "repeat0_fold0" / "fold_images.json").read_text())  # test: a
        seen = set(images["train"]["image_hashes"]) | set(images["selection"]["image_hashes"])
        assert not set(pixels.values()) & seen  # the re-exports of site a's images never train for site a
        images = json.loads((site_run / "arms" / arm / "repeat0_fold1" / "fold_images.json").read_text())  # test: b
        seen = set(images["train"]["image_hashes"]) | set(images["selection"]["image_hashes"])
        assert not set(originals) & seen  # nor do the originals of the copies scored at site b
    log = (site_run / "log.txt").read_text()
    assert "test site 'a': 2 case(s) of other sites left out" in log
    assert "test site 'a': 1 training-site case(s) are near-identical" in log


def test_adapt_target_manifest_counts_re_exports_as_images_of_the_run(site_run):
    metrics = json.loads((site_run / "metrics.json").read_text())
    line = next(w for w in metrics["warnings"] if "unlabelled target image(s) from outside.csv" in w)
    assert "2 of them are images of this run's cases" in line and "0 same pixels, 2 same network input" in line
    assert "1 possible copies" in line


def test_evaluate_counts_re_exports_and_reports_possible_copies(data, site_run, tmp_path):
    assert main(["evaluate", str(site_run), str(data / "copies.csv"), "--out", str(tmp_path / "ext"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "ext" / "metrics.json").read_text())
    # the copies are themselves cases of the run: all three identical to a training image (pixels)
    assert metrics["training_overlap"] == 3 and metrics["training_overlap_detail"]["pixels"] == 3


def test_evaluate_sees_re_exports_of_training_images_it_never_saw_as_files(data, tmp_path):
    rows = write_originals(tmp_path, n=8, site="a", seed=0) + write_originals(tmp_path, n=8, site="b", seed=1)
    write_manifest(tmp_path / "manifest.csv", rows)
    config = _config(tmp_path, cv={"folds": 2, "bootstrap": 100})
    (tmp_path / "cv.yaml").write_text(yaml.safe_dump(config))
    assert main(["cv", str(tmp_path / "cv.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    external = []
    for i, kind in enumerate((*RE_EXPORTS, "jpeg")):
        path = write_copy(original(i), kind, tmp_path / f"external-{kind}")
        external.append({"image": path.name, "label": i % 2, "patient_id": f"E{i}"})
    write_manifest(tmp_path / "external.csv", external)
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "external.csv"), "--out", str(tmp_path / "ext"),
                 "--quiet"]) == 0
    metrics = json.loads((tmp_path / "ext" / "metrics.json").read_text())
    assert metrics["training_overlap"] == 2
    assert metrics["training_overlap_detail"] == {"pixels": 0, "network": 2, "near": 1}
    assert any("not an independent external validation" in w for w in metrics["warnings"])


def _prepared(data, manifest, tmp_path):
    config = load_config(None, [f"data.manifest={data / manifest}", "data.image_size=32"])
    cases, skipped = prepare_cases(read_manifest(data / manifest, "classification"), config, None, progress=False)
    assert not skipped
    return cases


def test_a_self_supervised_pool_of_re_exports_is_refused_and_jpegs_are_noted(data, tmp_path):
    target = _prepared(data, "manifest.csv", tmp_path)[:24]  # the three sites' originals
    pool = _prepared(data, "outside.csv", tmp_path)  # other patient ids: only the images can tell
    config = load_config(None, ["source.task=simclr"])
    with pytest.raises(InputError, match=r"2 source image\(s\) belong to the target run \(0 with identical pixels, "
                                         r"2 with an identical network input"):
        guard_notes(config, pool[:2], target, labelled=False)
    notes = guard_notes(config, pool[2:], target, labelled=False)
    assert any("1 source image(s) are near-identical" in n and "possible copies" in n for n in notes)


def test_a_fold_whose_training_set_holds_a_re_export_of_a_scored_image_is_refused(data, tmp_path):
    cases = _prepared(data, "manifest.csv", tmp_path)
    scored, copy = [cases[0]], cases[24]  # original 0 of site a, and its +1 grey re-export
    assert scored[0].image_hash != copy.image_hash
    with pytest.raises(RuntimeError, match="train set shares 0 patient.*1 image"):
        write_fold_images(tmp_path / "fold_images.json", [copy, *cases[8:12]], [], scored, [], True)
    write_fold_images(tmp_path / "fold_images.json", cases[8:12], [], scored, [], True)  # clean: written

"""Multi-site runs end to end: leave one site out without leaks, per-site metrics, DANN that cannot read target
labels, per-site external evaluation, site keys from the scan."""

import csv
import hashlib
import json

import numpy as np
import pytest
import yaml

from medtl.cli import main
from medtl.io import load_volume
from medtl.samples.site_sets import write_site_set


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return write_site_set(tmp_path_factory.mktemp("sites"), (5, 5, 5), size=48, seed=1)


def write_config(path, manifest, **sections):
    config = {"task": "classification", "data": {"manifest": str(manifest), "dims": 2, "image_size": [32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 1, "batch_size": 4, "lr": 0.003},
              "cv": {"scheme": "leave_site_out", "bootstrap": 100}, "compare": ["dann"]}
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    path.write_text(yaml.safe_dump(config))
    return path


def rows_of(manifest):
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path, rows, columns):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def model_digest(run, arm, fold):
    """Hash of the trained tensors (safetensors' header order of metadata keys varies from file to file)."""
    from safetensors.numpy import load_file

    tensors = load_file(str(run / "arms" / arm / f"repeat0_fold{fold}" / "model.safetensors"))
    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode() + tensors[key].tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def site_run(sites, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = write_config(root / "cv.yaml", sites / "manifest.csv")
    assert main(["cv", str(config), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def test_no_test_site_patient_or_image_is_trained_on_or_used_for_selection(sites, site_run):
    rows = rows_of(sites / "manifest.csv")
    pixels = {r["image"]: load_volume(sites / r["image"]).pixel_hash() for r in rows}  # hashed here, independently
    site_names = sorted({r["site"] for r in rows})
    for arm in ("erm", "dann"):
        for fold, site in enumerate(site_names):
            record = json.loads((site_run / "arms" / arm / f"repeat0_fold{fold}" / "fold_images.json").read_text())
            held_out = {pixels[r["image"]] for r in rows if r["site"] == site}
            assert set(record["scored"]["image_hashes"]) == held_out
            for role in ("train", "selection"):
                assert record[role]["image_hashes"] and not held_out & set(record[role]["image_hashes"])
                assert not set(record["scored"]["patient_keys"]) & set(record[role]["patient_keys"])
            others = {pixels[r["image"]] for r in rows if r["site"] != site}
            assert set(record["train"]["image_hashes"]) | set(record["selection"]["image_hashes"]) == others
            # DANN adapts to the held-out site's images (never its labels); plain fine-tuning sees none of them
            assert set(record["unlabelled_target"]["image_hashes"]) == (held_out if arm == "dann" else set())


def test_metrics_per_site_drop_shift_check_and_comparisons(sites, site_run):
    metrics = json.loads((site_run / "metrics.json").read_text())
    site_names = sorted({r["site"] for r in rows_of(sites / "manifest.csv")})
    block = metrics["sites"]
    assert block["sites"] == site_names and block["scheme"] == "leave_site_out"
    for arm in ("erm", "dann"):
        assert sorted(block["per_site"][arm]) == site_names
        auc = block["per_site"][arm][site_names[0]]["metrics"]["auc"]
        assert set(auc) == {"value", "ci95"} and len(auc["ci95"]) == 2
        assert sorted(block["drop"][arm]) == site_names
        for drop in block["drop"][arm].values():
            assert drop["drop"] == pytest.approx(drop["training_sites_held_out"] - drop["test_site"])
    assert [(c["site"], c["a"], c["b"]) for c in block["comparisons"]] == [(s, "dann", "erm") for s in site_names]
    assert [c["a"] for c in metrics["comparisons"]] == ["dann"]  # the method minus its control
    # the verdict is the mean of the per-site differences (not one AUC over all sites pooled), and says so
    verdict = metrics["comparisons"][0]
    assert verdict["scope"] == "mean of per-site differences" and verdict["n_sites"] == len(site_names)
    per_site = {c["site"]: c["mean_diff"] for c in block["comparisons"]}
    assert verdict["per_site"] == pytest.approx(per_site)
    assert verdict["mean_diff"] == pytest.approx(sum(per_site.values()) / len(per_site))
    assert metrics["pooled_comparisons"][0]["scope"] == "all sites pooled"
    assert verdict["role"] == "primary" and all("p_holm" in c for c in block["comparisons"])
    assert len(block["shift_check"]) == 3 and all(0 <= c["auc"] <= 1 for c in block["shift_check"])
    assert "dann" in metrics["domain_adaptation"]
    with open(site_run / "predictions.csv", newline="") as f:
        predicted = list(csv.DictReader(f))
    assert {r["site"] for r in predicted} == set(site_names)  # the user's labels, as given
    report = (site_run / "report.html").read_text()
    assert "Drop at an unseen site" in report and "Shift check" in report and "Domain adaptation" in report


def test_a_changed_site_column_is_refused_on_resume(sites, site_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(site_run, run)  # a finished run of sites/manifest.csv
    config = write_config(tmp_path / "cv.yaml", sites / "manifest.csv")
    assert main(["cv", str(config), "--out", str(run), "--quiet"]) == 0  # unchanged data: resumes (all done)
    original = (sites / "manifest.csv").read_text()
    rows = rows_of(sites / "manifest.csv")
    rows[0]["site"] = next(r["site"] for r in rows if r["site"] != rows[0]["site"])
    try:
        write_rows(sites / "manifest.csv", rows, list(rows[0]))  # one case moved to another site
        assert main(["cv", str(config), "--out", str(run), "--quiet"]) != 0
        assert "1 case(s) changed" in capsys.readouterr().err
    finally:
        (sites / "manifest.csv").write_text(original)


def test_held_out_site_labels_never_reach_dann(sites, site_run, tmp_path):
    rows = rows_of(sites / "manifest.csv")
    first = sorted({r["site"] for r in rows})[0]
    shuffled = [dict(r) for r in rows]
    at_site = [r for r in shuffled if r["site"] == first]
    labels = [r["label"] for r in at_site]
    for row, label in zip(at_site, np.random.default_rng(0).permutation(labels)[::-1]):
        row["label"] = label
    assert [r["label"] for r in at_site] != labels
    manifest = write_rows(sites / "shuffled_site_labels.csv", shuffled, list(rows[0]))
    config = write_config(tmp_path / "cv.yaml", manifest)
    assert main(["cv", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    # the fold that holds this site out trained on the other sites and on this site's images alone
    assert model_digest(tmp_path / "run", "dann", 0) == model_digest(site_run, "dann", 0)


@pytest.mark.heavy
def test_dann_weights_do_not_depend_on_the_target_manifest_labels(sites, tmp_path):
    rows = rows_of(sites / "manifest.csv")
    train = [r for r in rows if r["site"] != "hospital_c"]
    target = [r for r in rows if r["site"] == "hospital_c"]
    manifest = write_rows(sites / "two_sites.csv", train, list(rows[0]))
    flipped = [{**r, "label": str(1 - int(r["label"]))} for r in target]
    variants = {"labels": write_rows(sites / "target_labels.csv", target, ["image", "label", "site"]),
                "shuffled": write_rows(sites / "target_shuffled.csv", flipped, ["label", "image"]),
                "absent": write_rows(sites / "target_images.csv", target, ["image"])}
    digests = {}
    for name, path in variants.items():
        config = write_config(tmp_path / f"{name}.yaml", manifest, cv={"scheme": "kfold", "folds": 2},
                              adapt={"method": "dann", "target_manifest": str(path)}, compare=[])
        assert main(["cv", str(config), "--out", str(tmp_path / name), "--quiet"]) == 0
        digests[name] = [model_digest(tmp_path / name, "dann", k) for k in (0, 1)]
    assert digests["labels"] == digests["shuffled"] == digests["absent"]
    metrics = json.loads((tmp_path / "absent" / "metrics.json").read_text())
    assert list(metrics["arms"]) == ["dann", "erm"]  # the control was added
    assert metrics["domain_adaptation"]["dann"][0]["n_target_images"] == len(target)


def test_evaluate_reports_metrics_per_site(sites, site_run, tmp_path):
    assert main(["evaluate", str(site_run), str(sites / "manifest.csv"), "--out", str(tmp_path / "ext"),
                 "--quiet"]) == 0
    metrics = json.loads((tmp_path / "ext" / "metrics.json").read_text())
    site_names = sorted({r["site"] for r in rows_of(sites / "manifest.csv")})
    assert sorted(metrics["sites"]["per_site"]["erm"]) == site_names
    assert sum(v["n_cases"] for v in metrics["sites"]["per_site"]["erm"].values()) == metrics["n_cases"]
    assert "Metrics per site" in (tmp_path / "ext" / "report.html").read_text()


def test_scan_fills_a_site_key_and_never_writes_the_institution(sites, tmp_path):
    assert main(["scan", str(sites / "images"), "--out", str(tmp_path / "scan"), "--quiet"]) == 0
    with open(tmp_path / "scan" / "series.csv", newline="") as f:
        series = list(csv.DictReader(f))
    assert len({r["site_key"] for r in series}) == 3 and all(len(r["site_key"]) == 16 for r in series)
    written = "".join(p.read_text() for p in (tmp_path / "scan").iterdir())
    assert "Synthetic" not in written and "SynthVendor" not in written

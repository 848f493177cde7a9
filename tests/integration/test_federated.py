"""Federated and private training as a user runs them: pooled, local and private arms on the same folds, the
report's sections and the model card, segmentation, and clients on a Dask cluster equal to the simulation."""

import json

import pytest
import torch

from medtl.cli import main
from medtl.config import load_config
from medtl.models import create_model
from medtl.samples.site_sets import write_site_set
from medtl.train.federated import fit_federated

pytestmark = pytest.mark.heavy  # the heavy tier: `make test-heavy` (see the Makefile)

pytest.importorskip("opacus")


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return write_site_set(tmp_path_factory.mktemp("sites"), (6, 6, 4), 32, seed=2) / "manifest.csv"


def settings(manifest, *extra):
    values = [f"data.manifest={manifest}", "model.backbone=tiny-resnet-gn", "model.pretrained=none",
              "data.image_size=[32,32]", "cv.folds=2", "cv.bootstrap=100", "train.batch_size=4", "fed.rounds=2",
              "train.method=fedavg", "privacy.epsilon=8", "train.epochs=2", *extra]
    return [item for value in values for item in ("--set", value)]


def test_federated_pooled_local_and_private_arms_on_the_same_folds(sites, tmp_path, capsys):
    config = tmp_path / "fed.yaml"
    config.write_text("compare: [pooled, local, {name: fedavg-dp, set: {privacy.dp: true}}]\n")
    out = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(out), *settings(sites)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["arms"]) == {"fedavg", "pooled", "local-hospital_a", "local-hospital_b", "local-hospital_c",
                                    "fedavg-dp"}
    pairs = [(c["a"], c["b"]) for c in metrics["comparisons"]]
    assert pairs[0] == ("fedavg", "pooled") and ("fedavg", "fedavg-dp") in pairs
    assert metrics["multiplicity"]["primary"]["a"] == "fedavg"
    folds = metrics["federated"]["fedavg"]
    assert all(set(f["clients"]) == {"hospital_a", "hospital_b", "hospital_c"} for f in folds)
    spent = metrics["privacy"]["fedavg-dp"]
    assert 0 < spent["epsilon"] <= 8.05 and spent["max_images_per_patient"] == 2
    report = (out / "report.html").read_text()
    assert "Federated training" in report and "Differential privacy" in report
    printed = capsys.readouterr().out
    assert "fedavg-dp: DP-SGD spent epsilon" in printed
    # a local arm trains on its own site's patients only and is scored on every site's validation patients
    local = next((out / "arms" / "local-hospital_c").glob("*/done.json"))
    record = json.loads(local.read_text())
    scored_sites = {row["site"] for row in record["rows"] if "site" in row}
    assert record["record"]["n_train"] < 8 and (not scored_sites or len(scored_sites) > 1)
    pytest.importorskip("onnxruntime")
    assert main(["export", str(out), "--arm", "fedavg-dp", "--out", str(tmp_path / "export")]) == 0
    assert "DP-SGD spent epsilon" in (tmp_path / "export" / "model_card.md").read_text()


def test_private_segmentation_runs_and_reports_its_epsilon(tmp_path):
    from medtl.samples.sample_sets import write_radiograph_set

    root = write_radiograph_set(tmp_path / "seg", 6, 1, 32, seed=3)
    config = tmp_path / "seg.yaml"
    config.write_text("task: segmentation\n")
    out = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(out), "--set", f"data.manifest={root / 'manifest.csv'}",
                 "--set", "model.backbone=tiny-resnet-gn", "--set", "model.pretrained=none", "--set",
                 "data.image_size=[32,32]", "--set", "cv.folds=2", "--set", "cv.bootstrap=100", "--set",
                 "train.batch_size=4", "--set", "train.epochs=1", "--set", "privacy.dp=true", "--set",
                 "privacy.noise_multiplier=1.0", "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["privacy"]


@pytest.mark.usefixtures("all_cores")
def test_clients_on_a_dask_cluster_equal_the_sequential_simulation(tmp_path):
    pytest.importorskip("distributed")
    from tests.unit.train.test_federated import cases

    def run(executor):
        config = load_config(None, ["model.backbone=tiny-resnet-gn", "model.pretrained=none", "data.image_size=32",
                                    "fed.rounds=2", "train.batch_size=4", "train.threads=1", "privacy.dp=true",
                                    "privacy.noise_multiplier=1.0", f"fed.executor={executor}", "run.workers=2"])
        torch.manual_seed(0)
        net = create_model("tiny-resnet-gn", dims=2, num_classes=2, pretrained="none")
        result = fit_federated(net, cases(), config, tmp_path / f"{executor}.pt", 0, 0.0)
        return net, result

    here, here_result = run("local")
    there, there_result = run("dask")
    assert here_result.history == there_result.history and here_result.privacy == there_result.privacy
    assert all(torch.equal(v, there.state_dict()[k]) for k, v in here.state_dict().items())

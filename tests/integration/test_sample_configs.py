"""Sample data and the shipped configs: deterministic generator, tiny runs of every sample config."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open

from medtl.cli import main
from medtl.samples.sample_data import write_sample_data

pytestmark = pytest.mark.heavy  # the heavy tier: `make test-heavy` (see the Makefile)

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("sample_*.yaml"))


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_sample_data(tmp_path_factory.mktemp("sample"), seed=0, size="tiny")


def test_generator_is_deterministic(tiny_data, tmp_path):
    again = write_sample_data(tmp_path / "again", seed=0, size="tiny")
    assert tree_digest(again) == tree_digest(tiny_data)
    other = write_sample_data(tmp_path / "other", seed=1, size="tiny")
    assert tree_digest(other) != tree_digest(tiny_data)


def test_the_committed_sample_data_is_what_the_generator_writes(tmp_path):
    shipped = Path(__file__).parents[2] / "sample_data"
    fresh = write_sample_data(tmp_path / "fresh", seed=0)
    for name in ("cls2d_target", "cls2d_source", "ct3d", "scan_demo", "sites2d", "ssl_pool", "meta2d_source"):
        assert tree_digest(fresh / name) == tree_digest(shipped / name), name


def tiny_overrides(config: Path, data: Path) -> list[str]:
    text = config.read_text()
    manifest = next((name for name in ("ct3d", "sites2d") if name in text), "cls2d_target")
    manifest_file = "manifest_multitask.csv" if "manifest_multitask" in text else "manifest.csv"
    size = "[12,32,32]" if "dims: 3" in text else "[32,32]"
    backbone = "tiny-resnet-gn" if "resnet18-gn" in text else "tiny-resnet"  # DP-SGD arms need GroupNorm
    overrides = [f"data.manifest={data / manifest / manifest_file}", f"model.backbone={backbone}",
                 "train.epochs=1", "cv.folds=2", f"data.image_size={size}", "cv.bootstrap=100", "train.batch_size=4"]
    if "ssl_pool" in text:  # a self-supervised stage: the tiny unlabelled pool and its probe set
        overrides += [f"source.manifest={data / 'ssl_pool' / 'manifest.csv'}", "source.epochs=1",
                      f"ssl.probe_manifest={data / 'ssl_pool' / 'probe.csv'}"]
    elif "meta2d_source" in text:  # a meta-learning stage: the tiny labelled source, a few episodes
        meta = data / "meta2d_source" / "manifest.csv"
        overrides += [f"source.manifest={meta}", "source.epochs=1", "meta.episodes_per_epoch=4",
                      f"meta.sources=[{{manifest: {meta}, columns: [lung, nodule]}}]"]
    elif "source:" in text:
        overrides += [f"source.manifest={data / 'cls2d_source' / 'manifest.csv'}", "source.epochs=1"]
    # tiny backbones have no published weights: naming them is an error, so those arms are left out here
    # (test_cv_cli covers the visible skip of a weight arm whose weights are not available offline)
    if "\nfed:" in text:  # federated rounds: one
        overrides.append("fed.rounds=1")
    if "\ntune:" in text:  # a nested search: two trials of two inner folds per outer fold
        overrides += ["tune.trials=2", "tune.inner_folds=2"]
    arms = [a for a in yaml.safe_load(text).get("compare", []) if a not in ("imagenet", "medicalnet")]
    overrides.append("compare=" + yaml.safe_dump(arms, default_flow_style=True, width=10**6).strip())
    return [item for pair in (("--set", o) for o in overrides) for item in pair]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_tiny_version_of_each_sample_config_runs(config, tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["cv", str(config), "--out", str(out), *tiny_overrides(config, tiny_data)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arms"], "at least the main arm ran"
    printed = capsys.readouterr().out
    assert "report:" in printed


def test_pretrain_writes_a_checkpoint_and_reuses_it(tiny_data, tmp_path, capsys):
    config = next(c for c in CONFIGS if c.stem == "sample_cls2d")
    args = ["pretrain", str(config), "--out", str(tmp_path / "source.safetensors"), *tiny_overrides(config, tiny_data)]
    assert main(args) == 0
    assert "trained" in capsys.readouterr().out
    with safe_open(str(tmp_path / "source.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    assert metadata["backbone"] == "tiny-resnet" and json.loads(metadata["class_names"]) == ["left", "right"]
    assert len(metadata["data_sha256"]) == 64
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out


def test_head_of_another_task_is_not_reused(tmp_path):
    import torch
    from safetensors.torch import save_file

    import medtl

    source = medtl.create_model("tiny-resnet", dims=2, num_classes=2)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "s.safetensors"),
              metadata={"backbone": "tiny-resnet", "class_names": json.dumps(["left", "right"])})
    target = medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained=str(tmp_path / "s.safetensors"),
                                class_names=["0", "1"])
    assert "trained for classes ['left', 'right']" in target.adaptation.new["head.*"]
    assert not torch.equal(target.head.fc.weight, source.head.fc.weight)

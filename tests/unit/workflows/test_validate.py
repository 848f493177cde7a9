"""The checks before a run: every arm's backbone and weights exist, the manifest reads, uncached weights are said."""

import pytest

from medtl.config import load_config
from medtl.errors import ConfigError, UnknownNameError
from medtl.workflows.validate import check_experiment


def test_arms_manifest_and_weight_notes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "m.csv").write_text("image,label,patient_id\na.dcm,0,p1\nb.dcm,1,p2\n")
    config = load_config(None, [f"data.manifest={tmp_path / 'm.csv'}", "model.pretrained=none",
                                "compare=[imagenet, linear]"])
    checked = check_experiment(config)
    assert [a.name for a in checked.arms] == ["scratch", "imagenet", "linear"]
    assert len(checked.manifest.cases) == 2 and any("not cached" in n for n in checked.notes)
    with pytest.raises(UnknownNameError, match="arm 'medicalnet'"):
        check_experiment(config.derive({"compare": ["medicalnet"], "model.backbone": "densenet121"}))
    with pytest.raises(ConfigError, match="data.manifest is not set"):
        check_experiment(load_config(None))
    assert check_experiment(load_config(None), need_manifest=False).manifest is None


def test_a_patch_size_the_encoder_cannot_tile_is_refused_with_the_constraint():
    config = load_config(None, ["data.dims=3", "data.mode=patch", "data.patch_size=[20,64,64]",
                                "task=segmentation", "model.pretrained=none"])
    with pytest.raises(ConfigError, match=r"multiple of 32.*e\.g\. data\.patch_size = \[32, 64, 64\]"):
        check_experiment(config, need_manifest=False)
    check_experiment(config.derive({"data.patch_size": [32, 64, 96]}), need_manifest=False)


def _site_manifest(tmp_path, sites=("a", "a", "b", "b")):
    rows = "".join(f"{i}.dcm,{i % 2},p{i},{s}\n" for i, s in enumerate(sites))
    (tmp_path / "m.csv").write_text("image,label,patient_id,site\n" + rows)
    return tmp_path / "m.csv"


def test_leave_site_out_needs_two_sites(tmp_path):
    base = ["model.pretrained=none", "cv.scheme=leave_site_out"]
    check_experiment(load_config(None, [f"data.manifest={_site_manifest(tmp_path)}", *base]))
    with pytest.raises(ConfigError, match="at least 2 sites.*'a'"):
        check_experiment(load_config(None, [f"data.manifest={_site_manifest(tmp_path, 'aaaa')}", *base]))
    (tmp_path / "n.csv").write_text("image,label,patient_id\na.dcm,0,p1\nb.dcm,1,p2\n")
    with pytest.raises(ConfigError, match="no site column"):
        check_experiment(load_config(None, [f"data.manifest={tmp_path / 'n.csv'}", *base]))


def test_an_adaptation_arm_needs_target_images(tmp_path):
    manifest = _site_manifest(tmp_path)
    config = load_config(None, [f"data.manifest={manifest}", "model.pretrained=none", "compare=[dann]"])
    with pytest.raises(ConfigError, match="arm 'dann'.*adapt.target_manifest.*leave_site_out"):
        check_experiment(config)
    arms = check_experiment(config.derive({"cv.scheme": "leave_site_out"})).arms
    assert [a.name for a in arms] == ["erm", "dann"]
    (tmp_path / "t.csv").write_text("image\nx.png\n")
    check_experiment(config.derive({"adapt.target_manifest": str(tmp_path / "t.csv")}))


def test_a_source_arm_without_a_source_stage_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "m.csv").write_text("image,label,patient_id\na.dcm,0,p1\nb.dcm,1,p2\n")
    config = load_config(None, [f"data.manifest={tmp_path / 'm.csv'}", "model.pretrained=none", "compare=[source]"])
    with pytest.raises(ConfigError, match="arm 'source' starts from model.pretrained: source.*no source.manifest"):
        check_experiment(config)


def test_a_self_supervised_pool_needs_only_an_image_column(tmp_path):
    (tmp_path / "m.csv").write_text("image,label,patient_id\na.dcm,0,p1\nb.dcm,1,p2\n")
    (tmp_path / "pool.csv").write_text("image\nu1.png\nu2.png\n")
    config = load_config(None, [f"data.manifest={tmp_path / 'm.csv'}", "model.pretrained=source",
                                f"source.manifest={tmp_path / 'pool.csv'}", "source.task=byol"])
    assert [a.name for a in check_experiment(config).arms] == ["source-pretrained"]
    with pytest.raises(ConfigError, match="native extent is not supported"):
        config.derive({"data.mode": "patch", "data.patch_size": [32, 32]})
    with pytest.raises(ConfigError, match="patient_pairs applies to simclr and byol"):
        config.derive({"source.task": "restore", "ssl.patient_pairs": True})

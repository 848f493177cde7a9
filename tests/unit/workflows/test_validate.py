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

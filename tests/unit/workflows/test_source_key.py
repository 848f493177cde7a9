"""Which arms share a source model: exactly those whose source stages are identical."""

from pathlib import Path

import pytest

from medtl.config import load_config
from medtl.workflows.pretrain import source_key, source_stage_config

CONFIG = Path(__file__).parents[3] / "configs" / "sample_ssl2d.yaml"


@pytest.fixture
def config():
    return load_config(CONFIG)


@pytest.mark.parametrize("target_only", [{"train.label_fraction": 0.25}, {"train.epochs": 3}, {"cv.folds": 3},
                                         {"finetune.strategy": "linear"}, {"compare": []}])
def test_target_side_settings_do_not_change_the_source_model(config, target_only):
    assert source_key(config.derive(target_only)) == source_key(config)


@pytest.mark.parametrize("source_side", [{"source.task": "byol"}, {"source.epochs": 2}, {"ssl.temperature": 0.5},
                                         {"data.image_size": [32, 32]}, {"model.backbone": "resnet34"},
                                         {"source.task": "classification"}])
def test_source_side_settings_give_another_source_model(config, source_side):
    assert source_key(config.derive(source_side)) != source_key(config)


def test_the_stage_trains_every_label_even_in_a_label_fraction_arm(config):
    stage = source_stage_config(config.derive({"train.label_fraction": 0.25}))
    assert stage.train.label_fraction == 1.0 and stage.train.selection == "last" and stage.compare == []

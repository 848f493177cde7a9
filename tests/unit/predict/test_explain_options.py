"""Issue 28.10: explanation options that cannot work are one line naming the valid range or the layer names (with
did-you-mean), before any case is predicted; a shard missing an explanation file is named at merge."""

from types import SimpleNamespace

import pytest
import torch

from medtl.config import load_config
from medtl.errors import InputError
from medtl.models import create_model
from medtl.predict.explaining import check_explain


class Trained(SimpleNamespace):
    def heads(self):
        return {"": (self.task, ["a", "b"], 2)}

    def build_models(self, device):
        torch.manual_seed(0)
        return [create_model("tiny-resnet", dims=2, num_classes=2, pretrained="none")]


def _trained(size=32):
    from medtl.tasks import get_task

    config = load_config(None, [f"data.image_size=[{size},{size}]"])
    return Trained(config=config, task=get_task("classification"), task_kinds=None, has_layers=True,
                   class_names=["a", "b"])


def _options(**kw):
    base = dict(explain="occlusion", explain_class=None, explain_task=None, explain_layer=None, occlusion_size=8,
                occlusion_overlap=0.5)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("size", [0, -4, 100000])
def test_an_occlusion_box_that_does_not_fit_is_refused_with_the_range(size):
    with pytest.raises(InputError, match=r"--occlusion-size .*from 1 to 32"):
        check_explain(_trained(), _options(occlusion_size=size))


@pytest.mark.parametrize("overlap", [1.0, float("nan"), -0.5, float("inf")])
def test_an_overlap_outside_zero_to_one_is_refused(overlap):
    with pytest.raises(InputError, match=r"--occlusion-overlap .*0 <= F < 1"):
        check_explain(_trained(), _options(occlusion_overlap=overlap))


def test_too_many_occluded_copies_are_refused_with_the_count():
    with pytest.raises(InputError, match=r"needs [\d,]+ occluded copies"):
        check_explain(_trained(512), _options(occlusion_size=1, occlusion_overlap=0.99))


@pytest.mark.parametrize("layer,words", [("backbone.layr3", "did you mean 'backbone.layer3'"),
                                         ("__class__", "is not a layer of this model"),
                                         ("head.fc", "has no spatial extent")])
def test_an_explain_layer_must_exist_and_keep_a_spatial_extent(layer, words):
    with pytest.raises(InputError, match=words):
        check_explain(_trained(), _options(explain="gradcam", explain_layer=layer))


def test_valid_options_pass():
    check_explain(_trained(), _options())
    check_explain(_trained(), _options(explain="gradcam", explain_layer="backbone.layer3"))

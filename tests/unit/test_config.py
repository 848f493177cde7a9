"""Typed config: loading with --set and did-you-mean errors, derivation without side effects, per-axis lists
normalised against data.dims once."""

import re

import pytest

from medtl.config import config_differences, load_config
from medtl.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize("overrides, key", [
    (["data.image_size=[96,96,64]"], "data.image_size"),
    (["data.dims=3", "data.image_size=[96]"], "data.image_size"),
    (["data.dims=3", "data.image_size=[96,96]"], "data.image_size"),
    (["data.dims=3", "data.spacing=[1.0,1.0]"], "data.spacing"),
    (["data.spacing=[1.0,1.0]"], "data.spacing"),
    (["data.window=[40]"], "data.window"),
    (["data.window=[40,0]"], "data.window"),
    (["data.percentiles=[99.5,0.5]"], "data.percentiles"),
    (["data.percentiles=[1,2,3]"], "data.percentiles"),
])
def test_wrong_length_per_axis_values_name_the_key_and_the_fix(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    message = str(error.value)
    assert key in message and "\n" not in message


@pytest.mark.parametrize("dims, given, expected", [
    (2, None, [224, 224]), (3, None, [96, 96, 96]), (2, "64", [64, 64]), (3, "32", [32, 32, 32]),
    (3, "[16,32,48]", [16, 32, 48]), (2, "[40,50]", [40, 50])])
def test_image_size_is_normalised_to_one_value_per_axis(dims, given, expected):
    overrides = [f"data.dims={dims}"] + ([f"data.image_size={given}"] if given else [])
    assert load_config(None, overrides).data.image_size == expected


def test_derive_is_a_deep_copy_with_typed_values():
    base = load_config(None, ["data.image_size=[40,50]"])
    derived = base.derive({"cv.group_by": "007", "data.image_size": [8, 8]}, check_paths=False)
    assert derived.cv.group_by == "007" and base.cv.group_by == "patient_id"
    assert base.data.image_size == [40, 50] and derived.data.image_size == [8, 8]
    assert config_differences(base, derived) == ["cv.group_by", "data.image_size"]
    again = base.derive({}, check_paths=False)
    again.data.image_size[0] = 1
    assert base.data.image_size == [40, 50]


def test_derive_validates_like_load_config():
    base = load_config(None)
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        base.derive({"train.epoch": 3})
    with pytest.raises(ConfigError, match="data.image_size"):
        base.derive({"data.dims": 3})


def test_pretrained_must_be_a_keyword_or_an_existing_file(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'imagenet'"):
        load_config(None, ["model.pretrained=imagnet"])
    (tmp_path / "source.safetensors").write_bytes(b"x")
    config_file = tmp_path / "c.yaml"
    config_file.write_text("model:\n  pretrained: ./sourse.safetensors\n")
    with pytest.raises(UnknownNameError, match="did you mean"):
        load_config(config_file)
    config_file.write_text("model:\n  pretrained: ./source.safetensors\n")
    assert load_config(config_file).model.pretrained == str(tmp_path / "source.safetensors")
    # a stored run config is readable after its checkpoint moved away
    (tmp_path / "source.safetensors").unlink()
    assert load_config(config_file, check_paths=False).model.pretrained.endswith("source.safetensors")


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: segmentation\ndata:\n  manifest: data/m.csv\n  dims: 3\n")
    config = load_config(path, ["train.epochs=3", "cv.folds=4", "compare=[scratch]", "train.lr=0.01"])
    assert config.task == "segmentation" and config.data.dims == 3
    assert config.train.epochs == 3 and config.cv.folds == 4 and config.compare == ["scratch"]
    assert config.data.manifest == (tmp_path / "data" / "m.csv").resolve()


@pytest.mark.parametrize("override,message", [
    ("train.epoch=3", "did you mean 'train.epochs'"),
    ("modle.backbone=x", "did you mean 'model'"),
    ("train.epochs=0", "greater than or equal to 1"),
    ("task=detection", "'task' = 'detection'"),
    ("noequals", "key=value"),
])
def test_bad_keys_and_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: classification\ntrain: [\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


def test_every_shipped_config_validates():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


@pytest.mark.parametrize("overrides, message", [
    (["data.mode=patch"], "data.mode: patch needs data.patch_size"),
    (["data.patch_size=[64,64]"], "data.patch_size = [64, 64] is used in data.mode: patch only"),
    (["data.mode=patch", "data.patch_size=[64,64,64]"], "give 2 sizes"),
    (["data.dims=3", "data.mode=patch", "data.patch_size=[0,32,32]"], "give 3 sizes >= 1"),
    (["data.roi=mask"], "data.roi = mask is used in data.mode: patch only"),
    (["task=segmentation", "data.mode=patch", "data.patch_size=64", "data.roi=center"], "applies to classification"),
    (["data.mode=patch", "data.patch_size=64", "data.sliding_window.overlap=1"], "sliding_window.overlap"),
    (["data.mode=patch", "data.patch_size=64", "data.sliding_window.blend=linear"], "sliding_window.blend"),
    (["data.mode=patch", "data.patch_size=64", "data.foreground_ratio=1.5"], "foreground_ratio"),
    (["data.mode=patch", "data.patch_size=64", "data.sliding_windows.overlap=0.5"], "did you mean 'data.sliding_window'"),
])
def test_patch_settings_are_checked_with_the_fix_named(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


def test_patch_size_takes_one_number_for_every_axis_and_arms_can_switch_mode():
    config = load_config(None, ["data.dims=3", "data.mode=patch", "data.patch_size=64", "task=segmentation"])
    assert config.data.patch_size == [64, 64, 64] and not config.data.fixed_size
    resize = config.derive({"data.mode": "resize", "data.patch_size": None})
    assert resize.data.fixed_size and config.data.mode == "patch"
    roi = load_config(None, ["data.mode=patch", "data.patch_size=64", "data.roi=center"])
    assert roi.data.fixed_size  # one crop per case: batches of whole cases again


def test_adapt_settings_are_typed_and_checked(tmp_path):
    config = load_config(None, ["adapt.method=dann", "adapt.lambda_max=0.5"])
    assert config.adapt.method == "dann" and config.adapt.lambda_max == 0.5
    with pytest.raises(ConfigError, match="adapt.method"):
        load_config(None, ["adapt.method=coral"])
    with pytest.raises(ConfigError, match="whole-image inputs"):
        load_config(None, ["adapt.method=dann", "data.mode=patch", "data.patch_size=64"])
    with pytest.raises(ConfigError, match="train.class_weights"):
        load_config(None, ["adapt.method=reweight", "train.class_weights=balanced"])
    with pytest.raises(ConfigError, match="did you mean 'adapt.weight_clip'"):
        load_config(None, ["adapt.weight_clipping=5"])
    (tmp_path / "c.yaml").write_text("adapt:\n  method: dann\n  target_manifest: t/targets.csv\n")
    assert load_config(tmp_path / "c.yaml", check_paths=False).adapt.target_manifest == tmp_path / "t" / "targets.csv"


MULTI = "[{name: nodule, kind: classification, column: label}, {name: lesion, kind: segmentation, column: mask}]"


@pytest.mark.parametrize("overrides,message", [
    (["task=multitask"], "needs tasks:"),
    ([f"tasks={MULTI}"], "set task: multitask"),
    (["task=multitask", "tasks=[{name: a, kind: segmentation, column: m1}, {name: b, kind: segmentation, column: m2}]"],
     "at most one segmentation task"),
    (["task=multitask", "tasks=[{name: a, kind: classification, column: x}, {name: a, kind: segmentation, column: m}]"],
     "names repeat"),
    (["task=multitask", "tasks=[{name: a, kind: classification, column: x, weight: 2}]"], "weighting: fixed"),
    (["task=multitask", "multitask.weighting=fixed",
      "tasks=[{name: a, kind: classification, column: x, weight: 0}]"], "every task weight 0"),
    (["task=multitask", f"tasks={MULTI}", "data.mode=patch", "data.patch_size=[64,64]"], "patch mode"),
    (["task=multitask", f"tasks={MULTI}", "adapt.method=dann"], "adapt.method: dann"),
    (["task=multitask", "tasks=[{name: 'a/b', kind: classification, column: x}]"], "plain name"),
])
def test_multitask_settings_that_cannot_run_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_multitask_controls_are_derived_without_leaking_settings():
    from medtl.arms import resolve_arms

    config = load_config(None, ["task=multitask", f"tasks={MULTI}", "multitask.weighting=uncertainty",
                                "compare=[scratch]"])
    arms = {a.name: a.config for a in resolve_arms(config)}
    assert list(arms) == ["multitask", "scratch", "nodule-only", "lesion-only"]
    assert [t.name for t in arms["nodule-only"].tasks] == ["nodule"]
    assert arms["nodule-only"].multitask.weighting == "equal"
    assert [t.name for t in arms["scratch"].tasks] == ["nodule", "lesion"]
    assert arms["scratch"].multitask.weighting == "uncertainty" and arms["nodule-only"].model.pretrained == "imagenet"
    assert len(config.tasks) == 2  # the main config is never changed

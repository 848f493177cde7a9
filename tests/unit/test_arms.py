"""Arms are derived from the main config by their own overrides alone, for every ordering of ``compare``."""

import itertools

import pytest
import yaml

from medtl.arms import resolve_arms
from medtl.config import flatten, load_config
from medtl.errors import ConfigError, UnknownNameError
from medtl.rundir import RunDir

ARMS = ["scratch", "linear", "gradual", {"name": "l2", "set": {"finetune.l2sp": 0.01}}]
EXPECTED = {"scratch": {"model.pretrained": "none"}, "linear": {"finetune.strategy": "linear"},
            "gradual": {"finetune.strategy": "gradual"}, "l2": {"finetune.l2sp": 0.01}}


def write_config(tmp_path, **extra):
    raw = {"model": {"backbone": "tiny-resnet", "pretrained": "imagenet"}, "data": {"image_size": [32, 32]}, **extra}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(ARMS)))))
def test_each_arm_config_file_differs_from_the_main_by_its_own_overrides(tmp_path, order):
    config = load_config(write_config(tmp_path, compare=[ARMS[i] for i in order]))
    rundir = RunDir(tmp_path / "run")
    arms = resolve_arms(config)
    rundir.write_config(config)
    rundir.write_state({"arms": [a.name for a in arms]})
    for arm in arms:
        rundir.write_arm_config(arm.name, arm.config)
    main = flatten(rundir.read_arm_config("imagenet-pretrained"))
    assert arms[0].name == "imagenet-pretrained" and flatten(config) == main
    for name, overrides in EXPECTED.items():
        derived = flatten(rundir.read_arm_config(name))
        differing = {k for k in main if main[k] != derived[k]}
        assert differing == set(overrides), (order, name, differing)
        assert all(derived[k] == v for k, v in overrides.items())


@pytest.mark.parametrize("order", list(itertools.permutations(["dann", "reweight", "scratch"])))
def test_adaptation_arms_differ_from_the_control_by_their_method_alone_in_any_order(tmp_path, order):
    arms = {a.name: a for a in resolve_arms(load_config(write_config(tmp_path, compare=list(order))))}
    control = flatten(arms["erm"].config)
    for name, changed in (("dann", {"adapt.method"}), ("reweight", {"adapt.method"}),
                          ("scratch", {"model.pretrained"})):
        derived = flatten(arms[name].config)
        assert {k for k in control if control[k] != derived[k]} == changed, (order, name)


def test_string_override_values_stay_strings(tmp_path):
    (tmp_path / "007").write_bytes(b"weights")
    config = load_config(write_config(tmp_path, compare=[{"name": "s", "set": {"cv.group_by": "007",
                                                                                "model.pretrained": "007"}}]))
    arm = resolve_arms(config)[1]
    assert arm.config.cv.group_by == "007"
    assert arm.config.model.pretrained == str((tmp_path / "007").resolve())
    path_with_colon = {"name": "c", "set": {"cv.group_by": "site: a"}}
    config = load_config(write_config(tmp_path, compare=[path_with_colon]))
    assert resolve_arms(config)[1].config.cv.group_by == "site: a"


def test_arm_with_a_missing_checkpoint_is_an_error_with_the_closest_name(tmp_path):
    (tmp_path / "my_source.safetensors").write_bytes(b"x")
    config = load_config(write_config(tmp_path, compare=[{"name": "own", "set": {
        "model.pretrained": "./my_sourse.safetensors"}}]))
    with pytest.raises(UnknownNameError, match="did you mean .*my_source.safetensors"):
        resolve_arms(config)


def test_unknown_or_repeated_arms_are_refused(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'linear'"):
        resolve_arms(load_config(write_config(tmp_path, compare=["linaer"])))
    with pytest.raises(ConfigError, match="appears twice"):
        resolve_arms(load_config(write_config(tmp_path, compare=["linear", "linear"])))
    with pytest.raises(ConfigError, match="did you mean 'finetune.strategy'"):
        resolve_arms(load_config(write_config(tmp_path, compare=[{"name": "x", "set": {"finetune.strategi": "x"}}])))


@pytest.mark.parametrize("name", ["../../outside", "/abs", "..", ".hidden", "a/b", ""])
def test_arm_names_that_are_not_plain_names_are_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="plain name"):
        load_config(write_config(tmp_path, compare=[{"name": name, "set": {"finetune.l2sp": 0.01}}]))


def test_adaptation_arms_are_compared_with_plain_fine_tuning(tmp_path):
    from medtl.arms import control_arm

    arms = resolve_arms(load_config(write_config(tmp_path, compare=["dann", "reweight"])))
    assert [a.name for a in arms] == ["erm", "dann", "reweight"]
    assert [a.config.adapt.method for a in arms] == ["none", "dann", "reweight"] and control_arm(arms) == "erm"
    # a main arm that adapts never stands alone: the plain fine-tuning control is added, and must run
    arms = resolve_arms(load_config(write_config(tmp_path, adapt={"method": "dann"}, compare=["scratch"])))
    assert [a.name for a in arms] == ["dann", "scratch", "erm"]
    assert arms[2].required and arms[2].config.adapt.method == "none" and control_arm(arms) == "erm"
    with pytest.raises(ConfigError, match="arm 'erm' is plain fine-tuning"):
        resolve_arms(load_config(write_config(tmp_path, compare=["erm"])))
    assert control_arm(resolve_arms(load_config(write_config(tmp_path, compare=["scratch"])))) is None


def test_label_fractions_run_every_arm_again_and_compare_with_scratch_at_each_share(tmp_path):
    from medtl.arms import comparison_pairs

    config = load_config(write_config(tmp_path, compare=["scratch", "linear"], cv={"label_fractions": [1.0, 0.25]}))
    arms = resolve_arms(config)
    assert [a.name for a in arms] == ["imagenet-pretrained", "scratch", "linear", "imagenet-pretrained.frac0.25",
                                      "scratch.frac0.25", "linear.frac0.25"]
    main, quarter_linear = flatten(arms[0].config), flatten(arms[5].config)
    assert {k for k in main if main[k] != quarter_linear[k]} == {"finetune.strategy", "train.label_fraction"}
    assert comparison_pairs(arms) == [("imagenet-pretrained", "scratch"), ("linear", "scratch"),
                                      ("imagenet-pretrained.frac0.25", "scratch.frac0.25"),
                                      ("linear.frac0.25", "scratch.frac0.25")]
    with pytest.raises(ConfigError, match="use cv.label_fractions only"):
        resolve_arms(config.derive({"train.label_fraction": 0.5}))
    with pytest.raises(ConfigError, match=r"in \(0, 1\]"):
        load_config(None, ["cv.label_fractions=[0, 0.5]"])


def test_the_offline_hint_works_a_compare_arm_equal_to_the_main_arm_runs_once(caplog):
    """Issue 28.16: following the offline hint model.pretrained=none with the sample's compare: [scratch] gave
    "arm name 'scratch' appears twice"."""
    import logging

    from medtl.arms import resolve_arms
    from medtl.config import load_config

    config = load_config(None, ["model.pretrained=none", "compare=[scratch, linear]"])
    with caplog.at_level(logging.WARNING, logger="medtl"):
        arms = resolve_arms(config, check_paths=False)
    assert [a.name for a in arms] == ["scratch", "linear"]
    assert "compare arm 'scratch' is the main arm itself" in caplog.text


def test_a_meta_learned_main_arm_is_compared_with_supervised_pretraining_on_the_same_source(tmp_path):
    from medtl.arms import comparison_pairs

    source = tmp_path / "source.csv"
    source.write_text("image,label,patient_id\n")
    config = load_config(write_config(
        tmp_path, model={"backbone": "tiny-resnet", "pretrained": "source"},
        source={"manifest": str(source), "task": "maml"}, compare=["source", "scratch"],
        cv={"label_fractions": [0.25, 1.0]}))
    arms = {a.name: a for a in resolve_arms(config)}
    assert list(arms) == ["meta", "source", "scratch", "meta.frac0.25", "source.frac0.25", "scratch.frac0.25"]
    main, supervised = flatten(arms["meta"].config), flatten(arms["source"].config)
    assert {k for k in main if main[k] != supervised[k]} == {"source.task"}
    assert supervised["source.task"] == "classification"
    pairs = comparison_pairs(list(arms.values()))
    assert pairs[:3] == [("meta", "source"), ("meta", "scratch"), ("source", "scratch")]
    assert ("meta.frac0.25", "source.frac0.25") in pairs and ("meta.frac0.25", "scratch.frac0.25") in pairs
    with pytest.raises(ConfigError, match="needs whole-image inputs"):
        config.derive({"data.mode": "patch", "data.patch_size": [16, 16]})


def test_federated_arms_local_per_site_pooled_control_and_each_private_arm_against_its_twin(tmp_path):
    from medtl.arms import comparison_pairs

    manifest = tmp_path / "m.csv"
    manifest.write_text("image,label,patient_id,site\na.png,0,p1,Hosp A\nb.png,1,p2,hosp_b\nc.png,1,p3,Hosp A\n")
    raw = dict(model={"backbone": "tiny-resnet-gn", "pretrained": "none"}, train={"method": "fedavg"},
               privacy={"epsilon": 8}, data={"manifest": str(manifest), "image_size": [32, 32]})
    config = load_config(write_config(tmp_path, **raw, compare=["local", {"name": "fedavg-dp",
                                                                          "set": {"privacy.dp": True}}]))
    arms = {a.name: a for a in resolve_arms(config)}
    assert list(arms) == ["fedavg", "local-Hosp_A", "local-hosp_b", "fedavg-dp", "pooled"]
    assert arms["local-Hosp_A"].config.train.only_site == "Hosp A"
    assert arms["pooled"].config.method_name == "erm" and arms["pooled"].required
    pairs = comparison_pairs(list(arms.values()))
    assert pairs[0] == ("fedavg", "pooled") and ("fedavg", "fedavg-dp") in pairs
    assert len(pairs) == len(set(pairs))
    assert resolve_arms(config.derive({"compare": ["dp"]}))[1].config.privacy.dp
    with pytest.raises(ConfigError, match="site column"):
        resolve_arms(config.derive({"compare": ["local"], "data.manifest": str(write_config(tmp_path))}))

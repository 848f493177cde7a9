"""The tune: section: every search-space mistake is one ConfigError naming the key, before anything runs."""

import sys

import pytest
import yaml

from medtl.config import load_config
from medtl.config.tune import TuneConfig
from medtl.errors import ConfigError, UnknownNameError
from medtl.tune import objective_of, require_optuna

GOOD = {"train.lr": {"log_uniform": [1e-5, 1e-2]}, "finetune.strategy": {"choice": ["linear", "full"]},
        "train.epochs": {"int": [1, 30]}, "finetune.l2sp": {"uniform": [0, 0.1]},
        "data.image_size": {"choice": [[32, 32], [64, 64]]}}


def _load(tmp_path, tune, **top):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tune": tune, **top}))
    return load_config(path, check_paths=False)


def test_a_typed_search_space_loads_and_keeps_its_types(tmp_path):
    config = _load(tmp_path, {"space": GOOD, "trials": 5})
    space = config.tune.space
    assert space["train.epochs"].int == (1, 30) and space["data.image_size"].choice == [[32, 32], [64, 64]]
    assert objective_of(config).metric == "auc" and objective_of(config).direction == "maximize"


@pytest.mark.parametrize("space, extra, words", [
    ({"train.lrr": {"log_uniform": [1e-5, 1e-2]}}, {}, ["train.lrr", "did you mean 'train.lr'"]),
    ({"train.epochs": {"int": [0, 3]}}, {}, ["train.epochs", "greater than or equal to 1"]),
    ({"finetune.strategy": {"choice": ["linear", "fulll"]}}, {}, ["finetune.strategy", "'fulll'"]),
    ({"model.dropout": {"uniform": [0.0, 1.5]}}, {}, ["model.dropout", "1.5"]),
    ({"train.lr": {"uniform": [0.1, 0.1]}}, {}, ["empty"]),
    ({"train.lr": {"log_uniform": [0, 0.1]}}, {}, ["above 0"]),
    ({"train.epochs": {"int": [5, 2]}}, {}, ["empty"]),
    ({"finetune.strategy": {"choice": ["full"]}}, {}, ["fewer than two"]),
    ({"train.lr": {"uniform": [0.1, 0.2], "int": [1, 2]}}, {}, ["exactly one of"]),
    ({"cv.folds": {"int": [2, 5]}}, {}, ["cv.folds", "cannot be searched"]),
    ({"data.manifest": {"choice": ["a.csv", "b.csv"]}}, {}, ["data.manifest", "cannot be searched"]),
    ({"train.lr": {"uniform": [0.1, 0.2]}}, {"sampler": "grid"}, ["grid", "train.lr"]),
    ({"train.lr": {"uniform": [0.1, 0.2]}}, {"trialz": 3}, ["tune.trialz", "did you mean 'tune.trials'"]),
    ({}, {}, ["tune.space"]),
])
def test_a_space_that_cannot_run_is_one_config_error_naming_the_key(tmp_path, space, extra, words):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, {"space": space, **extra})
    message = str(error.value)
    assert all(w in message for w in words), message
    assert "\n" not in message


def test_an_unknown_metric_is_refused_with_the_task_metrics(tmp_path):
    config = _load(tmp_path, {"space": GOOD, "metric": "aucc"})
    with pytest.raises(UnknownNameError, match="did you mean 'auc'"):
        objective_of(config)
    seg = _load(tmp_path, {"space": {"train.lr": {"uniform": [0.001, 0.01]}}}, task="segmentation")
    assert objective_of(seg).metric == "dice"
    assert objective_of(seg.derive({"tune.metric": "hd95"}, check_paths=False)).direction == "minimize"


def test_without_optuna_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"medtl\[tune\]"):
        require_optuna()


def test_a_multitask_objective_reads_its_primary_task_from_records_and_rows(tmp_path):
    import numpy as np

    config = _load(tmp_path, {"space": {"train.lr": {"uniform": [0.001, 0.01]}}}, task="multitask",
                   tasks=[{"name": "nodule", "kind": "classification", "column": "label"},
                          {"name": "lesion", "kind": "segmentation", "column": "mask"}])
    objective = objective_of(config)
    assert (objective.head, objective.metric) == ("nodule", "auc")
    assert objective.score({"nodule.auc": 0.75, "lesion.dice": 0.1}) == 0.75
    rows = [{"case_id": f"c{i}", "patient_key": f"p{i}", "task": "nodule", "fold": (i // 2) % 2, "repeat": 0,
             "label": str(i % 2), "label_index": i % 2, "prob_0": 1 - p, "prob_1": p}
            for i, p in enumerate([0.2, 0.9, 0.4, 0.6, 0.1, 0.8, 0.7, 0.3])]
    rows.append({"case_id": "c0", "patient_key": "p0", "task": "lesion", "fold": 0, "repeat": 0, "dice": 0.5})
    statistic, patients = objective.statistic(config, rows, {"nodule": ["0", "1"], "lesion": ["bg", "lesion"]})
    assert len(patients) == 8
    # the mean of the folds' AUCs, as a search ranks trials: fold 0 separates perfectly (1.0), fold 1 ranks one
    # positive above one negative of four pairs (0.25); the pooled AUC of all eight would be another number
    assert statistic(np.arange(8)) == pytest.approx(0.625)


@pytest.mark.parametrize("top, words", [
    ({"cv": {"seeds": 2}}, "cv.seeds"),
    ({"cv": {"label_fractions": [0.5, 1.0]}}, "cv.label_fractions"),
])
def test_what_a_search_does_not_combine_with_is_refused_before_anything_runs(tmp_path, top, words):
    from medtl.workflows.tune import check_tunable

    config = _load(tmp_path, {"space": GOOD}, **top)
    with pytest.raises(ConfigError, match=words):
        check_tunable(config)


def test_tune_arms_must_name_compare_arms(tmp_path):
    from medtl.workflows.tune import check_tunable

    config = _load(tmp_path, {"space": GOOD, "arms": ["linaer"]}, compare=["linear"])
    with pytest.raises(ConfigError, match="did you mean 'linear'"):
        check_tunable(config)
    taken = _load(tmp_path, {"space": GOOD, "arms": ["linear"]},
                  compare=["linear", {"name": "linear-tuned", "set": {"train.lr": 0.01}}])
    with pytest.raises(ConfigError, match="'linear-tuned' is the searched 'linear' arm"):
        check_tunable(taken)


def test_medtl_tune_without_a_tune_section_says_what_to_add(tmp_path):
    from medtl.workflows.tune import check_tunable

    with pytest.raises(ConfigError, match="tune.space"):
        check_tunable(load_config(None))


def test_choices_that_are_lists_round_trip_through_optuna_and_grids_are_counted():
    from medtl.tune.space import decode_params, grid_of, grid_size, optuna_distributions

    config = TuneConfig(space={"data.image_size": {"choice": [[32, 32], [64, 64]]},
                               "train.epochs": {"int": [2, 4]}, "train.lr": {"log_uniform": [1e-4, 1e-2]}})
    dists = optuna_distributions(config.space)
    assert dists["train.lr"].log and (dists["train.epochs"].low, dists["train.epochs"].high) == (2, 4)
    encoded = dists["data.image_size"].choices[1]
    assert decode_params(config.space, {"data.image_size": encoded, "train.epochs": 3, "train.lr": 0.001}) == \
        {"data.image_size": [64, 64], "train.epochs": 3, "train.lr": 0.001}
    discrete = TuneConfig(space={k: v for k, v in config.space.items() if k != "train.lr"})
    assert grid_size(discrete.space) == 6 and grid_of(discrete.space)["train.epochs"] == [2, 3, 4]


def test_medtl_config_states_the_search_plan_and_reports_a_bad_metric_as_a_problem(tmp_path):
    from medtl.workflows.preflight import preflight

    (tmp_path / "m.csv").write_text("image,label,patient_id\na.png,0,p1\nb.png,1,p2\n")
    config = _load(tmp_path, {"space": GOOD, "trials": 7, "inner_folds": 4},
                   data={"manifest": str(tmp_path / "m.csv")}, model={"pretrained": "none"})
    result = preflight(config)
    assert "tune: each outer fold x 7 trial(s) x 4 inner folds, tpe sampler, maximize auc" in result.facts
    bad = preflight(config.derive({"tune.metric": "aucc"}, check_paths=False))
    assert any("tune.metric 'aucc'" in p for p in bad.problems)

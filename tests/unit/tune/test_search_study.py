"""The study of one outer fold: trials depend only on the seed and the trials finished before them (so a resumed
search asks the same ones), the median rule, the final parameters and the optimism interval."""

import math

import numpy as np
import pytest

from medtl.config.tune import TuneConfig
from medtl.evaluate.stats import mean_unpaired_difference, unpaired_patient_bootstrap
from medtl.tune import MedianRule, SearchStudy
from medtl.tune.final import differing_keys, final_parameters

pytest.importorskip("optuna")

SPACE = {"train.lr": {"log_uniform": [1e-4, 1e-1]}, "finetune.strategy": {"choice": ["linear", "full"]},
         "data.image_size": {"choice": [[16, 16], [32, 32]]}, "train.epochs": {"int": [1, 9]}}


def _score(params) -> float:
    return -abs(math.log10(params["train.lr"]) + 2) + (params["finetune.strategy"] == "full") * 0.1


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_an_interrupted_search_asks_the_same_trials_as_one_that_ran_through(tmp_path, sampler):
    tune = TuneConfig(space=SPACE, trials=14, sampler=sampler, startup_trials=3)
    straight = SearchStudy(tmp_path / "a.db", tune, 7, 1, "maximize")
    expected = []
    for _ in range(8):
        trial = straight.ask()
        expected.append(trial)
        straight.tell(trial.number, [_score(trial.params)], "COMPLETE", 0.1)

    interrupted = SearchStudy(tmp_path / "b.db", tune, 7, 1, "maximize")
    for _ in range(4):
        trial = interrupted.ask()
        interrupted.tell(trial.number, [_score(trial.params)], "COMPLETE", 0.1)
    running = interrupted.ask()  # the process dies while this trial runs
    resumed = SearchStudy(tmp_path / "b.db", tune, 7, 1, "maximize")
    assert resumed.interrupted() == [running] == [expected[4]]
    resumed.tell(running.number, [_score(running.params)], "COMPLETE", 0.1)
    for index in range(5, 8):
        trial = resumed.ask()
        assert trial == expected[index]
        resumed.tell(trial.number, [_score(trial.params)], "COMPLETE", 0.1)
    assert resumed.best().number == straight.best().number
    assert isinstance(expected[0].params["data.image_size"], list)  # a list choice comes back as a list


def test_another_seed_or_outer_fold_asks_other_trials(tmp_path):
    tune = TuneConfig(space=SPACE, trials=3, sampler="random")
    first = SearchStudy(tmp_path / "a.db", tune, 7, 0, "maximize").ask()
    assert SearchStudy(tmp_path / "b.db", tune, 7, 1, "maximize").ask() != first
    assert SearchStudy(tmp_path / "c.db", tune, 8, 0, "maximize").ask() != first


def test_a_grid_search_visits_each_point_once(tmp_path):
    tune = TuneConfig(space={"finetune.strategy": {"choice": ["linear", "full"]}, "train.epochs": {"int": [1, 3]}},
                      sampler="grid", trials=6)
    study = SearchStudy(tmp_path / "g.db", tune, 0, 0, "maximize")
    seen = []
    for _ in range(6):
        trial = study.ask()
        seen.append((trial.params["finetune.strategy"], trial.params["train.epochs"]))
        study.tell(trial.number, [0.5], "COMPLETE", 0.1)
    assert sorted(seen) == sorted((s, e) for s in ("linear", "full") for e in (1, 2, 3))


def test_the_median_rule_prunes_only_below_the_median_of_finished_trials_after_five():
    curves = [[0.6, 0.62], [0.7, 0.7], [0.5, 0.55], [0.8, 0.75], [0.65, 0.6]]
    assert not MedianRule.from_finished("maximize", curves[:4]).prunes(0, 0.1)  # fewer than 5 finished
    rule = MedianRule.from_finished("maximize", curves)
    assert rule.thresholds[0] == pytest.approx(0.65)
    assert rule.prunes(0, 0.64) and not rule.prunes(0, 0.66) and not rule.prunes(0, float("nan"))
    assert MedianRule.from_finished("minimize", curves).prunes(0, 0.66)


def test_final_parameters_take_the_most_frequent_choice_and_the_median_of_ranges():
    tune = TuneConfig(space=SPACE)
    chosen = [{"train.lr": 1e-3, "finetune.strategy": "full", "data.image_size": [16, 16], "train.epochs": 2},
              {"train.lr": 1e-2, "finetune.strategy": "linear", "data.image_size": [32, 32], "train.epochs": 5},
              {"train.lr": 1e-1, "finetune.strategy": "full", "data.image_size": [32, 32], "train.epochs": 9}]
    values, rules = final_parameters(tune.space, chosen)
    assert values["finetune.strategy"] == "full" and values["data.image_size"] == [32, 32]
    assert values["train.lr"] == pytest.approx(1e-2) and values["train.epochs"] == 5
    assert "2 of 3" in rules["finetune.strategy"] and "geometric" in rules["train.lr"]
    tie, _ = final_parameters(tune.space, chosen[:2])
    assert tie["finetune.strategy"] == "linear"  # a tie goes to the value listed first in the space
    assert differing_keys(tune.space, chosen) == list(SPACE)
    assert differing_keys(tune.space, [chosen[0], chosen[0]]) == []


def test_the_optimism_interval_of_one_pair_is_the_unpaired_bootstrap_and_averages_pairs():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1, 40), rng.normal(0.0, 1, 30)
    pa, pb = [f"a{i // 2}" for i in range(40)], [f"b{i}" for i in range(30)]

    def mean_a(rows):
        return float(np.mean(a[rows]))

    def mean_b(rows):
        return float(np.mean(b[rows]))

    one = mean_unpaired_difference([(mean_a, pa, mean_b, pb)], 300, 3)
    assert {k: one[k] for k in ("difference", "ci95")} == unpaired_patient_bootstrap(mean_a, pa, mean_b, pb, 300, 3)
    assert one["parts"] == [{"difference": one["difference"], "ci95": one["ci95"]}]
    two = mean_unpaired_difference([(mean_a, pa, mean_b, pb), (mean_b, pb, mean_b, pb)], 300, 3)
    assert two["difference"] == pytest.approx(one["difference"] / 2)
    assert two["ci95"][0] < two["difference"] < two["ci95"][1]
    assert two["parts"][0]["difference"] == one["difference"]
    assert two["parts"][1]["difference"] == 0


def test_a_trial_the_process_died_asking_gets_the_parameters_it_would_have_had(tmp_path):
    tune = TuneConfig(space=SPACE, trials=5, sampler="random")
    straight = SearchStudy(tmp_path / "a.db", tune, 3, 0, "maximize")
    expected = straight.ask()
    killed = SearchStudy(tmp_path / "b.db", tune, 3, 0, "maximize")
    killed.study.ask()  # created in the study, killed before any parameter was sampled
    assert SearchStudy(tmp_path / "b.db", tune, 3, 0, "maximize").interrupted() == [expected]


def test_one_metric_of_the_classification_metrics_is_the_same_number_computed_alone():
    from medtl.tasks.metrics import classification_metrics

    rng = np.random.default_rng(1)
    labels = np.arange(30) % 3
    probs = rng.dirichlet(np.ones(3), 30)
    full = classification_metrics(labels, probs)
    assert {name: classification_metrics(labels, probs, (name,))[name] for name in full} == full
    binary = classification_metrics(labels % 2, probs[:, :2] / probs[:, :2].sum(1, keepdims=True))
    assert classification_metrics(labels % 2, probs[:, :2] / probs[:, :2].sum(1, keepdims=True), ("auc",)) == \
        {"auc": binary["auc"]}


def test_the_eta_counts_only_trials_left_and_the_time_of_trials_run_now():
    from medtl.workflows.tune_search import SearchClock

    totals = []
    clock = SearchClock(10, lambda n=1, description=None, total=None: totals.append(total))
    clock.finished_before(6)  # a resumed search: 6 trials were done before the interruption
    assert totals == [4]
    assert clock.trial_done(3.0) == "ETA 9 s"  # 3 left at 3 s each
    assert clock.trial_done(31.0) == "ETA 34 s"  # 2 left at a mean of 17 s

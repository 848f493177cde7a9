"""The report section of a nested search says in words what a reader must not miss: the folds chose differently,
the naive number beside the honest one, which arms were not tuned."""

from medtl.evaluate.tune_report import search_section


def _block(chosen_differ):
    outer = [{"outer": f"outer{k}", "best_trial": k, "params": {"train.lr": 0.001 * (k + 1), "finetune.strategy": s},
              "inner_best": 0.8, "outer_score": 0.6, "gap": {"difference": 0.2, "ci95": [0.05, 0.35]},
              "trials": {"complete": 4, "pruned": 1, "fail": 0},
              "history": [[0, 0.7, "COMPLETE"], [1, 0.8, "COMPLETE"], [2, 0.5, "PRUNED"]]}
             for k, s in enumerate(["full", "linear"])]
    return {"space": {"train.lr": {"log_uniform": [1e-4, 1e-2]}, "finetune.strategy": {"choice": ["full", "linear"]}},
            "sampler": "tpe", "trials": 5, "inner_folds": 3, "metric": "auc", "direction": "maximize",
            "pruning": True, "outer": outer, "fixed_arms": ["imagenet-pretrained", "scratch"],
            "optimism": {"naive_inner_best": 0.8, "gap": {"difference": 0.2, "ci95": [0.05, 0.35]}},
            "chosen_differ": chosen_differ, "importance": {"train.lr": 0.7, "finetune.strategy": 0.3},
            "importance_method": "fANOVA (Optuna), mean over outer folds",
            "final": {"params": {"train.lr": 0.0014, "finetune.strategy": "full"},
                      "rules": {"train.lr": "geometric median", "finetune.strategy": "most frequent choice"},
                      "config": "tune/final_config.yaml"},
            "audit": {"outer_folds": 2, "trial_folds_checked": 30, "passed": True}}


def test_the_section_states_disagreement_the_naive_number_and_the_fixed_arms():
    title, body = search_section(_block(["train.lr", "finetune.strategy"]))
    assert title == "Hyper-parameter search (nested cross-validation)"
    assert "chose <b>different</b> values of train.lr, finetune.strategy" in body
    assert "0.800 on average on their inner folds" in body and "+0.200" in body
    assert "imagenet-pretrained, scratch" in body and "tune/final_config.yaml" in body
    assert "30 trial fold(s) of 2 outer fold(s) checked" in body and "data:image/png;base64," in body
    _, agreeing = search_section(_block([]))
    assert "Every outer fold chose the same values" in agreeing and "different" not in agreeing

"""What DP-SGD spent per arm: the largest epsilon over folds, the group-privacy factor, the report's table."""

from medtl.evaluate.privacy_report import privacy_section, privacy_summary


def spent(epsilon, images=1):
    return {"epsilon": epsilon, "delta": 0.01, "noise_multiplier": 1.1, "max_grad_norm": 1.0, "sample_rate": 0.2,
            "steps": 30, "max_images_per_patient": images}


def test_the_summary_keeps_the_worst_fold_and_the_sentence_states_group_privacy():
    metrics = {"arms": {"dp": {"folds": [{"privacy": spent(3.0, 2)}, {"privacy": spent(4.5)}]},
                        "plain": {"folds": [{"auc": 0.7}]}}}
    summary = privacy_summary(metrics)
    assert list(summary) == ["dp"] and summary["dp"]["epsilon"] == 4.5 and summary["dp"]["folds"] == 2
    assert summary["dp"]["max_images_per_patient"] == 2
    title, html = privacy_section(summary)
    assert title == "Differential privacy" and "epsilon 4.50" in html and "2 x epsilon" in html

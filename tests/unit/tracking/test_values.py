"""What trackers receive: finite numbers only, results named per arm/task, config paths replaced by hashes."""

import math

from medtl.tracking.values import config_params, epoch_values, summary_values


def test_epoch_values_keep_finite_numbers_and_drop_the_step_and_wall_time():
    record = {"epoch": 3, "seconds": 1.2, "train_loss": 0.5, "inner_score": math.nan, "lr": 1e-3, "flag": True}
    assert epoch_values(record) == {"train_loss": 0.5, "lr": 1e-3}


def test_summary_values_name_every_arm_metric_and_comparison_and_skip_undefined_ones():
    block = {"arms": {"a": {"summary": {"auc": {"pooled": 0.7, "ci95": [0.6, 0.8], "mean": 0.71, "std": math.nan}}}},
             "comparisons": [{"a": "a", "b": "b", "metric": "auc", "mean_diff": 0.1, "ci95": [0.0, 0.2],
                              "p_value": 0.04}]}
    single = summary_values(block)
    assert single["summary/a/auc/pooled"] == 0.7 and "summary/a/auc/std" not in single
    assert single["compare/a_vs_b/auc/p_value"] == 0.04
    multi = summary_values({"tasks": {"nodule": block}, **block})
    assert "summary/nodule/a/auc/pooled" in multi and "summary/a/auc/pooled" not in multi


def test_config_params_never_carry_a_path(tmp_path):
    manifest = tmp_path / "SMITH_JOHN" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("image\n")
    params = config_params({"data.manifest": str(manifest), "source.manifest": "/gone/DOE_JANE.csv",
                            "train.lr": 0.001, "tracking.mlflow_uri": "http://x", "track": ["mlflow"]})
    assert params["data.manifest"].startswith("file sha256 ")
    assert params["source.manifest"] == "a path (not a file here)"
    assert params["train.lr"] == "0.001" and "tracking.mlflow_uri" not in params and "track" not in params
    assert not any("SMITH" in v or "DOE" in v for v in params.values())

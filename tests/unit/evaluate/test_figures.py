"""Every report figure renders a real PNG, also for the awkward cases (one class per fold, long class names)."""

import base64

import numpy as np
import pytest

from medtl.evaluate import figures


def is_png(data: str) -> bool:
    return base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"


def rows(labels, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, len(labels))
    return [{"label_index": int(y), "prob_0": 1 - q, "prob_1": q, "repeat": 0, "fold": i % 2, "dice": q, "iou": q / 2}
            for i, (y, q) in enumerate(zip(labels, p))]


def test_figures_render_for_normal_and_degenerate_inputs():
    both = {"a": rows([0, 1] * 10), "b": rows([1, 0] * 10, 1)}
    one_class = {"a": rows([1] * 8)}
    assert is_png(figures.roc_figure(both, "1")) and is_png(figures.roc_figure(one_class, "1"))
    assert is_png(figures.calibration_figure(both, ["0", "1"]))
    assert is_png(figures.confusion_figure(np.array([[3, 1], [0, 4]]), ["a very long class name", "short"], "a"))
    assert is_png(figures.distribution_figure(both))
    history = [[{"epoch": e, "train_loss": 1 / (e + 1), "lr": 0.001} for e in range(3)]]
    assert is_png(figures.learning_curves_figure({"a": history}))
    assert is_png(figures.overlay_figure(np.zeros((16, 16)), np.eye(16), np.eye(16), "x"))


def drawn(monkeypatch):
    """Make the figure functions return their matplotlib figure instead of a PNG."""
    monkeypatch.setattr(figures, "_png", lambda fig: fig)


def legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_the_roc_draws_the_pooled_curve_whose_auc_the_table_reports_with_its_band(monkeypatch):
    """Issue 28.17: the ROC was the mean of folds (a near-perfect curve) beside a pooled headline AUC."""
    from sklearn.metrics import roc_auc_score

    from medtl.tasks.metrics import classification_metrics

    drawn(monkeypatch)
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    data = rows(labels.tolist(), 3)
    for r, y in zip(data, labels):  # folds that each separate well, pooled less well (scores shifted per fold)
        r["prob_1"] = float(np.clip(0.3 * y + 0.5 * r["fold"] + rng.uniform(0, 0.2), 0, 1))
        r["prob_0"], r["patient_key"] = 1 - r["prob_1"], f"p{len(data) and rng.integers(0, 30)}"
    pooled = classification_metrics(labels, np.array([[r["prob_0"], r["prob_1"]] for r in data]))["auc"]
    assert pooled == pytest.approx(roc_auc_score(labels, [r["prob_1"] for r in data]), abs=1e-6)
    ax = figures.roc_figure({"arm": data}, "1").axes[0]
    texts = legend_texts(ax)
    assert f"pooled out-of-fold: AUC {pooled:.3f}" in texts and "95% patient-bootstrap band" in texts
    assert "each fold" in texts and not any("mean of folds" in t for t in texts)


def test_the_external_roc_is_the_ensemble_with_its_fold_models_not_a_mean_of_folds(monkeypatch):
    drawn(monkeypatch)
    ensemble = rows([0, 1] * 10, 4)
    members = {"repeat0_fold0": rows([0, 1] * 10, 5), "repeat0_fold1": rows([0, 1] * 10, 6)}
    ax = figures.roc_figure({"ensemble": ensemble}, "1", "ensemble", member_rows=members).axes[0]
    texts = legend_texts(ax)
    assert any(t.startswith("ensemble: AUC ") for t in texts) and "each fold model" in texts
    assert not any("mean of folds" in t for t in texts)


def test_calibration_bins_carry_their_uncertainty(monkeypatch):
    from matplotlib.container import ErrorbarContainer

    drawn(monkeypatch)
    ax = figures.calibration_figure({"a": rows([0, 1] * 20)}, ["0", "1"]).axes[0]
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)


def test_the_learning_curve_legend_lists_only_the_lines_drawn(monkeypatch):
    """Issue 28.17: the legend promised a dashed line that was not drawn; the inner-split score is the validation
    curve, on its own axis."""
    drawn(monkeypatch)
    losses = [[{"epoch": e, "train_loss": 1 / (e + 1)} for e in range(3)]]
    fig = figures.learning_curves_figure({"a": losses})
    assert len(fig.axes) == 1 and "dashed" not in fig.axes[0].get_ylabel()
    assert legend_texts(fig.axes[0]) == ["fold 0: training loss"]
    scored = [[{"epoch": e, "train_loss": 1 / (e + 1), "inner_score": 0.6 + e / 10} for e in range(3)]]
    fig = figures.learning_curves_figure({"a": scored})
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "inner-split score (dashed)"
    assert legend_texts(fig.axes[0]) == ["fold 0: training loss", "fold 0: inner-split score"]

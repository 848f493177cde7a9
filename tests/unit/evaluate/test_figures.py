"""Every report figure renders a real PNG, also for the awkward cases (one class per fold, long class names)."""

import base64

import numpy as np

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

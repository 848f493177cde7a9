"""Report figures (matplotlib, Agg), returned as base64 PNG strings."""

from __future__ import annotations

import base64
import io

import numpy as np


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _figure(width: float = 5.0, height: float = 4.0, ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)


def roc_figure(arm_rows: dict[str, list[dict]], positive: str) -> str:
    """Per-fold ROC curves (thin), mean curve and +/-1 SD band across folds, one panel per arm."""
    from sklearn.metrics import roc_curve

    fig, axes = _figure(ncols=len(arm_rows))
    grid = np.linspace(0, 1, 101)
    for ax, (arm, rows) in zip(axes[0], arm_rows.items()):
        curves = []
        for key in sorted({(r["repeat"], r["fold"]) for r in rows}):
            fold = [r for r in rows if (r["repeat"], r["fold"]) == key]
            labels = np.array([r["label_index"] for r in fold])
            if len(set(labels)) < 2:
                continue
            fpr, tpr, _ = roc_curve(labels == 1, [r[f"prob_{positive}"] for r in fold])
            ax.plot(fpr, tpr, lw=0.8, alpha=0.5)
            curves.append(np.interp(grid, fpr, tpr))
        if curves:
            mean, sd = np.mean(curves, 0), np.std(curves, 0)
            ax.plot(grid, mean, color="black", lw=2, label="mean of folds")
            ax.fill_between(grid, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), alpha=0.2, color="gray",
                            label="±1 SD across folds")
        if not curves:  # never an empty panel without a word
            ax.text(0.5, 0.5, "no fold holds both classes:\nROC undefined", ha="center", va="center")
        ax.plot([0, 1], [0, 1], "--", color="gray", lw=0.8)
        ax.set(title=f"ROC: {arm}", xlabel="1 - specificity", ylabel="sensitivity")
        if curves:
            ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def calibration_figure(arm_rows: dict[str, list[dict]], class_names: list[str]) -> str:
    """Reliability diagram (10 equal-width bins, pooled out-of-fold) over the number of cases in each bin.

    Binary: P(positive); multi-class: the top-class probability. The legend gives ECE and
    the Brier score, so the picture and the numbers in the tables can be read together.
    """
    from ..tasks.metrics import brier_score, calibration_bins, expected_calibration_error

    fig, axes = _figure(height=5.5)
    ax = axes[0][0]
    counts_ax = ax.inset_axes([0.0, -0.45, 1.0, 0.25])
    width = 0.8 / max(1, len(arm_rows)) / 10
    for k, (arm, rows) in enumerate(arm_rows.items()):
        probs = np.array([[r[f"prob_{n}"] for n in class_names] for r in rows])
        labels = np.array([r["label_index"] for r in rows])
        predicted, observed, counts = calibration_bins(labels, probs)
        label = (f"{arm} (ECE {expected_calibration_error(labels, probs):.3f}, "
                 f"Brier {brier_score(labels, probs):.3f})")
        ax.plot(predicted, observed, marker="o", label=label)
        centres = (np.minimum((predicted * 10).astype(int), 9) + 0.5) / 10
        counts_ax.bar(centres - 0.4 / 10 + k * width, counts, width=width, label=arm)
    ax.plot([0, 1], [0, 1], "--", color="gray")
    what = "P(positive)" if len(class_names) == 2 else "top-class probability"
    ax.set(title="Calibration (pooled out-of-fold)", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper left")
    counts_ax.set(xlim=(0, 1), xlabel=f"predicted {what}", ylabel="cases")
    return _png(fig)


def confusion_figure(matrix: np.ndarray, class_names: list[str], arm: str) -> str:
    """Confusion matrix heat map (rows truth, columns prediction) as base64 PNG."""
    size = 3.5 + 0.5 * len(class_names)
    fig, axes = _figure(size + 1.0, size)
    ax = axes[0][0]
    ax.imshow(matrix, cmap="Blues", vmin=0)
    dark = matrix.max() * 0.55
    for (i, j), value in np.ndenumerate(matrix):  # white on dark cells: every count readable
        ax.text(j, i, str(value), ha="center", va="center", fontsize=11,
                color="white" if value > dark else "black")
    long_names = max(len(str(n)) for n in class_names) > 10
    ax.set(xticks=range(len(class_names)), yticks=range(len(class_names)), xlabel="predicted", ylabel="true",
           title=f"Confusion matrix: {arm}")
    ax.set_xticklabels(class_names, rotation=30 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticklabels(class_names)
    return _png(fig)


def learning_curves_figure(histories: dict[str, list[list[dict]]]) -> str:
    """Training loss (and inner score) per epoch of every fold and arm, base64 PNG."""
    fig, axes = _figure(ncols=len(histories))
    for ax, (arm, folds) in zip(axes[0], histories.items()):
        for index, history in enumerate(folds):
            ax.plot([h["epoch"] + 1 for h in history], [h["train_loss"] for h in history], label=f"fold {index}")
            if any("inner_score" in h for h in history):
                ax.plot([h["epoch"] + 1 for h in history], [h.get("inner_score", np.nan) for h in history], "--")
        ax.set(title=f"Training loss: {arm}", xlabel="epoch", ylabel="loss (dashed: inner-split score)")
        ax.legend(fontsize=7)
    return _png(fig)


def task_losses_figure(histories: dict[str, list[dict]]) -> str:
    """Multi-task arms: each task's loss (solid) and loss weight (dashed, right axis) per epoch, base64 PNG."""
    fig, axes = _figure(width=5.5, ncols=len(histories))
    fig.subplots_adjust(wspace=0.5)
    for ax, (arm, history) in zip(axes[0], histories.items()):
        epochs = [h["epoch"] + 1 for h in history]
        right = ax.twinx()
        tasks = sorted({k[len("weight_"):] for h in history for k in h if k.startswith("weight_")})
        for task in tasks:
            line, = ax.plot(epochs, [h.get(f"loss_{task}", np.nan) for h in history], label=f"{task} loss")
            right.plot(epochs, [h.get(f"weight_{task}", np.nan) for h in history], "--", color=line.get_color(),
                       label=f"{task} weight")
        ax.set(title=f"Task losses and weights: {arm} (first fold)", xlabel="epoch", ylabel="loss (solid)")
        right.set_ylabel("loss weight (dashed)")
        ax.legend(fontsize=7)
    return _png(fig)


def distribution_figure(arm_rows: dict[str, list[dict]], metrics=("dice", "iou")) -> str:
    """Per-case Dice and IoU of each arm as box plots, base64 PNG."""
    fig, axes = _figure(4.0, 3.5, ncols=len(metrics))
    for ax, metric in zip(axes[0], metrics):
        data = [[r[metric] for r in rows if np.isfinite(r[metric])] for rows in arm_rows.values()]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(arm_rows) + 1), list(arm_rows))
        ax.set(title=f"{metric} per case", ylim=(-0.02, 1.02))
    return _png(fig)


def overlay_figure(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, title: str) -> str:
    """One slice with the true (green) and predicted (red, dashed) contours, base64 PNG."""
    fig, axes = _figure(3.2, 3.2)
    ax = axes[0][0]
    ax.imshow(image, cmap="gray")
    if truth.any():
        ax.contour(truth > 0, colors="lime", linewidths=1)
    if pred.any():
        ax.contour(pred > 0, colors="red", linewidths=1, linestyles="dashed")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return _png(fig)


def site_metric_figure(per_site: dict[str, dict], metric: str) -> str:
    """``metric`` at each site for each arm, with 95% CI bars (patient bootstrap), base64 PNG."""
    sites = sorted({s for arm in per_site.values() for s in arm})
    fig, axes = _figure(max(4.0, 1.6 * len(sites)), 3.6)
    ax = axes[0][0]
    width = 0.8 / max(1, len(per_site))
    for k, (arm, by_site) in enumerate(per_site.items()):
        xs, values, low, high = [], [], [], []
        for i, site in enumerate(sites):
            if site not in by_site:
                continue
            entry = by_site[site]["metrics"][metric]
            value, (lo, hi) = entry["value"], entry["ci95"]
            if value is None or not np.isfinite(value):  # undefined at this site (e.g. one class): no point
                continue
            lo, hi = (np.nan if v is None else v for v in (lo, hi))
            xs.append(i - 0.4 + width * (k + 0.5))
            values.append(value)
            low.append(value - lo if np.isfinite(lo) else 0.0)
            high.append(hi - value if np.isfinite(hi) else 0.0)
        ax.errorbar(xs, values, yerr=[low, high], fmt="o", capsize=3, label=arm)
    ax.set_xticks(range(len(sites)), sites)
    ax.set(title=f"{metric} per site (95% CI, patient bootstrap)", ylabel=metric, ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    return _png(fig)


def label_efficiency_figure(curves: dict[str, list[dict]], metric: str) -> str:
    """``metric`` against labelled training patients per arm, with the 95% CI as a band, base64 PNG."""
    fig, axes = _figure(5.5, 4.0)
    ax = axes[0][0]
    for arm, points in curves.items():
        points = [p for p in points if p["value"] is not None and np.isfinite(p["value"])]
        if not points:
            continue
        x = [p["labelled_patients"] if p["labelled_patients"] is not None else p["fraction"] for p in points]
        value = np.array([p["value"] for p in points], dtype=float)
        low = np.array([np.nan if p["ci95"][0] is None else p["ci95"][0] for p in points], dtype=float)
        high = np.array([np.nan if p["ci95"][1] is None else p["ci95"][1] for p in points], dtype=float)
        line, = ax.plot(x, value, marker="o", label=arm)
        ax.fill_between(x, low, high, alpha=0.15, color=line.get_color())
    ax.set(title=f"{metric} vs labelled patients (95% CI band)", xlabel="labelled training patients per fold (mean)",
           ylabel=metric)
    ax.legend(fontsize=8)
    return _png(fig)


def source_curves_figure(stages: list[dict]) -> str:
    """Per source stage: training loss per epoch and (dashed, right axis) the linear-probe AUC, base64 PNG."""
    fig, axes = _figure(width=5.5, ncols=len(stages))
    fig.subplots_adjust(wspace=0.5)  # room for each panel's right-hand probe axis
    for ax, stage in zip(axes[0], stages):
        history = stage["history"]
        trained = [h for h in history if "train_loss" in h]
        ax.plot([h["epoch"] + 1 for h in trained], [h["train_loss"] for h in trained], color="C0")
        ax.set(title=f"Source stage {stage['fingerprint'][:8]} ({stage.get('method', 'supervised')})",
               xlabel="epoch (0 = before pretraining)", ylabel="training loss")
        probed = [h for h in history if "probe_auc" in h]
        if probed:
            twin = ax.twinx()
            twin.plot([h["epoch"] + 1 for h in probed], [h["probe_auc"] for h in probed], "o--", color="C1")
            twin.axhline(0.5, color="grey", lw=0.5)
            twin.set(ylabel="linear-probe AUC (dashed)", ylim=(0, 1))
    return _png(fig)


def explanation_figure(panels: list[tuple[np.ndarray, np.ndarray, str]], title: str) -> str:
    """Images (gray) with their explanation maps (heat, transparent where 0), one panel each, base64 PNG."""
    fig, axes = _figure(2.6, 2.8, ncols=len(panels))
    for ax, (image, heat, caption) in zip(axes[0], panels):
        ax.imshow(image, cmap="gray")
        ax.imshow(np.ma.masked_less_equal(heat, 0.05), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _png(fig)

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


ROC_BOOTSTRAP = 200  # patient resamples behind the ROC band (a picture: the table's CIs use 1000)


def _roc_band(labels: np.ndarray, scores: np.ndarray, patients: list[str], grid: np.ndarray) -> tuple | None:
    """Pointwise 95% band of the pooled ROC over patient-bootstrap resamples (``None`` if too few are defined)."""
    from sklearn.metrics import roc_curve

    from .resamples import evaluate_resamples
    from .stats import _draws, _patient_rows

    def curve(rows: np.ndarray) -> np.ndarray | None:
        if len(set(labels[rows])) < 2:
            return None
        fpr, tpr, _ = roc_curve(labels[rows], scores[rows])
        return np.interp(grid, fpr, tpr)

    groups = _patient_rows(patients)
    curves = [c for c in evaluate_resamples(curve, groups, _draws(groups, ROC_BOOTSTRAP, 0)) if c is not None]
    if len(curves) < ROC_BOOTSTRAP // 2:
        return None
    return np.percentile(curves, 2.5, axis=0), np.percentile(curves, 97.5, axis=0)


def roc_figure(arm_rows: dict[str, list[dict]], positive: str, curve_label: str = "pooled out-of-fold",
               member_rows: dict[str, list[dict]] | None = None) -> str:
    """One panel per arm: the ROC of the pooled rows (the curve whose AUC the table reports, labelled with it) with
    a 95% patient-bootstrap band, and each fold's curve thin (or each of ``member_rows``, e.g. the fold models of an
    ensemble scored on an external set)."""
    from sklearn.metrics import auc, roc_curve

    fig, axes = _figure(ncols=len(arm_rows))
    grid = np.linspace(0, 1, 101)
    for ax, (arm, rows) in zip(axes[0], arm_rows.items()):
        labels = np.array([r["label_index"] for r in rows]) == 1
        scores = np.array([r[f"prob_{positive}"] for r in rows], dtype=float)
        members = member_rows or {f"fold {key[1]}" + (f" (repeat {key[0]})" if key[0] else ""):
                                  [r for r in rows if (r["repeat"], r["fold"]) == key]
                                  for key in sorted({(r["repeat"], r["fold"]) for r in rows})}
        first = True
        for name, member in (members.items() if len(members) > 1 else ()):
            truth = np.array([r["label_index"] for r in member]) == 1
            if len(set(truth)) == 2:
                fpr, tpr, _ = roc_curve(truth, [r[f"prob_{positive}"] for r in member])
                ax.plot(fpr, tpr, lw=0.8, alpha=0.5, label="each fold model" if member_rows and first else
                        "each fold" if first else None)
                first = False
        if len(set(labels)) == 2:
            fpr, tpr, _ = roc_curve(labels, scores)
            band = _roc_band(labels, scores, [r.get("patient_key") or r.get("case_id") or str(i) for i, r in enumerate(rows)], grid)
            if band is not None:
                ax.fill_between(grid, band[0], band[1], alpha=0.2, color="gray",
                                label="95% patient-bootstrap band")
            ax.plot(fpr, tpr, color="black", lw=2, label=f"{curve_label}: AUC {auc(fpr, tpr):.3f}")
            ax.legend(loc="lower right", fontsize=8)
        else:  # never an empty panel without a word
            ax.text(0.5, 0.5, "the rows hold one class:\nROC undefined", ha="center", va="center")
        ax.plot([0, 1], [0, 1], "--", color="gray", lw=0.8)
        ax.set(title=f"ROC: {arm}", xlabel="1 - specificity", ylabel="sensitivity")
    return _png(fig)


def calibration_figure(arm_rows: dict[str, list[dict]], class_names: list[str]) -> str:
    """Reliability diagram (10 equal-width bins, pooled out-of-fold) with each bin's 95% Wilson interval of the
    observed frequency, over the number of cases in each bin.

    Binary: P(positive); multi-class: the top-class probability. The legend gives ECE and
    the Brier score, so the picture and the numbers in the tables can be read together.
    """
    from statsmodels.stats.proportion import proportion_confint

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
        counts = np.asarray(counts)
        low, high = proportion_confint(np.rint(np.asarray(observed) * counts), np.maximum(counts, 1), method="wilson")
        errors = np.vstack([np.asarray(observed) - low, high - np.asarray(observed)]).clip(0)
        ax.errorbar(predicted, observed, yerr=errors, marker="o", capsize=3, label=label)
        centres = (np.minimum((np.asarray(predicted) * 10).astype(int), 9) + 0.5) / 10
        counts_ax.bar(centres - 0.4 / 10 + k * width, counts, width=width, label=arm)
    ax.plot([0, 1], [0, 1], "--", color="gray")
    what = "P(positive)" if len(class_names) == 2 else "top-class probability"
    ax.set(title="Calibration (pooled out-of-fold; bars: 95% Wilson interval per bin)", ylabel="observed frequency",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper left")
    counts_ax.set(xlim=(0, 1), xlabel=f"predicted {what}", ylabel="cases")
    return _png(fig)


def risk_coverage_figure(curves: dict[str, list[dict]]) -> str:
    """Accuracy of the cases kept against the share referred (least confident first), one line per arm."""
    fig, axes = _figure()
    ax = axes[0][0]
    for arm, points in curves.items():
        ax.plot([p["abstention"] for p in points], [p["accuracy"] for p in points], marker="o", label=arm)
    ax.set(title="Selective prediction: refer the least confident", xlabel="share of cases referred",
           ylabel="accuracy of the cases kept")
    ax.legend(fontsize=8)
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
    """Per arm: each fold's training loss per epoch (solid, left axis) and, where the fold has an inner selection
    split, its inner-split score per epoch (the validation curve, dashed, right axis); the legend lists only the
    lines drawn."""
    fig, axes = _figure(ncols=len(histories))
    for ax, (arm, folds) in zip(axes[0], histories.items()):
        scores = ax.twinx() if any("inner_score" in h for history in folds for h in history) else None
        for index, history in enumerate(folds):
            line, = ax.plot([h["epoch"] + 1 for h in history], [h["train_loss"] for h in history],
                            label=f"fold {index}: training loss")
            if scores is not None and any("inner_score" in h for h in history):
                scores.plot([h["epoch"] + 1 for h in history], [h.get("inner_score", np.nan) for h in history], "--",
                            color=line.get_color(), label=f"fold {index}: inner-split score")
        ax.set(title=f"Learning curves: {arm}", xlabel="epoch", ylabel="training loss (solid)")
        handles, names = ax.get_legend_handles_labels()
        if scores is not None:
            scores.set_ylabel("inner-split score (dashed)")
            more = scores.get_legend_handles_labels()
            handles, names = handles + more[0], names + more[1]
        ax.legend(handles, names, fontsize=7)
    return _png(fig)


def search_history_figure(outer: list[dict], metric: str, direction: str) -> str:
    """Per outer fold: each trial's mean inner-fold score (dots; pruned trials hollow) and the best so far (line)."""
    fig, axes = _figure(width=4.0, height=3.2, ncols=len(outer))
    for ax, fold in zip(axes[0], outer):
        history = [(n, v, state) for n, v, state in fold["history"] if v is not None]
        complete = [(n, v) for n, v, state in history if state == "COMPLETE"]
        pruned = [(n, v) for n, v, state in history if state == "PRUNED"]
        if complete:
            ax.plot(*zip(*complete), "o", ms=4, label="trial (mean of inner folds)")
            best, running = [], None
            for n, v in complete:
                running = v if running is None or (v > running if direction == "maximize" else v < running) else running
                best.append((n, running))
            ax.step(*zip(*best), where="post", label="best so far")
        if pruned:
            ax.plot(*zip(*pruned), "o", ms=4, mfc="none", label="pruned (running mean)")
        ax.axvline(fold["best_trial"], color="grey", lw=0.8, ls=":")
        ax.set(title=f"{fold['outer']}: chosen trial {fold['best_trial']}", xlabel="trial", ylabel=f"inner {metric}")
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
    """Per source stage: training loss per epoch and (dashed, right axis) the linear-probe AUC of a self-supervised
    stage or the query accuracy of a meta-learning one, base64 PNG."""
    fig, axes = _figure(width=5.5, ncols=len(stages))
    fig.subplots_adjust(wspace=0.5)  # room for each panel's right-hand probe axis
    for ax, stage in zip(axes[0], stages):
        history = stage["history"]
        trained = [h for h in history if "train_loss" in h]
        ax.plot([h["epoch"] + 1 for h in trained], [h["train_loss"] for h in trained], color="C0")
        ax.set(title=f"Source stage {stage['fingerprint'][:8]} ({stage.get('method', 'supervised')})",
               xlabel="epoch (0 = before pretraining)", ylabel="training loss")
        # self-supervised: the linear probe's AUC; meta-learning: the adapted model's accuracy on training queries
        for key, label in (("probe_auc", "linear-probe AUC (dashed)"),
                           ("query_accuracy", "query accuracy after adaptation (dashed)")):
            probed = [h for h in history if key in h]
            if probed:
                twin = ax.twinx()
                twin.plot([h["epoch"] + 1 for h in probed], [h[key] for h in probed], "o--", color="C1")
                twin.axhline(0.5, color="grey", lw=0.5)
                twin.set(ylabel=label, ylim=(0, 1))
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

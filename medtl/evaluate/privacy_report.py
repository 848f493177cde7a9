"""What DP-SGD spent per arm, from its folds' records: the (epsilon, delta) and the mechanism's settings."""

from __future__ import annotations

import html

from ..plumbing.html import html_table


def privacy_summary(metrics: dict) -> dict:
    """``{arm: {epsilon (the largest over folds), delta, noise_multiplier, max_grad_norm, sample_rate, steps,
    max_images_per_patient, folds}}`` for every arm trained with DP-SGD."""
    out = {}
    for name, arm in metrics["arms"].items():
        spent = [f["privacy"] for f in arm["folds"] if f.get("privacy")]
        if not spent:
            continue
        worst = max(spent, key=lambda p: p["epsilon"])
        out[name] = {**{k: worst[k] for k in ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "sample_rate",
                                              "steps")},
                     "max_images_per_patient": max(p.get("max_images_per_patient", 1) for p in spent),
                     "folds": len(spent)}
    return out


def privacy_sentence(name: str, spent: dict) -> str:
    """One line for the console and the model card."""
    patients = spent["max_images_per_patient"]
    group = (f"; a patient with {patients} training images is protected at group level, up to about "
             f"{patients} x epsilon" if patients > 1 else "")
    return (f"{name}: DP-SGD spent epsilon {spent['epsilon']:.2f} at delta {spent['delta']:.2g} per training image "
            f"(noise multiplier {spent['noise_multiplier']:.3f}, clipping norm {spent['max_grad_norm']:g}, sampling "
            f"rate {spent['sample_rate']:.3f}, {spent['steps']} steps; largest over {spent['folds']} folds){group}")


def privacy_section(summary: dict) -> tuple[str, str]:
    """``("Differential privacy", html)``."""
    rows = [[name, f"{s['epsilon']:.2f}", f"{s['delta']:.2g}", f"{s['noise_multiplier']:.3f}", s["max_grad_norm"],
             f"{s['sample_rate']:.3f}", s["steps"], s["max_images_per_patient"]] for name, s in summary.items()]
    text = ("<p>DP-SGD (per-image gradients clipped to the norm, Gaussian noise, Poisson-sampled batches); "
            "epsilon from Opacus's RDP accountant, the largest over the folds. The guarantee is per training "
            "image and covers the training of each fold's model, not the choice of settings or the evaluation. "
            "A patient with k images is protected at group level, with roughly k times the epsilon.</p>"
            + "".join(f"<p>{html.escape(privacy_sentence(n, s))}</p>" for n, s in summary.items()))
    return ("Differential privacy", text + html_table(["arm", "epsilon", "delta", "noise multiplier", "clipping norm",
                                                       "sampling rate", "steps", "images per patient (max)"], rows))

"""Temperature scaling: one scalar ``T`` dividing the logits, fitted by negative log-likelihood on held-out cases.

medtl keeps probabilities, not logits; ``log p`` are the logits up to a per-case constant,
which softmax ignores, so ``softmax(log p / T)`` is exactly temperature scaling of the
network's logits. It never changes the predicted class, and for two classes it keeps every
ranking (AUC unchanged); with more classes the one-vs-rest rankings may move slightly.
"""

from __future__ import annotations

import numpy as np

FLOOR = 1e-12  # a probability of exactly 0 has no logarithm; softmax outputs never reach it
BOUNDS = (0.05, 20.0)  # temperatures outside are refused as a fit that went wrong


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (n, C) re-scaled as if the logits had been divided by ``temperature``."""
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def negative_log_likelihood(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean -log p(true class)."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), FLOOR, 1.0)
    return float(-np.mean(np.log(probabilities[np.arange(len(labels)), np.asarray(labels)])))


def fit_temperature(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature minimising the NLL of ``labels`` (searched on log T within ``BOUNDS``, scipy's bounded
    Brent method)."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        raise ValueError("temperature scaling needs held-out cases; none were given")
    result = minimize_scalar(lambda log_t: negative_log_likelihood(labels, apply_temperature(probabilities,
                                                                                             np.exp(log_t))),
                             bounds=tuple(np.log(BOUNDS)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))

"""Ways to solve one few-shot episode with a pretrained encoder: the meta-learner's own adaptation, and the
baselines the meta-learning literature often omits (a linear probe on frozen features, plain fine-tuning)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from .methods import MetaMethod


def own_solver(method: MetaMethod, steps: int):
    """The meta-learner's adaptation (inner steps, or prototypes) to the support set."""
    def solve(model, support_x, support_y, query_x) -> np.ndarray:
        model.train()
        logits = method.adapt_and_predict(model, support_x, support_y, query_x, steps, training=False)
        return torch.softmax(logits.detach().double(), 1).cpu().numpy()
    return solve


@torch.no_grad()
def _features(model, images: torch.Tensor) -> np.ndarray:
    model.eval()
    return model.encode(images).double().cpu().numpy()


def linear_probe(model, support_x, support_y, query_x) -> np.ndarray:
    """Logistic regression (scikit-learn, standardised features) on the frozen encoder's pooled features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(_features(model, support_x), support_y.cpu().numpy())
    return probe.predict_proba(_features(model, query_x))


def fine_tune(steps: int, lr: float):
    """Fine-tune a copy of the whole network (fresh zero head, BatchNorm statistics frozen) for ``steps`` Adam
    steps on the support set."""
    def solve(model, support_x, support_y, query_x) -> np.ndarray:
        tuned = copy.deepcopy(model)
        torch.nn.init.zeros_(tuned.head.fc.weight)
        torch.nn.init.zeros_(tuned.head.fc.bias)
        tuned.eval()  # BatchNorm keeps its running statistics: a 10-image batch is no estimate of them
        optimiser = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=lr, foreach=True)
        with torch.enable_grad():
            for _ in range(steps):
                optimiser.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(tuned(support_x), support_y).backward()
                optimiser.step()
        with torch.no_grad():
            return torch.softmax(tuned(query_x).double(), 1).cpu().numpy()
    return solve

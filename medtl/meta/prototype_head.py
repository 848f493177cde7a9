"""A target classification head that starts where a prototypical network would classify.

With ``W_c = 2 mu_c`` and ``b_c = -||mu_c||^2`` (``mu_c`` the mean pooled feature of the
training images of class ``c``), the head's logits are ``-||x - mu_c||^2`` up to a term the
same for every class: fine-tuning starts from the nearest-prototype classifier (as in
Proto-MAML, Triantafillou et al., 2020) instead of a random head.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def prototype_head(model, cases: list, device: torch.device, batch_size: int = 32) -> dict:
    """Set ``model.head.fc`` from the class means of ``cases`` (labelled training cases); returns the facts for
    the fold's record, or a reason when it cannot (a class without training images); nothing for a head that
    is not one linear layer over pooled features (segmentation, several tasks)."""
    from .episodes import stack_images

    if not isinstance(getattr(model.head, "fc", None), torch.nn.Linear):
        return {}
    labelled = [i for i, c in enumerate(cases) if c.label is not None]
    fc = model.head.fc
    classes = fc.out_features
    training = model.training
    model.eval()
    model.to(device)
    features = torch.cat([model.encode(stack_images(cases, labelled[i:i + batch_size]).to(device))
                          for i in range(0, len(labelled), batch_size)])
    model.train(training)
    labels = torch.tensor([cases[i].label for i in labelled], device=device)
    missing = [c for c in range(classes) if not bool((labels == c).any())]
    if missing:
        return {"prototype_head": f"not set: class(es) {missing} have no training image"}
    centres = torch.stack([features[labels == c].mean(0) for c in range(classes)])
    fc.weight.copy_(2 * centres)
    fc.bias.copy_(-(centres ** 2).sum(1))
    fact = f"from the class prototypes (mean features) of {len(labelled)} training images (meta.prototype_head)"
    if getattr(model, "adaptation", None) is not None:
        model.adaptation.new["head.*"] = fact
    return {"prototype_head": fact}

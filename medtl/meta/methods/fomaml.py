"""First-order MAML: the inner gradients are treated as constants, so the meta-gradient is the query
loss's gradient at the adapted parameters (no second derivatives; cheaper in time and memory)."""

from __future__ import annotations

from .maml import MAML


class FOMAML(MAML):
    """MAML without second-order terms."""

    name = "fomaml"
    description = "first-order MAML: the query gradient at the adapted parameters"
    second_order = False

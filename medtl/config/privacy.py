"""``privacy``: differentially private training (DP-SGD; docs/privacy.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import Section


class PrivacyConfig(Section):
    """DP-SGD: each training image's gradient clipped to ``max_grad_norm``, Gaussian noise of standard deviation
    ``noise_multiplier x max_grad_norm`` added to their sum, batches drawn by Poisson sampling; the RDP
    accountant (Opacus) reports the (epsilon, delta) spent. Give ``epsilon`` (a target: the noise is solved
    for it) or ``noise_multiplier``, not both. The privacy unit is one training image."""

    dp: bool = False
    epsilon: float | None = Field(None, gt=0)
    noise_multiplier: float | None = Field(None, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    delta: float | None = Field(None, gt=0, lt=1)  # default: 1 / training images of the fold

    @model_validator(mode="after")
    def _one_noise_setting(self) -> "PrivacyConfig":
        if self.dp and (self.epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("privacy.dp needs exactly one of privacy.epsilon (a target, e.g. 8) or "
                             "privacy.noise_multiplier (e.g. 1.0)")
        return self

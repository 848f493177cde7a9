"""What a backbone is (``BackboneSpec``): metadata that generic code needs without building a network.

Every backbone returns five feature maps at strides 2, 4, 8, 16 and 32
(``feature_channels`` gives their channels) and lists its ``stages`` from input to
top, for gradual unfreezing and layer-wise learning rates. A family module (``resnet.py``,
...) lists its specs in ``SPECS``; ``registry.py`` registers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...errors import UnknownNameError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is: dims it supports, feature maps, first conv, pretrained sources."""

    name: str
    family: str
    builder: Callable[..., object]  # builder(dims, in_channels, **arch_overrides) -> nn.Module
    feature_channels: tuple[int, ...]
    reductions: tuple[int, ...] = (2, 4, 8, 16, 32)
    dims: tuple[int, ...] = (2, 3)
    first_conv: str = "conv1.weight"
    classifier_prefixes: tuple[str, ...] = ()
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    # source name ("imagenet", "medicalnet") -> {dims: weight-file key in medtl.models.weights}
    sources: dict[str, dict[int, str]] = field(default_factory=dict)
    description: str = ""
    norm: str = "batch"  # "group": GroupNorm everywhere (the heads too), for per-image gradients (DP-SGD)

    def source_for(self, source: str, dims: int) -> str:
        """Weight-file key for ``source`` at ``dims``; 2D weights serve 3D through inflation.

        Raises ``UnknownNameError`` when none exist: the config names weights that were never published.
        """
        files = self.sources.get(source)
        if not files:
            available = ", ".join(self.sources) or "none"
            raise UnknownNameError(f"backbone '{self.name}' has no '{source}' weights (available: {available}); "
                              "set model.pretrained to one of those, none, or a checkpoint path")
        if dims in files:
            return files[dims]
        if 2 in files:
            return files[2]
        have = "/".join(f"{d}D" for d in sorted(files))
        raise UnknownNameError(f"'{source}' weights for '{self.name}' exist for {have} only, not {dims}D; "
                          "use data.dims=3 or another model.pretrained")

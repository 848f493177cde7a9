"""``data``: which manifest, and how every image becomes a network input (resize or patch mode)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Section

DEFAULT_IMAGE_SIZE = {2: [224, 224], 3: [96, 96, 96]}


class AugmentConfig(Section):
    """``data.augment``: random training augmentation, seeded per epoch (never used for validation)."""

    flip: bool = False  # off by default: left/right carries meaning in many tasks
    rotate_deg: float = Field(10.0, ge=0, le=180)
    scale: float = Field(0.1, ge=0, lt=1)
    intensity: float = Field(0.1, ge=0, lt=1)
    enabled: bool = True


MAX_WINDOWS_PER_PATCH = 64  # windows covering one patch-sized region (overlap 0.75 in 3D)
MAX_PATCH_BATCH_MB = 512  # float32 input of one batch of windows (256^3 x 4 windows: 256 MB)


class SlidingWindowConfig(Section):
    """``data.sliding_window``: how ``data.mode: patch`` predicts a whole image from patch-sized windows."""

    overlap: float = Field(0.5, ge=0, lt=1)  # share of a window shared with its neighbour, per axis
    blend: Literal["gaussian", "constant"] = "gaussian"  # gaussian: window centres count more than borders
    sigma_scale: float = Field(0.125, gt=0)  # gaussian blending: sigma as a share of the window size
    batch_size: int = Field(4, ge=1)  # windows per forward pass


class DataConfig(Section):
    """``data``: which manifest, and how every image becomes a network input.

    Per-axis lists are checked against ``dims`` once, here: ``image_size`` and ``spacing``
    need exactly ``dims`` values (a single number for ``image_size`` means the same size on
    every axis), ``window`` is (center, width) and ``percentiles`` is (low, high). Every
    later stage reads these normalised values, so what the report prints is what the
    network saw.
    """

    manifest: Path | None = None
    # binary classification: the label that is "positive" for sensitivity, specificity, F1 and the explanation panels
    # (default: the second in sorted order, i.e. 1 of 0/1 and true of false/true; stated in the outputs otherwise)
    positive_class: str | None = None
    dims: Literal[2, 3] = 2
    image_size: list[int] = Field(default=None, validate_default=False)  # default: 224x224 (2D), 96^3 (3D)
    spacing: list[float] | None = None  # 3D: resample to this spacing (mm) before resizing
    intensity: Literal["percentile", "window", "range", "none"] = "percentile"
    window: list[float] = Field(default_factory=lambda: [40.0, 400.0])  # center, width (intensity=window)
    percentiles: list[float] = Field(default_factory=lambda: [0.5, 99.5])
    value_range: list[float] = Field(default_factory=lambda: [0.0, 255.0])  # low, high (intensity=range) -> 0..1
    rgb: Literal["refuse", "luminance"] = "refuse"  # colour PNG/JPEG/TIFF: refuse, or 0.299R+0.587G+0.114B
    resample_mask: bool = False  # resample a mask with other geometry (nearest) instead of refusing it
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    # native resolution (docs/patch-mode.md): resize = the whole image to image_size; patch = keep the extent,
    # train on patch_size patches, predict by sliding window
    mode: Literal["resize", "patch"] = "resize"
    patch_size: list[int] | None = None  # patch mode: one value per axis (or one number); multiples of 32
    patches_per_case: int = Field(4, ge=1)  # patches drawn from each training case per epoch
    foreground_ratio: float = Field(0.5, ge=0, le=1)  # share of patches centred on a mask voxel (when there is one)
    roi: Literal["none", "center", "mask"] = "none"  # classification in patch mode: one crop, or all windows
    aggregate: Literal["mean", "max"] = "mean"  # classification, roi none: how window logits become one
    sliding_window: SlidingWindowConfig = Field(default_factory=SlidingWindowConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_and_isotropic_size(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        size, dims = raw.get("image_size"), raw.get("dims", 2)
        if size is None:
            raw = {**raw, "image_size": DEFAULT_IMAGE_SIZE.get(dims, [224, 224])}
        elif isinstance(size, int) and not isinstance(size, bool) and dims in (2, 3):
            raw = {**raw, "image_size": [size] * dims}
        patch = raw.get("patch_size")
        if isinstance(patch, int) and not isinstance(patch, bool) and dims in (2, 3):
            raw = {**raw, "patch_size": [patch] * dims}
        return raw

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or value[1] <= 0:
            raise ValueError(f"data.window = {value}: give [center, width] with width > 0, e.g. [40, 400]")
        return value

    @field_validator("value_range")
    @classmethod
    def _check_value_range(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not value[0] < value[1]:
            raise ValueError(f"data.value_range = {value}: give [low, high] with low < high, e.g. [0, 255]")
        return value

    @field_validator("percentiles")
    @classmethod
    def _check_percentiles(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not 0 <= value[0] < value[1] <= 100:
            raise ValueError(f"data.percentiles = {value}: give [low, high] with 0 <= low < high <= 100, "
                             "e.g. [0.5, 99.5]")
        return value

    @model_validator(mode="after")
    def _check_axes(self) -> "DataConfig":
        if any(s < 1 for s in self.image_size):
            raise ValueError(f"data.image_size = {self.image_size}: sizes must be >= 1")
        if len(self.image_size) != self.dims:
            raise ValueError(f"data.image_size = {self.image_size} has {len(self.image_size)} value(s), but "
                             f"data.dims is {self.dims}: give {self.dims} sizes (one per axis, "
                             f"{'rows, columns' if self.dims == 2 else 'slices, rows, columns'}) or one number")
        if self.spacing is not None:
            if self.dims == 2:
                raise ValueError(f"data.spacing = {self.spacing} is used for 3D resampling only; remove it or "
                                 "set data.dims: 3")
            if len(self.spacing) != 3 or any(s <= 0 for s in self.spacing):
                raise ValueError(f"data.spacing = {self.spacing}: give 3 positive values in mm "
                                 "(slice, row, column), e.g. [3.0, 0.9, 0.9]")
        self._check_patch_settings()
        return self

    @property
    def fixed_size(self) -> bool:
        """Whether every prepared case has one size (resize mode, or one ROI crop): batches of whole cases.

        Otherwise (patch mode without an ROI) cases keep their native extent: training uses
        patches, inference slides windows over each case.
        """
        return self.mode == "resize" or self.roi != "none"

    def _check_patch_settings(self) -> None:
        if self.mode == "resize":
            if self.patch_size is not None:
                raise ValueError(f"data.patch_size = {self.patch_size} is used in data.mode: patch only; remove it "
                                 "or set data.mode: patch")
            if self.roi != "none":
                raise ValueError(f"data.roi = {self.roi} is used in data.mode: patch only (resize mode always sees "
                                 "the whole image)")
            return
        if self.patch_size is None:
            raise ValueError(f"data.mode: patch needs data.patch_size: {self.dims} sizes (one per axis) or one "
                             f"number, e.g. {[96] * self.dims if self.dims == 3 else [256, 256]}")
        if len(self.patch_size) != self.dims or any(s < 1 for s in self.patch_size):
            raise ValueError(f"data.patch_size = {self.patch_size}: give {self.dims} sizes >= 1 (one per axis) or "
                             "one number")
        window = self.sliding_window
        # each axis advances int(patch * (1 - overlap)) voxels: 1 / (1 - overlap) windows cover every patch length
        per_patch = math.prod(max(1.0, p / max(1, int(p * (1 - window.overlap)))) for p in self.patch_size)
        if per_patch > MAX_WINDOWS_PER_PATCH:
            raise ValueError(f"data.sliding_window.overlap = {window.overlap} with patch_size {self.patch_size}: every "
                             f"patch-sized region of an image is covered by about {per_patch:,.0f} windows (one forward "
                             f"pass each; at 0.5 it is {2 ** self.dims}); use an overlap of at most 0.75")
        patch_mb = math.prod(self.patch_size) * window.batch_size * 4 / 2**20
        if patch_mb > MAX_PATCH_BATCH_MB:
            raise ValueError(f"data.patch_size = {self.patch_size} x data.sliding_window.batch_size "
                             f"{window.batch_size}: one batch of windows is {patch_mb:,.0f} MB of input alone (the "
                             f"network's activations are many times that), over {MAX_PATCH_BATCH_MB} MB; patches are "
                             "crops of the image: use e.g. [96, 96, 96] (3D) or [256, 256] (2D)")

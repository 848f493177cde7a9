"""``preprocessing.json``: everything a runner needs between a loaded image and the network, and back.

Versioned and validated by a pydantic schema (``preprocessing.schema.json`` is written
beside it). medtl's own ``predict`` rebuilds its data config from it; another runner
follows the documented steps (docs/export.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from ..config import Config, DataConfig, load_config
from ..errors import InputError, MedtlError
from .manifest import ClassNames, one_line, read_json_object

SPEC_VERSION = 1


class NetworkIO(BaseModel):
    """What goes into the network and what comes out."""

    model_config = ConfigDict(extra="forbid")

    input_name: str = "image"
    input_shape: list[int | str]  # ["batch", 1, *spatial]: a fixed window (patch mode) or the resized image
    output_name: str = "logits"
    output: Literal["class_logits", "voxel_logits"]  # (batch, classes) or (batch, classes, *spatial)
    activation: Literal["softmax"] = "softmax"  # over axis 1, then (ensemble) the mean over members
    in_channels: int = 1
    channel_adaptation: str  # how the pretrained first layer was adapted to grayscale (model.input_adapt)


class PreprocessingSpec(BaseModel):
    """The preprocessing and output contract of an exported model (``preprocessing.json``)."""

    model_config = ConfigDict(extra="forbid")

    schema_name: Literal["medtl-preprocessing"] = "medtl-preprocessing"
    version: StrictInt = SPEC_VERSION
    task: Literal["classification", "segmentation"]
    class_names: ClassNames
    data: dict[str, Any]  # medtl's data config (without manifest and augmentation): the steps below, exactly
    steps: list[str]  # the preprocessing in order, in words
    normalisation: dict[str, float]  # subtrahend, divisor after scaling to [0, 1]
    network: NetworkIO
    output_geometry: str  # how outputs map back onto the input image
    threads: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1, le=4096)

    @model_validator(mode="after")
    def _network_fits_the_task(self) -> PreprocessingSpec:
        from ..tasks import get_task

        expected = "voxel_logits" if get_task(self.task).uses_mask else "class_logits"
        if self.network.output != expected:
            raise ValueError(f"a {self.task} export outputs {expected}, not {self.network.output}")
        shape = self.network.input_shape
        if shape[:2] != ["batch", 1] or self.network.in_channels != 1 or \
                not all(isinstance(n, int) and n > 0 for n in shape[2:]) or len(shape) not in (4, 5):
            raise ValueError(f"network.input_shape {shape} is not [\"batch\", 1, *spatial] with 2 or 3 sizes")
        return self

    def config(self) -> Config:
        """A medtl config that preprocesses exactly like the exported model's training."""
        return load_config(None).derive({"task": self.task, "data": self.data, "train.threads": self.threads,
                                          "train.batch_size": self.batch_size, "model.pretrained": "none"},
                           where="preprocessing.json", check_paths=False)


def describe_steps(data: DataConfig, dense: bool) -> list[str]:
    """The preprocessing of ``data`` in words, in order (what ``preprocess_pipeline`` does); ``dense``: the
    network predicts a label map (segmentation), so a native-extent image is covered by sliding windows."""
    steps = ["load the image with medtl's readers: DICOM series/multi-frame sorted by position and rescaled "
             "(slope/intercept, MONOCHROME1 inverted), NIfTI/NRRD/MHA, PNG/JPEG/TIFF as gray; array (1, *spatial)"]
    if data.dims == 3 and data.spacing:
        steps.append(f"resample to spacing {data.spacing} mm (bilinear)")
    if data.intensity == "percentile":
        steps.append(f"scale the {data.percentiles[0]}th-{data.percentiles[1]}th percentiles to [0, 1], clipped")
    elif data.intensity == "range":
        steps.append(f"scale values {data.value_range[0]}..{data.value_range[1]} to [0, 1], clipped")
    elif data.intensity == "window":
        steps.append(f"window centre {data.window[0]}, width {data.window[1]} to [0, 1], clipped")
    if data.mode == "resize":
        steps.append(f"resize to {data.image_size} (area interpolation)")
    elif data.roi == "center":
        steps.append(f"crop or pad (edge values) the centre {data.patch_size}")
    elif data.roi == "mask":
        steps.append(f"crop {data.patch_size} around the centre of the mask's bounding box (needs the mask)")
    elif dense:
        steps.append(f"keep the native extent; run the network on {data.patch_size} sliding windows (overlap "
                     f"{data.sliding_window.overlap}, {data.sliding_window.blend} blending, sigma scale "
                     f"{data.sliding_window.sigma_scale}, replicate padding; MONAI sliding_window_inference)")
    else:
        steps.append(f"keep the native extent; run the network on every {data.patch_size} window (overlap "
                     f"{data.sliding_window.overlap}, MONAI's window placement) and take the {data.aggregate} of "
                     "the windows' logits")
    steps.append("subtract 0.449, divide by 0.226 (the gray ImageNet normalisation)")
    return steps


def write_spec(path: Path, spec: PreprocessingSpec) -> None:
    """Write ``preprocessing.json`` and its JSON schema beside it."""
    from ..plumbing.atomic import write_json

    write_json(path, spec.model_dump(mode="json"))
    write_json(path.with_name("preprocessing.schema.json"), PreprocessingSpec.model_json_schema())


def read_spec(path: Path) -> PreprocessingSpec:
    """Read and validate ``preprocessing.json``: the schema, then its data settings as a medtl config, then that
    the network input it states is what those settings produce (a newer version than this medtl knows is refused).
    """
    raw = read_json_object(path, "preprocessing.json")
    version = raw.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SPEC_VERSION:
        raise InputError(f"{path} has preprocessing version {version}; this medtl reads up to {SPEC_VERSION}: "
                         "upgrade medtl")
    try:
        spec = PreprocessingSpec.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{path} does not match the preprocessing schema: {one_line(exc)}; export again") from None
    try:
        data = spec.config().data
    except MedtlError as exc:
        raise InputError(f"{path}: its data settings are not a valid medtl data config ({exc})") from None
    size = list(data.image_size) if data.mode == "resize" else list(data.patch_size)
    if spec.network.input_shape[2:] != size or len(size) != data.dims:
        raise InputError(f"{path}: network.input_shape {spec.network.input_shape} does not match the data settings "
                         f"(mode {data.mode}, {data.dims}D: {size}); export again")
    return spec

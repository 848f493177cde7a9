"""``model.json``: the commit mark of an export, listing its networks and pinning every file by SHA-256.

An export is trusted only as a whole: ``model.json`` pins each network file and
``preprocessing.json`` (a changed class order or intensity window changes the answers as
surely as changed weights), and the model id is derived from those hashes, so no file of
the folder can change without the id or a pin disagreeing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from ..errors import InputError
from ..plumbing.hashing import sha256_text

MANIFEST_VERSION = 1
SHA256 = r"^[0-9a-f]{64}$"


def _distinct(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError(f"class names repeat: {names}")
    return names


ClassNames = Annotated[list[str], Field(min_length=2), AfterValidator(_distinct)]  # in the network's output order


class ExportMember(BaseModel):
    """One exported network: the fold model it came from and its file's hash."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    repeat: StrictInt = Field(ge=0)
    fold: StrictInt = Field(ge=0)
    file: str = Field(pattern=r"^[A-Za-z0-9_.+-]+\.(onnx|pt2)$")  # a plain name inside the folder, no path
    sha256: str = Field(pattern=SHA256)
    source_sha256: str = Field(pattern=SHA256)


class ExportManifest(BaseModel):
    """The schema of ``model.json``."""

    model_config = ConfigDict(extra="forbid")

    version: StrictInt = MANIFEST_VERSION
    medtl_version: str
    created: str
    format: Literal["onnx", "torch-export"]
    opset: StrictInt | None
    model_id: str
    run_model_id: str
    arm: str
    task: Literal["classification", "segmentation"]
    class_names: ClassNames
    folds: list[str]
    ensemble: bool
    members: list[ExportMember] = Field(min_length=1)
    preprocessing_sha256: str = Field(pattern=SHA256)
    data_sha256: str | None
    run_config_sha256: str | None
    metrics: dict[str, Any]
    primary_metric: str
    parity: dict[str, Any]
    calibration: dict[str, Any] | None = None  # temperatures already in the networks; prediction-set thresholds

    @model_validator(mode="after")
    def _consistent(self) -> ExportManifest:
        if len({m.file for m in self.members}) != len(self.members):
            raise ValueError("two members name the same file")
        if self.ensemble != (len(self.members) > 1):
            raise ValueError(f"ensemble is {self.ensemble} but there are {len(self.members)} member(s)")
        if self.model_id != export_model_id(self.arm, self.preprocessing_sha256, [m.sha256 for m in self.members],
                                            self.calibration):
            raise ValueError("model_id does not match the pinned hashes of preprocessing.json and the networks (and "
                             "the calibration)")
        return self


def export_model_id(arm: str, preprocessing_sha256: str, network_sha256s: list[str],
                    calibration: dict | None = None) -> str:
    """The id of an export: its arm, member count and a digest of every file that decides its answers (and of its
    prediction-set thresholds, which decide the sets)."""
    which = f"ensemble{len(network_sha256s)}" if len(network_sha256s) > 1 else "single"
    extra = [json.dumps(calibration, sort_keys=True)] if calibration is not None else []
    return f"{arm}:export-{which}:{sha256_text(preprocessing_sha256, *network_sha256s, *extra)[:12]}"


def one_line(error: ValidationError) -> str:
    """A pydantic error in one line: each failing field with what was wrong."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "the file"
        parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(dict.fromkeys(parts))


def read_json_object(path: Path, what: str) -> dict:
    """The JSON object in ``path``, or one line saying why it is not one (missing, truncated, not an object)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} is missing: the export is incomplete; copy the whole folder again") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not readable JSON ({type(exc).__name__}: truncated or edited?); "
                         f"export again or copy the folder again") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path} holds a JSON {type(raw).__name__}, not the {what} object; export again")
    return raw


def read_manifest(path: Path) -> ExportManifest:
    """Read and validate ``model.json`` (one line naming every failing field)."""
    raw = read_json_object(path, "model.json")
    version = raw.get("version")
    if version is None and "preprocessing_sha256" not in raw:
        raise InputError(f"{path} was written by medtl {raw.get('medtl_version', '?')}, before exports pinned "
                         "preprocessing.json; export the run again with this medtl")
    if isinstance(version, int) and not isinstance(version, bool) and version > MANIFEST_VERSION:
        raise InputError(f"{path} has model.json version {version}; this medtl reads up to {MANIFEST_VERSION}: "
                         "upgrade medtl")
    try:
        return ExportManifest.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{path} does not match the model.json schema: {one_line(exc)}; export again") from None

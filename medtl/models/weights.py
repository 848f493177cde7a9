"""Pretrained weight files: where they come from, where they are cached, how they load.

Offline first: nothing touches the network at import. Files live in the standard
torch hub cache (``$TORCH_HOME/hub/checkpoints``). ``MEDTL_WEIGHTS_MIRROR`` (a base
URL) replaces the origin of every download. A file whose SHA-256 does not match the
hash in its canonical name is refused and not cached. Loading never unpickles code:
``torch.load(weights_only=True)`` or safetensors.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnknownNameError, WeightsError, WeightsUnavailableError
from ..plumbing.atomic import atomic_path
from ..plumbing.hashing import sha256_file
from ..plumbing.paths import missing_file_message

log = logging.getLogger("medtl")
MIRROR_ENV = "MEDTL_WEIGHTS_MIRROR"


WEIGHT_LICENCES = {
    "torchvision": "BSD-3-Clause (torchvision); trained on ImageNet, whose terms allow non-commercial research use",
    "torchvision-densenet": "BSD-3-Clause (torchvision); trained on ImageNet, whose terms allow non-commercial "
                            "research use",
    "efficientnet": "Apache-2.0 (EfficientNet-PyTorch); trained on ImageNet, whose terms allow non-commercial "
                    "research use",
    "medicalnet": "MIT (Tencent MedicalNet); trained on public segmentation datasets with their own terms",
}


@dataclass(frozen=True)
class WeightFile:
    """One downloadable checkpoint and the facts needed to use it."""

    key: str
    url: str
    sha256: str | None  # full digest or the prefix in the canonical name; None = not pinned upstream
    layout: str  # key layout: torchvision, torchvision-densenet, efficientnet, medicalnet
    dims: int = 2
    in_channels: int = 3
    arch: tuple[tuple[str, object], ...] = ()  # architecture settings the weights need
    note: str = ""
    revision: str = ""  # the publisher's revision the URL points at ("" = the file name is the version)
    terms: str = ""  # the licence of this file at this revision, where the layout's default does not say it
    cache_name: str = ""  # file name in the cache when the URL's own name is not unique (model.safetensors)

    @property
    def licence(self) -> str:
        """The licence the file carries at its pinned revision (for model cards)."""
        return self.terms or WEIGHT_LICENCES.get(self.layout, "see the publisher")

    @property
    def filename(self) -> str:
        return self.cache_name or self.url.rsplit("/", 1)[-1]


_TV = "https://download.pytorch.org/models/"
_EFF = "https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0/"
_MEDNET = "https://huggingface.co/TencentMedicalNet/MedicalNet-Resnet{d}/resolve/main/resnet_{d}_23dataset.pth"
_NO_HASH = "MedicalNet publishes no hashes; the SHA-256 of the file used is recorded in the adaptation report"

WEIGHT_FILES: dict[str, WeightFile] = {}


def register_weight_file(weight: WeightFile) -> WeightFile:
    WEIGHT_FILES[weight.key] = weight
    return weight


for _name, _file in (("resnet18", "resnet18-f37072fd.pth"), ("resnet34", "resnet34-b627a593.pth"),
                     ("resnet50", "resnet50-0676ba61.pth")):
    register_weight_file(WeightFile(f"{_name}-imagenet", _TV + _file, _file.split("-")[1][:8], "torchvision"))
register_weight_file(WeightFile("densenet121-imagenet", _TV + "densenet121-a639ec97.pth", "a639ec97",
                                "torchvision-densenet"))
register_weight_file(WeightFile("efficientnet-b0-imagenet", _EFF + "efficientnet-b0-355c32eb.pth", "355c32eb",
                                "efficientnet"))
for _depth in (18, 34, 50):
    register_weight_file(WeightFile(
        f"resnet{_depth}-medicalnet", _MEDNET.format(d=_depth), None, "medicalnet", dims=3, in_channels=1,
        arch=(("shortcut_type", "A" if _depth in (18, 34) else "B"), ("bias_downsample", _depth in (18, 34))),
        note=_NO_HASH))


_HF = "https://huggingface.co/{repo}/resolve/{revision}/{file}"
_UNPINNED = ("the publisher gives no file hash; the SHA-256 of the file used is recorded in the adaptation report "
             "and the model card")


def _hugging_face(key: str, repo: str, revision: str, layout: str, terms: str, arch: tuple = (),
                  file: str = "model.safetensors", dims: int = 2, in_channels: int = 3) -> WeightFile:
    return register_weight_file(WeightFile(
        key, _HF.format(repo=repo, revision=revision, file=file), None, layout, dims=dims, in_channels=in_channels,
        arch=arch, note=_UNPINNED, revision=revision, terms=terms, cache_name=f"{key}-{file}"))


_IMAGENET21K = "trained on ImageNet-21k and ImageNet-1k, whose terms allow non-commercial research use"
_hugging_face("vit-s16-imagenet", "timm/vit_small_patch16_224.augreg_in21k_ft_in1k", "main", "timm-vit",
              f"Apache-2.0 (timm); {_IMAGENET21K}")
_hugging_face("vit-b16-imagenet", "google/vit-base-patch16-224", "main", "hf-vit",
              f"Apache-2.0 (Google Research); {_IMAGENET21K}", arch=(("eps", 1e-12),))
_hugging_face("dinov2-vits14", "facebook/dinov2-small", "main", "hf-vit",
              "Apache-2.0 (Meta DINOv2); self-supervised on LVD-142M (curated web images)")
_hugging_face("dinov2-vitb14", "facebook/dinov2-base", "main", "hf-vit",
              "Apache-2.0 (Meta DINOv2); self-supervised on LVD-142M (curated web images)")
# RAD-DINO was published under MIT and relicensed to the Microsoft Research License Agreement (research only,
# no commercial use) at commit d5647c0 (2024-08-19); the weights did not change, the terms did.
_hugging_face("rad-dino", "microsoft/rad-dino", "d5647c0bba6d304c8f73c39422096ce88affd074", "hf-vit",
              "MSRLA (Microsoft Research License Agreement: non-commercial research only) at the pinned revision "
              "d5647c0; earlier revisions carried MIT; trained on chest X-rays (MIMIC-CXR, CheXpert, NIH, PadChest, "
              "BRAX) with their own data terms")
_MONAI_SSL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
register_weight_file(WeightFile(
    "swin-unetr-ssl", _MONAI_SSL + "model_swinvit.pt", None, "swinvit-ssl", dims=3, in_channels=1,
    note=_UNPINNED, revision="release 0.8.1",
    terms="Apache-2.0 (MONAI research contributions); self-supervised on 5,050 public CT volumes"))
register_weight_file(WeightFile(
    "swin-unetr-dae", _MONAI_SSL + "ssl_pretrained_weights.pth", None, "swin-dae", dims=3, in_channels=1,
    note=_UNPINNED, revision="release 0.8.1",
    terms="Apache-2.0 (MONAI); disruptive-autoencoder pretraining (Valanarasu et al. 2023) on public CT and MRI"))
_hugging_face("ct-fm-segresnet", "project-lighter/ct_fm_feature_extractor",
              "23e05e9c3398ed305339d144e3642bbcf9ccc46f", "ct-fm",
              "Apache-2.0 (project-lighter CT-FM); contrastive pretraining on 148k CTs of the Imaging Data Commons",
              dims=3, in_channels=1)


def cache_dir() -> Path:
    """The torch hub checkpoint cache (honours ``TORCH_HOME``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hash_matches(digest: str, expected: str | None) -> bool:
    return expected is None or digest.startswith(expected.lower())


def source_url(weight: WeightFile) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{weight.filename}" if mirror else weight.url


def _fix_hint(weight: WeightFile) -> str:
    expected = f"sha256 starting {weight.sha256}" if weight.sha256 else "no published hash"
    return (f"'{weight.filename}' ({expected}) is not in {cache_dir()}. On a machine with internet, download "
            f"{weight.url} and run `medtl weights import {weight.filename}` here, or set {MIRROR_ENV} to a "
            "server that holds it, or use model.pretrained=none")


def ensure_weights(weight: WeightFile, download: bool = True, progress: bool = True) -> Path:
    """Path of the verified cached file, downloading it first when allowed."""
    path = cache_dir() / weight.filename
    if path.exists():
        digest = sha256_file(path)
        if hash_matches(digest, weight.sha256):
            return path
        raise WeightsError(f"cached {path} has sha256 {digest[:16]}..., expected {weight.sha256}; delete it "
                           f"and download again (or `medtl weights import` a good copy)")
    if not download:
        raise WeightsUnavailableError(_fix_hint(weight))
    import torch.hub

    url = source_url(weight)
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s from %s", weight.filename, url.split("?")[0])
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(download_timeout())  # torch.hub has no timeout: a hanging mirror must not hang medtl
    try:
        # Downloads to a temporary file, checks the hash prefix, then renames: nothing bad is cached.
        torch.hub.download_url_to_file(url, str(path), hash_prefix=weight.sha256, progress=progress)
    except TimeoutError as exc:
        raise WeightsUnavailableError(f"download of {url} timed out after {download_timeout():g} s without data "
                                      f"(MEDTL_DOWNLOAD_TIMEOUT); {_fix_hint(weight)}") from exc
    except RuntimeError as exc:
        if "invalid hash" in str(exc):
            raise WeightsError(f"refused {weight.filename} from {url}: {exc}; the file was not cached") from exc
        raise WeightsUnavailableError(f"download of {url} failed ({exc}); {_fix_hint(weight)}") from exc
    except OSError as exc:  # URLError, connection refused, DNS failure: offline
        raise WeightsUnavailableError(f"cannot download {url} ({getattr(exc, 'reason', exc)}); {_fix_hint(weight)}") from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return path


PROBE_TIMEOUT = 5.0  # seconds: `medtl config` asks the server once, it does not download


def download_problem(weight: WeightFile) -> str | None:
    """Why ``weight`` cannot be had here (``None``: cached and verified, or its server answers).

    One short HEAD request to the download address (``MEDTL_WEIGHTS_MIRROR`` when set);
    nothing is downloaded.
    """
    import urllib.error
    import urllib.request

    path = cache_dir() / weight.filename
    if path.exists():
        return None if hash_matches(sha256_file(path), weight.sha256) else f"the cached {path.name} has another hash"
    url = source_url(weight)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT):
            return None
    except urllib.error.HTTPError as exc:
        return f"{url.split('?')[0]} answers HTTP {exc.code}; {_fix_hint(weight)}"
    except (OSError, ValueError) as exc:  # URLError, refused, DNS failure, timeout: offline
        return f"cannot reach {url.split('?')[0]} ({getattr(exc, 'reason', exc)}); {_fix_hint(weight)}"


def download_timeout() -> float:
    """Seconds a download may wait for the connection or the next data (``MEDTL_DOWNLOAD_TIMEOUT``, default 60)."""
    try:
        return float(os.environ.get("MEDTL_DOWNLOAD_TIMEOUT", "60"))
    except ValueError:
        return 60.0


def import_weights(source: str | Path, key: str | None = None) -> Path:
    """Check a file obtained elsewhere against the registry and install it in the cache.

    Files with a published hash are verified; files without one (MedicalNet, the Hugging Face
    files) are matched by name, or by ``key`` (``medtl weights import FILE --as KEY``) when
    the name is not unique (``model.safetensors``): ``is_verified`` tells which.
    """
    source = Path(source)
    if not source.is_file():
        raise UnknownNameError(f"weights file not found: {source}; give the path of the downloaded file")
    digest = sha256_file(source)
    if key is not None:
        if key not in WEIGHT_FILES:
            raise UnknownNameError(f"unknown weight file key '{key}'; `medtl weights list` shows the keys "
                                   f"({', '.join(sorted(WEIGHT_FILES))})")
        candidates = [WEIGHT_FILES[key]]
    else:
        by_name = [w for w in WEIGHT_FILES.values() if source.name in (w.filename, w.url.rsplit("/", 1)[-1])]
        by_hash = [w for w in WEIGHT_FILES.values() if w.sha256 and digest.startswith(w.sha256)]
        candidates = by_hash or by_name
        if len(candidates) > 1:
            raise WeightsError(f"{source.name} is the name of several weight files "
                               f"({', '.join(w.key for w in candidates)}); say which with --as KEY")
    if not candidates:
        known = ", ".join(sorted(w.filename for w in WEIGHT_FILES.values()))
        raise WeightsError(f"{source.name} (sha256 {digest[:16]}...) matches no known weight file; known: {known}; "
                           "or say which with --as KEY")
    weight = candidates[0]
    if not hash_matches(digest, weight.sha256):
        raise WeightsError(f"{source} has sha256 {digest[:16]}..., but {weight.filename} must start with "
                           f"{weight.sha256}; the file is corrupt or a different version")
    load_state_dict_file(source)  # a truncated or non-weights file is refused before it is cached
    target = cache_dir() / weight.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def cached_status() -> list[dict]:
    """One row per known weight file: key, file name, expected hash, whether cached, where it comes from, licence."""
    directory = cache_dir()
    return [{"key": w.key, "file": w.filename, "sha256": w.sha256 or "-", "cached": (directory / w.filename).exists(),
             "dims": w.dims, "url": w.url, "licence": w.licence, "revision": w.revision or "-"}
            for w in WEIGHT_FILES.values()]


_UNWRAP_KEYS = ("state_dict", "model_state_dict", "model", "module")


def load_state_dict_file(path: str | Path) -> tuple[dict, dict]:
    """``(state_dict, metadata)`` from a ``.safetensors`` or weights-only torch file.

    Nested ``{"state_dict": ...}`` containers are unwrapped and a ``module.`` prefix
    (DataParallel) is removed. A pickle that wants to run code is refused.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise UnknownNameError(missing_file_message(path, "checkpoint", "check model.pretrained"))
    metadata: dict = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: a truncated or damaged file
            raise WeightsError(f"cannot read {path} as safetensors ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200]}); the file is truncated or damaged: download "
                               "it again") from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError or RuntimeError variants
            raise WeightsError(f"refused to load {path}: it is not a plain weights file ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200]}). medtl loads checkpoints with "
                               "weights_only=True; re-save it as a state dict or .safetensors") from exc
    while isinstance(state, dict) and len(state) and not _is_tensor_dict(state):
        inner = next((state[k] for k in _UNWRAP_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            metadata.update({k: v for k, v in state.items() if isinstance(v, (str, int, float))})
            break
        metadata.update({k: v for k, v in state.items() if isinstance(v, (str, int, float))})
        state = inner
    tensors = {re.sub(r"^module\.", "", k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path} holds no tensors; expected a state dict")
    return tensors, metadata


def _is_tensor_dict(state: dict) -> bool:
    import torch

    return any(isinstance(v, torch.Tensor) for v in state.values())



def is_verified(path: str | Path) -> bool:
    """Whether an installed weight file matches a published hash (``False`` for unpinned files)."""
    name = Path(path).name
    return any(w.filename == name and w.sha256 for w in WEIGHT_FILES.values())

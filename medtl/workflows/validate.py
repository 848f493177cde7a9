"""Everything a run needs, checked before it writes anything (``medtl cv``) or instead of running (``medtl config``).

A config that cannot run must not claim a run folder: arms, backbones, the weights
each arm names, pretrained paths and the manifest are checked first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..arms import Arm, resolve_arms
from ..config import META_TASKS, PUBLISHED_WEIGHTS, SSL_TASKS, Config
from ..data.manifest import Manifest, read_config_manifest, read_manifest
from ..errors import ConfigError, UnknownNameError, WeightsUnavailableError
from ..models.backbones import get_backbone_spec
from ..models.weights import WEIGHT_FILES, cache_dir
from ..tracking import require_trackers
from ..train.methods import check_support


@dataclass
class Checked:
    """What the checks found: the arms, the manifest and facts worth telling the user."""

    arms: list[Arm]
    manifest: Manifest | None
    notes: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # extra arm -> why its weights cannot be had here


def weights_cached(config: Config) -> bool | None:
    """Whether the published weights ``model.pretrained`` names are in the cache (``None``: it names none)."""
    source = config.model.pretrained
    if source not in PUBLISHED_WEIGHTS:
        return None
    weight = WEIGHT_FILES[get_backbone_spec(config.model.backbone).source_for(source, config.data.dims)]
    return (cache_dir() / weight.filename).exists()


def check_patch_size(arm: str, config: Config, spec) -> None:
    """Patch mode: every patch axis a multiple of the backbone's deepest stride (the encoder halves it 5 times)."""
    if config.data.mode != "patch":
        return
    stride = spec.reductions[-1]
    size = config.data.patch_size
    if any(p % stride for p in size):
        suggestion = [max(stride, round(p / stride) * stride) for p in size]
        raise ConfigError(f"arm '{arm}': data.patch_size = {size} does not fit backbone '{spec.name}': its encoder "
                          f"downsamples by {stride} (strides {', '.join(map(str, spec.reductions))}), so every patch "
                          f"axis must be a multiple of {stride}; e.g. data.patch_size = {suggestion}")


def check_sites(config: Config, arms: list[Arm], manifest: Manifest | None) -> None:
    """Leave-one-site-out needs a site column; an adaptation arm needs target images to adapt to."""
    if config.cv.scheme == "leave_site_out" and manifest is not None and len(manifest.sites) < 2:
        raise ConfigError(f"cv.scheme: leave_site_out needs a 'site' column with at least 2 sites in "
                          f"{manifest.path.name} (it has {manifest.sites or 'no site column'}); add the column "
                          "(hospital or scanner per row) or use cv.scheme: kfold")
    for arm in arms:
        adapt = arm.config.adapt
        if adapt.method != "none" and adapt.target_manifest is None and config.cv.scheme != "leave_site_out":
            raise ConfigError(f"arm '{arm.name}': adapt.method: {adapt.method} needs unlabelled target images: set "
                              "adapt.target_manifest (a CSV with an image column), or use cv.scheme: leave_site_out "
                              "(each held-out site's images are the target)")


def check_experiment(config: Config, need_manifest: bool = True, fetch_main_weights: bool = False) -> Checked:
    """Check arms, backbones, weight names and the manifest; raise the first problem as a one-line error.

    ``fetch_main_weights`` also makes sure the main arm's published weights are here
    (downloading them when possible): without them the run cannot start at all. The extra
    arms' weights are fetched too; an extra arm whose weights cannot be had is listed in
    ``unavailable`` (the run skips it visibly, and its ETA never counts it).
    """
    arms = resolve_arms(config)
    require_trackers(config)
    from ..train.distributed import launched_by_torchrun

    if launched_by_torchrun() and config.run.executor != "local":
        raise ConfigError("under torchrun (DDP) every unit trains on all processes here: use run.executor: local")
    for arm in arms:  # the one place where a training method's capabilities meet the run's needs
        check_support(arm.name, arm.config, ddp=launched_by_torchrun(), executor=config.run.executor)
    if launched_by_torchrun():
        import os

        import torch

        world = int(os.environ["WORLD_SIZE"])
        if any(a.config.train.batch_size < 2 * world for a in arms):
            raise ConfigError(f"train.batch_size is the global batch: with {world} processes it must be at least "
                              f"{2 * world} (two items per process for BatchNorm)")
        if any(a.config.train.sync_bn for a in arms) and not torch.cuda.is_available():
            raise ConfigError("train.sync_bn needs GPUs (PyTorch's SyncBatchNorm is CUDA-only); set "
                              "train.sync_bn: false on CPU processes")
    notes, unavailable = [], {}
    for arm in arms:
        spec = get_backbone_spec(arm.config.model.backbone)
        if arm.config.data.dims not in spec.dims:
            raise ConfigError(f"arm '{arm.name}': backbone '{spec.name}' supports dims {spec.dims}, not "
                              f"{arm.config.data.dims}")
        check_patch_size(arm.name, arm.config, spec)
        try:
            cached = weights_cached(arm.config)
        except UnknownNameError as exc:
            raise UnknownNameError(f"arm '{arm.name}': {exc}") from None
        if cached is False and fetch_main_weights:
            from ..models.weights import ensure_weights

            try:
                ensure_weights(WEIGHT_FILES[spec.source_for(arm.config.model.pretrained, arm.config.data.dims)])
            except WeightsUnavailableError as exc:
                if arm.required:
                    raise
                unavailable[arm.name] = str(exc)
        elif cached is False:
            notes.append(f"arm '{arm.name}': {arm.config.model.pretrained} weights for {spec.name} are not cached "
                         f"in {cache_dir()}; they will be downloaded"
                         + ("" if arm.required else ", or the arm is skipped (visibly) if that fails"))
    manifest = None
    if config.data.manifest is None:
        if need_manifest:
            raise ConfigError("data.manifest is not set; point it at a manifest CSV (see README, Manifest)")
    else:
        manifest = read_config_manifest(config)
    check_sites(config, arms, manifest)
    for arm in arms:  # each arm's own source stage (an arm may pretrain on another pool)
        source = arm.config.source
        meta = source is not None and source.task in META_TASKS
        if meta and arm.config.model.pretrained == "source":  # every episode source, with its label columns
            from ..config import TaskSpec
            from .pretrain_meta import meta_sources

            for path, columns in meta_sources(arm.config):
                read_manifest(path, "multitask", tasks=[TaskSpec(name=f"c{i}", kind="classification", column=c)
                                                        for i, c in enumerate(columns)])
            continue
        if arm.config.model.pretrained == "source" and (source is None or source.manifest is None):
            raise ConfigError(f"arm '{arm.name}' starts from model.pretrained: source, but its config has no "
                              "source.manifest; add a `source:` section (see configs/sample_cls2d.yaml, or "
                              "configs/sample_ssl2d.yaml for unlabelled images)")
        if arm.config.model.pretrained == "source" and source is not None and source.manifest is not None:
            read_manifest(source.manifest, source.task if source.task not in SSL_TASKS else "classification",
                          targets=source.task not in SSL_TASKS)
        if arm.config.model.pretrained == "source" and arm.config.ssl.probe_manifest is not None:
            read_manifest(arm.config.ssl.probe_manifest, "classification")
    return Checked(arms, manifest, notes, unavailable)

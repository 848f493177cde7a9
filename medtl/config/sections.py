"""The config sections besides ``data``: model, fine-tuning, training, cross-validation, source stage,
domain adaptation, and extra arms."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from .base import Section

MAX_WIDTH = 65_536  # hidden units of a head: 1e9 would allocate hundreds of GB before any message


class ModelConfig(Section):
    """``model``: the backbone and where its starting weights come from."""

    backbone: str = "resnet18"
    pretrained: str = "imagenet"  # imagenet | medicalnet | none | path to a checkpoint
    input_adapt: Literal["sum", "mean", "first", "random"] = "sum"
    inflate: Literal["mean", "center"] = "mean"
    dropout: float = Field(0.0, ge=0, lt=1)


class LoraConfig(Section):
    """``finetune.lora``: the low-rank adapters of ``finetune.strategy: lora`` (docs/peft.md)."""

    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)  # the update is scaled by alpha / rank
    dropout: float = Field(0.0, ge=0, lt=1)
    # fnmatch patterns over backbone layer names (e.g. "blocks.*.attn.qkv", "layer*.conv2"); "auto": attention
    # qkv and output projections of a transformer, every convolution but the first of a CNN
    targets: list[str] = Field(default_factory=lambda: ["auto"], min_length=1)


class FinetuneConfig(Section):
    """``finetune``: which layers train, and how strongly they are held to the pretrained weights."""

    strategy: Literal["linear", "full", "gradual", "discriminative", "lora", "bitfit", "norm-only"] = "full"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    l2sp: float = Field(0.0, ge=0)
    unfreeze_every: int = Field(1, ge=1)  # gradual: epochs between unfreezing stages
    lr_decay: float = Field(0.5, gt=0, le=1)  # discriminative: factor per stage below the head


class TrainConfig(Section):
    """``train``: optimiser, schedule, loss, model selection and the device."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(1, ge=0)
    loss: Literal["ce", "focal"] = "ce"  # segmentation always uses Dice+CE
    class_weights: Literal["none", "balanced"] = "none"
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    selection: Literal["last", "best_inner"] = "last"  # best_inner: best epoch on an inner patient split
    # the training method (medtl.train.methods.METHODS: erm, dann, reweight, or one registered by the user);
    # unset: adapt.method's (dann, reweight), else erm
    method: str | None = None
    inner_fraction: float = Field(0.2, gt=0, lt=0.5)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # CUDA only
    workers: int = Field(0, ge=0)
    threads: int | None = Field(None, ge=1)  # torch threads; default: the cores left after the loader workers
    sync_bn: bool | None = None  # DDP: BatchNorm statistics over all processes (default: on for segmentation)
    keep_state: bool = False  # keep each fold's last optimiser state (state.pt) after the fold finishes
    # share of each training fold's patients whose labels are used (stratified, nested across values; the
    # label-efficiency arms of cv.label_fractions set it; validation folds never change)
    label_fraction: float = Field(1.0, gt=0, le=1)
    # which training replicate of cv.seeds this arm is (set by its seed arms; 0: the arm itself): another seed for
    # initialisation, batch order and augmentation; the folds, inner splits and labelled subsets stay the same
    replicate: int = Field(0, ge=0)
    # train on the training patients of this site only (the `site` column): a `local-<site>` arm of a federated
    # comparison, scored on every site's validation patients
    only_site: str | None = None


class CVConfig(Section):
    """``cv``: patient-grouped K-fold cross-validation and bootstrap settings."""

    folds: int = Field(5, ge=2)
    group_by: str = "patient_id"
    repeats: int = Field(1, ge=1)
    bootstrap: int = Field(1000, ge=100)  # resamples of patients for CIs and paired tests
    # auto: fixed when the manifest has a split column; leave_site_out: each site of the site column is the test set once
    scheme: Literal["auto", "kfold", "fixed", "leave_site_out"] = "auto"
    splits_file: Path | None = None  # reuse splits: CSV with case_id + split (fixed) or case_id + fold (k-fold)
    split_seed_by: Literal["salt", "patient_id"] = "salt"  # patient_id: folds reproducible on any machine
    # label-efficiency curves: every arm also runs with labels for only these shares of each training fold's patients
    label_fractions: list[float] = Field(default_factory=list)
    # training noise: every arm trained with this many seeds on the same folds; a case's prediction is the seed mean
    seeds: int = Field(1, ge=1, le=20)

    @field_validator("label_fractions")
    @classmethod
    def _check_fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in value):
            raise ValueError(f"cv.label_fractions = {value}: every share must be in (0, 1], e.g. [0.1, 0.25, 0.5, 1.0]")
        if len(set(value)) != len(value):
            raise ValueError(f"cv.label_fractions = {value} repeats a value")
        return sorted(value)


SSL_TASKS = ("simclr", "byol", "restore")


class SourceConfig(Section):
    """A source stage: pretraining on another manifest before the target task.

    Supervised (``task: classification | segmentation``, on a labelled manifest),
    self-supervised (``task: simclr | byol | restore``, on a manifest of images only;
    settings in ``ssl:``) or meta-learning (``task: maml | fomaml | anil | protonet``, on
    episodes of labelled manifests; settings in ``meta:``). Uses the target config's backbone, dims and preprocessing;
    ``model.pretrained: source`` (or the ``source`` arm) fine-tunes from its checkpoint.
    """

    manifest: Path | None = None
    task: Literal["classification", "segmentation", "simclr", "byol", "restore", "maml", "fomaml", "anil",
                  "protonet"] = "classification"
    pretrained: str = "none"
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    # let images of the target run (pixels or patients) into the source set: reported (transductive / optimistic)
    allow_target_images: bool = False


class SSLConfig(Section):
    """``ssl``: the self-supervised source stage (``source.task: simclr | byol | restore``; docs/ssl.md)."""

    temperature: float = Field(0.1, gt=0)  # simclr: NT-Xent temperature
    projection_dim: int = Field(128, ge=8)  # simclr / byol: output of the projection (and predictor) head
    hidden_dim: int = Field(512, ge=8, le=MAX_WIDTH)  # simclr / byol: hidden units of the projection/predictor MLPs
    patient_pairs: bool = False  # simclr / byol: the two views come from two images of the same patient (MICLe)
    ema_decay: float = Field(0.99, gt=0, lt=1)  # byol: base momentum of the target network, cosine-raised to 1
    crop_scale: float = Field(0.6, gt=0, le=1)  # views: smallest random crop, as a share of each image side
    nonlinear_prob: float = Field(0.9, ge=0, le=1)  # restore: monotone non-linear intensity curve
    shuffle_prob: float = Field(0.5, ge=0, le=1)  # restore: local pixel shuffling
    paint_prob: float = Field(0.9, ge=0, le=1)  # restore: in- or out-painting
    inpaint_share: float = Field(0.2, ge=0, le=1)  # restore: share of paintings that are in-paintings
    probe_manifest: Path | None = None  # small labelled set (classification) for the linear-probe monitor
    probe: Literal["logreg", "knn"] = "logreg"  # the monitor's classifier on frozen encoder features
    probe_every: int = Field(1, ge=1)  # epochs between probe scores (the first and last epoch always)


class ExplainConfig(Section):
    """``explain``: explanation maps in the cv report (classification with whole-image inputs; docs/explain.md)."""

    report: bool = True  # Grad-CAM maps of the first fold's validation cases, with the sanity checks
    cases_per_group: int = Field(2, ge=0, le=10)  # overlays shown per arm for each of TP, FP, FN


class CardConfig(Section):
    """``card``: what the model card says a model is for (free text written by the researcher; docs/export.md)."""

    intended_use: str = ""  # e.g. "research: triage of chest radiographs for nodules, adults, PA view"
    out_of_scope: str = ""  # e.g. "children; lateral views; diagnosis without a radiologist"
    users: str = ""  # who is meant to run it
    contact: str = ""  # who answers questions about it
    licence: str = ""  # the licence of this model


class AdaptConfig(Section):
    """``adapt``: domain adaptation across sites (docs/sites.md); ``method: none`` is plain fine-tuning (ERM).

    ``dann`` aligns encoder features of the labelled training cases with unlabelled
    target images through a gradient-reversal layer; ``reweight`` weights each training
    case's loss by an estimated density ratio p_target / p_source. Target images are
    ``target_manifest`` (only its image column is read), or in ``cv.scheme:
    leave_site_out`` the held-out site's images (their labels are never passed on).
    """

    method: Literal["none", "dann", "reweight"] = "none"
    target_manifest: Path | None = None  # unlabelled target-site images (image column; other columns unread)
    lambda_max: float = Field(1.0, ge=0)  # dann: final weight of the reversed domain gradient
    lambda_gamma: float = Field(10.0, gt=0)  # dann: ramp lambda_max * (2 / (1 + exp(-gamma * p)) - 1), p = progress
    discriminator_width: int = Field(256, ge=8, le=MAX_WIDTH)  # dann: hidden units of the 2-layer discriminator
    weight_clip: float = Field(10.0, gt=1)  # reweight: weights are clipped to [1/clip, clip]
    normalise_weights: bool = True  # reweight: scale the weights to mean 1 over the training cases


TASK_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}"


class TaskSpec(Section):
    """One task of a multi-task model (``task: multitask``): its name, kind, manifest column and fixed weight."""

    name: str
    kind: Literal["classification", "segmentation"]
    column: str  # manifest column: class labels (classification) or mask paths (segmentation); empty = no target
    weight: float = Field(1.0, ge=0)  # loss weight under multitask.weighting: fixed
    positive_class: str | None = None  # a binary classification task's positive label (as data.positive_class)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # the name becomes part of arm names, column names and file names
        if not re.fullmatch(TASK_NAME, value):
            raise ValueError(f"task name {value!r} must be a plain name (letters, digits, '_', '-'; at most 32), "
                             "e.g. nodule")
        return value


class MultitaskConfig(Section):
    """``multitask``: how the task losses are combined, and the single-task control arms (docs/multitask.md)."""

    # equal: every task weight 1; fixed: tasks[].weight; uncertainty: learned (Kendall et al. 2018)
    weighting: Literal["equal", "fixed", "uncertainty"] = "equal"
    controls: bool = True  # train each task alone on the same folds (arm '<task>-only') and compare


class RunConfig(Section):
    """``run``: where a command's independent units run (docs/cluster.md); never changes a result."""

    executor: Literal["local", "dask", "ray"] = "local"  # cv: (arm, fold) units; predict: shards
    scheduler: str | None = None  # dask scheduler / ray address (else $MEDTL_SCHEDULER, else a local cluster)
    workers: int = Field(2, ge=1)  # local cluster size when there is no scheduler

    @field_validator("scheduler")
    @classmethod
    def _check_scheduler(cls, value: str | None) -> str | None:
        return None if value is None else scheduler_address(value)


_ADDRESS = re.compile(r"(?:(tcp|tls|ray|ucx)://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})")


def scheduler_address(text: str) -> str:
    """A Dask scheduler or Ray address as ``[scheme://]host:port`` (or Ray's ``auto``), checked before anything
    connects: a typo is one line, not a 30-second timeout and a traceback."""
    text = text.strip()
    match = _ADDRESS.fullmatch(text)
    if text == "auto" or (match and 1 <= int(match.group(3)) <= 65535):
        return text
    raise ValueError(f"{text!r} is not a scheduler address; use host:port, e.g. tcp://10.0.0.5:8786 (Dask) or "
                     "ray://10.0.0.5:10001 (Ray), or 'auto' for a running Ray cluster")


class CalibrateConfig(Section):
    """``calibrate``: post-hoc calibration of the class probabilities, fitted per fold on the fold's inner selection
    split (its training patients held out), never on the scored cases (docs/calibration.md)."""

    method: Literal["none", "temperature"] = "none"


class ConformalConfig(Section):
    """``conformal``: split-conformal prediction sets at ``1 - alpha`` coverage, from the same calibration cases."""

    alpha: float | None = Field(None, gt=0, lt=0.5)  # None: no prediction sets; e.g. 0.1 for 90% coverage
    score: Literal["lac", "aps"] = "lac"  # lac: smallest sets; aps: adaptive sets
    by: Literal["class", "none", "site"] = "class"  # class (Mondrian): coverage per true class; none: on average


class TrackingConfig(Section):
    """``tracking``: where the experiment trackers named in ``track`` write (docs/tracking.md)."""

    mlflow_uri: str | None = None  # default sqlite:///RUN/mlflow.db; e.g. http://mlflow.example.org:5000
    experiment: str = "medtl"  # MLflow experiment name

    @field_validator("mlflow_uri")
    @classmethod
    def _store_form(cls, value: str | None) -> str | None:
        # file:// stores are deprecated by MLflow (and a plain path is taken as one); other schemes are not tested
        if value is None or re.fullmatch(r"sqlite:////?[^\s]+\.db|https?://[^\s/:]+(:\d{1,5})?(/[^\s]*)?", value):
            return value
        raise ValueError(f"tracking.mlflow_uri {value!r}: use sqlite:///PATH/TO/mlflow.db (a database file; its "
                         "artifacts go beside it, in mlflow-artifacts/) or http(s)://HOST:PORT of an MLflow server")


class ArmConfig(Section):
    """An extra arm: a name plus config overrides, e.g. {name: linear, set: {finetune.strategy: linear}}."""

    name: str
    set: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # the name becomes a folder (RUN/arms/<name>/): no separators, no "..", nothing hidden
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value) or ".." in value:
            raise ValueError(f"arm name {value!r} must be a plain name (letters, digits, '_', '.', '-'; "
                             "starting with a letter or digit), e.g. l2sp_0.01")
        return value

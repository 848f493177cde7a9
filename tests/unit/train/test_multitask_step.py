"""Multi-task training: with every other task weighted 0 it is exactly single-task training; missing targets
are left out of the loss, never guessed; uncertainty weighting is Kendall et al.'s formula."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import medtl
from medtl.config import load_config
from medtl.data.dataset import PreparedCase
from medtl.tasks import task_of
from medtl.train.loop import fit

SIZE = 32  # divisible by the encoder's stride: no padding, so the encoder sees the same input in both models
TASKS = "[{name: nodule, kind: classification, column: label}, {name: lesion, kind: segmentation, column: mask}]"


def cases(n=10, missing_label=(), missing_mask=()):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.normal(size=(1, SIZE, SIZE)).astype(np.float32)
        mask = np.zeros((1, SIZE, SIZE), np.int16)
        if i % 2:
            mask[0, 8:14, 10:18] = 1
        label = None if i in missing_label else i % 2
        out.append(PreparedCase(f"c{i}", f"p{i}", f"p{i}", i % 2, image, None if i in missing_mask else mask, "",
                                spacing=(1.0, 1.0), labels={"nodule": label}))
    return out


def config(task="multitask", **extra):
    overrides = [f"data.image_size={SIZE}", "train.epochs=2", "train.batch_size=4", "train.device=cpu",
                 f"task={task}"]
    if task == "multitask":
        overrides += [f"tasks={TASKS}", "multitask.weighting=fixed"]
    return load_config(None, overrides + [f"{k}={v}" for k, v in extra.items()])


def multitask_model():
    torch.manual_seed(0)
    return medtl.create_model("tiny-resnet", dims=2, num_classes={"nodule": 2, "lesion": 2}, task="multitask",
                              task_kinds={"nodule": "classification", "lesion": "segmentation"})


def single_model_like(multi, name, kind):
    single = medtl.create_model("tiny-resnet", dims=2, num_classes=2, task=kind)
    single.backbone.load_state_dict(multi.backbone.state_dict())
    single.head.load_state_dict(multi.head.heads[name].state_dict())
    return single


@pytest.mark.parametrize("name,kind,weights", [("nodule", "classification", [1, 0]),
                                               ("lesion", "segmentation", [0, 1])])
def test_other_task_weights_zero_gives_the_single_task_training(tmp_path, name, kind, weights):
    multi = multitask_model()
    single = single_model_like(multi, name, kind)
    data = cases()
    fit(multi, data, config_with_weights(weights), tmp_path / "m" / "state.pt", seed=3)
    # a classification case is prepared without its mask (the single-task pipeline never reads it)
    single_data = data if kind == "segmentation" else [dataclasses.replace(c, mask_data=None) for c in data]
    # augmentation off in both: MONAI's RandAffined draws random numbers per key, so augmenting the mask with the
    # image (which the multi-task model must) shifts the random stream of later items, not the training step
    fit(single, single_data, config(task=kind, **{"data.augment.enabled": "false"}), tmp_path / "s" / "state.pt",
        seed=3)
    shared = {**{f"backbone.{k}": v for k, v in multi.backbone.state_dict().items()},
              **{f"head.{k}": v for k, v in multi.head.heads[name].state_dict().items()}}
    reference = single.state_dict()
    assert set(shared) == set(reference)
    worst = max(float((shared[k].double() - reference[k].double()).abs().max()) for k in reference
                if reference[k].is_floating_point())
    assert worst <= 1e-7, f"multi-task training with weight 0 on the other task moved {worst} away from single-task"


def config_with_weights(weights):
    tasks = ("[{name: nodule, kind: classification, column: label, weight: %g}, "
             "{name: lesion, kind: segmentation, column: mask, weight: %g}]" % tuple(weights))
    return load_config(None, [f"data.image_size={SIZE}", "train.epochs=2", "train.batch_size=4", "train.device=cpu",
                              "task=multitask", f"tasks={tasks}", "multitask.weighting=fixed",
                              "data.augment.enabled=false"])


def test_a_case_without_a_target_adds_nothing_to_that_task():
    """The loss of a batch equals the task losses over only the cases that carry each target."""
    task = task_of(config())
    loss = task.loss("ce")
    torch.manual_seed(1)
    logits = {"nodule": torch.randn(4, 2, requires_grad=True), "lesion": torch.randn(4, 2, 8, 8, requires_grad=True)}
    masks = torch.randint(0, 2, (4, 8, 8))
    masks[2] = -1  # case 2 has no mask
    labels = torch.tensor([1, -1, 0, 1])  # case 1 has no label
    total = loss(logits, {"nodule": labels, "lesion": masks})
    keep_label, keep_mask = torch.tensor([0, 2, 3]), torch.tensor([0, 1, 3])
    expected = (torch.nn.functional.cross_entropy(logits["nodule"][keep_label], labels[keep_label]) +
                task.tasks["lesion"].loss("ce")(logits["lesion"][keep_mask], masks[keep_mask]))
    assert float(total.detach()) == pytest.approx(float(expected.detach()), abs=1e-6)
    total.backward()
    assert torch.all(logits["nodule"].grad[1] == 0) and torch.all(logits["lesion"].grad[2] == 0)
    facts = loss.epoch_facts()
    assert set(facts) == {"loss_nodule", "loss_lesion", "weight_nodule", "weight_lesion"}


def test_a_batch_without_any_target_of_a_task_skips_it_without_nan():
    loss = task_of(config()).loss("ce")
    logits = {"nodule": torch.randn(2, 2), "lesion": torch.randn(2, 2, 8, 8)}
    value = loss(logits, {"nodule": torch.tensor([-1, -1]), "lesion": torch.zeros(2, 8, 8, dtype=torch.long)})
    assert math.isfinite(float(value))
    assert "loss_nodule" not in loss.epoch_facts()


def test_uncertainty_weighting_is_kendalls_formula():
    loss = task_of(config(**{"multitask.weighting": "uncertainty"})).loss("ce")
    with torch.no_grad():
        loss.log_vars.copy_(torch.tensor([0.5, -0.3]))
    torch.manual_seed(2)
    logits = {"nodule": torch.randn(3, 2), "lesion": torch.randn(3, 2, 8, 8)}
    targets = {"nodule": torch.tensor([0, 1, 1]), "lesion": torch.randint(0, 2, (3, 8, 8))}
    parts = [torch.nn.functional.cross_entropy(logits["nodule"], targets["nodule"]),
             task_of(config()).tasks["lesion"].loss("ce")(logits["lesion"], targets["lesion"])]
    expected = sum(math.exp(-s) * float(p) + s / 2 for s, p in zip([0.5, -0.3], parts))
    assert float(loss(logits, targets)) == pytest.approx(expected, abs=1e-5)
    assert loss.weights() == pytest.approx({"nodule": math.exp(-0.5), "lesion": math.exp(0.3)})


def test_uncertainty_weights_are_learned_and_resume_exactly(tmp_path):
    cfg = config(**{"multitask.weighting": "uncertainty", "train.lr": 0.05})
    history = []
    model = multitask_model()
    result = fit(model, cases(missing_label=(3,), missing_mask=(4,)), cfg, tmp_path / "state.pt", seed=1,
                 on_epoch=history.append)
    weights = [(h["weight_nodule"], h["weight_lesion"]) for h in result.history]
    assert weights[0] != (1.0, 1.0) and weights[0] != weights[1]
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert "log_vars" in state["loss"]


def test_a_missing_mask_never_becomes_background(tmp_path):
    """The training item of a case without a mask carries -1 everywhere (not 0 = 'no lesion'), after augmentation."""
    from medtl.data.dataset import CaseDataset
    from medtl.transforms.presets import augment_pipeline

    cfg = config()
    data = cases(missing_mask=(1,))
    augment = augment_pipeline(cfg.data, True)
    augment.set_random_state(seed=0)
    _, target, _ = CaseDataset(data, augment, task_of(cfg).kinds)[1]
    assert torch.all(target["lesion"] == -1) and int(target["nodule"]) == 1
    _, target, _ = CaseDataset(data, augment, task_of(cfg).kinds)[3]
    assert int(target["lesion"].max()) == 1

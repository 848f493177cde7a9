"""One head of a multitask model as a model: same outputs, same layer names, and it never flips the model's mode."""

import torch

import medtl
from medtl.explain.gradcam import gradcam_maps
from medtl.models.task_view import TaskLogits


def multitask_model():
    torch.manual_seed(0)
    return medtl.create_model("tiny-resnet", dims=2, num_classes={"nodule": 3, "lesion": 2}, task="multitask",
                              task_kinds={"nodule": "classification", "lesion": "segmentation"}).eval()


def test_the_view_is_the_head_of_the_model():
    model = multitask_model()
    view = TaskLogits(model, "nodule")
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(view(x), model(x)["nodule"])
        assert model(x)["lesion"].shape == (2, 2, 32, 32)
    assert {n for n, _ in view.named_modules() if n} <= {n for n, _ in model.named_modules()}
    assert "backbone.layer3" in dict(view.named_modules())


def test_grad_cam_on_a_view_leaves_the_model_in_eval_mode():
    """MONAI's GradCAM restores the mode of the module it is given: the view must carry the model's (eval)."""
    model = multitask_model()
    gradcam_maps(TaskLogits(model, "nodule"), torch.randn(3, 1, 32, 32), [0, 1, 2])
    assert not any(module.training for module in model.modules())

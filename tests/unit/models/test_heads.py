"""Heads: segmentation logits at input resolution, classification shapes."""

import pytest
import torch

import medtl

SIZES = {2: (64, 64), 3: (32, 32, 32)}


@pytest.mark.parametrize("dims,size", [(2, (70, 45)), (3, (20, 33, 40))])
def test_segmentation_output_is_at_input_resolution(dims, size):
    model = medtl.create_model("tiny-resnet", dims=dims, num_classes=3, task="segmentation").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, *size)).shape == (2, 3, *size)


def test_classification_head_shapes_for_binary_multiclass_multilabel():
    for classes in (1, 4):
        model = medtl.create_model("tiny-densenet", dims=2, num_classes=classes, dropout=0.2).eval()
        assert model(torch.randn(3, 1, 64, 64)).shape == (3, classes)


def test_order_classes_moves_a_heads_outputs_without_redrawing_them():
    import torch

    from medtl.models import create_model
    from medtl.models.heads import order_classes

    torch.manual_seed(0)
    model = create_model("tiny-resnet", dims=2, num_classes=3, pretrained="none").eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        before = model(x)
        order_classes(model.head, [2, 0, 1])
        after = model(x)
    assert torch.equal(after, before[:, [2, 0, 1]])

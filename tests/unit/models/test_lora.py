"""LoRA adapters: merged == unmerged on Linear, Conv2d and Conv3d and through whole networks; the trainable share
is what the formula says; targets are chosen by name."""

import pytest
import torch
from torch import nn

import medtl
from medtl.config import load_config
from medtl.models.lora import LoRALayer, add_lora, has_lora, lora_targets, merge_lora
from medtl.train import peft
from medtl.train.finetune import apply_strategy

TOL = 1e-5


def _trained(layer: LoRALayer) -> LoRALayer:
    torch.nn.init.normal_(layer.lora_b.weight, std=0.3)  # a zero B would make any merge look right
    return layer


@pytest.mark.parametrize("base, shape", [
    (nn.Linear(12, 20), (4, 7, 12)),
    (nn.Conv2d(3, 8, 3, stride=2, padding=1), (2, 3, 17, 16)),
    (nn.Conv3d(2, 6, 3, padding=2, dilation=2), (2, 2, 9, 10, 11)),
    (nn.Conv3d(2, 6, (1, 3, 3), stride=(1, 2, 2)), (1, 2, 5, 12, 12)),
])
def test_merged_layer_equals_the_adapted_layer(base, shape):
    torch.manual_seed(0)
    layer = _trained(LoRALayer(base, rank=3, alpha=6.0))
    x = torch.randn(shape)
    with torch.no_grad():
        adapted = layer(x)
        merged = layer.merged()(x)
    torch.testing.assert_close(merged, adapted, atol=TOL, rtol=0)
    assert isinstance(layer.base, type(base)) and all(p.requires_grad for p in layer.base.parameters())


def test_a_fresh_adapter_leaves_the_function_unchanged():
    torch.manual_seed(0)
    base = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    expected = base(x)
    torch.testing.assert_close(LoRALayer(base, 4, 8.0)(x), expected)


@pytest.mark.parametrize("name, dims, size", [("tiny-vit", 2, 32), ("tiny-vit", 3, 16), ("tiny-resnet", 3, 16),
                                              ("tiny-swin", 2, 32), ("tiny-segresnet", 3, 16)])
@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_merged_network_equals_the_adapted_network(name, dims, size, task):
    torch.manual_seed(0)
    model = medtl.create_model(name, dims=dims, num_classes=2, task=task, pretrained="none").eval()
    names = lora_targets(model.backbone, ["auto"], skip=(model.spec.first_conv.rsplit(".", 1)[0],))
    add_lora(model.backbone, names, rank=2, alpha=4.0)
    for layer in model.modules():
        if isinstance(layer, LoRALayer):
            _trained(layer)
    x = torch.randn(2, 1, *(size,) * dims)
    with torch.no_grad():
        adapted = model(x)
        assert merge_lora(model) == len(names) and not has_lora(model)
        torch.testing.assert_close(model(x), adapted, atol=TOL, rtol=0)
    assert set(model.state_dict()) == set(medtl.create_model(name, dims=dims, num_classes=2, task=task,
                                                               pretrained="none").state_dict())


@pytest.mark.parametrize("rank", [1, 4])
def test_the_trainable_share_is_what_the_formula_says(rank):
    """ViT, LoRA on qkv (D -> 3D) and proj (D -> D) of every block: rank * (D + 3D + D + D) per block, plus the head."""
    config = load_config(None, ["model.backbone=tiny-vit", "finetune.strategy=lora", f"finetune.lora.rank={rank}"])
    model = medtl.create_model("tiny-vit", dims=2, num_classes=3, pretrained="none")
    base_total = sum(p.numel() for p in model.parameters())
    peft.prepare(model, config.finetune)
    apply_strategy(model, "lora")
    dim, depth = 32, 4
    head = dim * 3 + 3
    trainable, total = peft.trainable_counts(model)
    assert trainable == depth * rank * 6 * dim + head
    assert total == base_total + depth * rank * 6 * dim


def test_targets_by_name_pattern_and_an_empty_match_is_a_config_error():
    model = medtl.create_model("tiny-vit", dims=2, num_classes=2, pretrained="none")
    assert lora_targets(model.backbone, ["blocks.*.mlp.fc1"]) == [f"blocks.{i}.mlp.fc1" for i in range(4)]
    config = load_config(None, ["model.backbone=tiny-vit", "finetune.strategy=lora",
                                "finetune.lora.targets=[layer*.conv9]"])
    with pytest.raises(medtl.errors.ConfigError, match="match no"):
        peft.prepare(model, config.finetune)


def test_cnn_auto_targets_leave_the_first_convolution_alone():
    model = medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained="none")
    names = lora_targets(model.backbone, ["auto"], skip=("conv1",))
    assert names and "conv1" not in names and all("conv" in n for n in names)

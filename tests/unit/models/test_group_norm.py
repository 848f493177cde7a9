"""GroupNorm variants: every BatchNorm replaced, affine weights kept, each image normalised by itself."""

import torch

from medtl.models import create_model
from medtl.models.group_norm import groups_for, has_batch_norm, to_group_norm


def test_conversion_keeps_the_affine_weights_and_leaves_no_batch_norm():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Sequential(
        torch.nn.Conv2d(8, 64, 1), torch.nn.BatchNorm2d(64)))
    torch.nn.init.uniform_(net[1].weight)
    weight = net[1].weight.detach().clone()
    to_group_norm(net)
    assert not has_batch_norm(net) and isinstance(net[1], torch.nn.GroupNorm)
    assert torch.equal(net[1].weight, weight) and net[2][1].num_groups == 32 and net[1].num_groups == 4
    assert [groups_for(c) for c in (8, 16, 32, 64, 512, 3)] == [4, 8, 16, 32, 32, 1]


def test_group_norm_backbones_and_their_decoders_make_each_images_output_independent_of_the_batch():
    torch.manual_seed(0)
    for task in ("classification", "segmentation"):
        model = create_model("tiny-resnet-gn", dims=2, num_classes=2, pretrained="none", task=task).double().train()
        assert not has_batch_norm(model)
        images = torch.randn(3, 1, 32, 32, dtype=torch.float64)
        together = model(images)
        alone = torch.cat([model(images[i:i + 1]) for i in range(3)])
        torch.testing.assert_close(together, alone, atol=1e-10, rtol=1e-10)

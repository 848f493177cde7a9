"""The transformer and SegResNet backbones export to ONNX (dynamic batch) with outputs equal to PyTorch's, 2D and 3D,
through the segmentation decoder (which uses every feature map) and the classification head."""

import numpy as np
import pytest
import torch

import medtl
from medtl.export.networks import OnnxNetwork, write_network

pytest.importorskip("onnxruntime")


@pytest.mark.heavy
@pytest.mark.slow  # five ONNX exports: the full suite runs them
@pytest.mark.parametrize("name, dims, task, size", [
    ("tiny-vit", 3, "segmentation", (16, 32, 32)),
    ("tiny-vit", 2, "classification", (40, 48)),  # a grid that does not divide evenly: interpolated maps
    ("tiny-swin", 2, "segmentation", (32, 32)),
    ("tiny-segresnet", 3, "segmentation", (32, 64, 64)),  # its pooled stride-32 map is 1x2x2 here
    ("tiny-segresnet", 2, "classification", (32, 32)),
])
def test_new_backbones_export_to_onnx_with_the_same_outputs(name, dims, task, size, tmp_path):
    torch.manual_seed(0)
    model = medtl.create_model(name, dims=dims, num_classes=2, task=task, pretrained="none").eval()
    path = tmp_path / "net.onnx"
    write_network(model, path, "onnx", torch.randn(2, 1, *size))
    exported = OnnxNetwork(path, model.dense_output)
    for batch in (1, 3):
        x = torch.randn(batch, 1, *size)
        with torch.no_grad():
            np.testing.assert_allclose(exported(x).numpy(), model(x).numpy(), atol=1e-4)

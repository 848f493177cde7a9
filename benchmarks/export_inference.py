"""Inference of an exported network (onnxruntime, CPU) against the same model in PyTorch, and load times.

In one run, for a ResNet-18 2D classifier (224 px, batch 1 and 16) and a ResNet-18 3D
U-Net (one 64^3 volume): seconds per image/volume with PyTorch (eval, no_grad) and
with onnxruntime on the file ``medtl export`` writes (same export code, opset 18), the
ratio, and the time to load each model (safetensors into a fresh PyTorch model vs an
onnxruntime session). Random weights: speed does not depend on training.

Run: python benchmarks/export_inference.py [--repeats 20] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from timing import best_time


def case(name: str, model, example: torch.Tensor, repeats: int, folder: Path, per: int) -> None:
    from medtl.export.networks import OnnxNetwork, write_network
    from medtl.models.checkpoint import load_weights, save_weights

    model.eval()
    write_network(model, folder / f"{name}.onnx", "onnx", example[:1].repeat(2, *[1] * (example.dim() - 1)))
    save_weights(folder / f"{name}.safetensors", model, model.describe())
    start = time.perf_counter()
    session = OnnxNetwork(folder / f"{name}.onnx", model.dense_output)
    onnx_load = time.perf_counter() - start
    from medtl.models import create_model

    meta = model.describe()
    start = time.perf_counter()
    fresh = create_model(meta["backbone"], dims=meta["dims"], num_classes=meta["num_classes"], task=meta["task"],
                         pretrained="none")
    load_weights(folder / f"{name}.safetensors", fresh)
    torch_load = time.perf_counter() - start
    with torch.no_grad():
        torch_s = best_time(lambda: fresh.eval()(example), repeats) / per
    onnx_s = best_time(lambda: session(example), repeats) / per
    print(f"{name:<34} PyTorch {torch_s * 1000:8.1f} ms  onnxruntime {onnx_s * 1000:8.1f} ms  "
          f"ratio ort/torch {onnx_s / torch_s:5.2f}   load: PyTorch {torch_load:.2f} s, onnxruntime {onnx_load:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from medtl.models import create_model

    torch.manual_seed(0)
    print(f"CPU, {args.threads} threads (PyTorch and onnxruntime alike)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        classifier = create_model("resnet18", dims=2, num_classes=2, pretrained="none")
        case("resnet18 2D 224px, batch 1 (per image)", classifier, torch.randn(1, 1, 224, 224), args.repeats, folder, 1)
        case("resnet18 2D 224px, batch 16 (per image)", classifier, torch.randn(16, 1, 224, 224),
             max(3, args.repeats // 4), folder, 16)
        unet = create_model("resnet18", dims=3, num_classes=2, task="segmentation", pretrained="none")
        case("resnet18 3D U-Net 64^3 (per volume)", unet, torch.randn(1, 1, 64, 64, 64), max(3, args.repeats // 4),
             folder, 1)


if __name__ == "__main__":
    main()

"""Explanation maps against plain prediction, on the same model and input, in one run.

Per 2D image (ResNet-18, 224 px) and per 3D volume (ResNet-18 3D, 64^3): seconds of a
plain forward pass (the reference), of Grad-CAM (forward + backward, MONAI ``GradCAM``)
and of occlusion sensitivity (MONAI ``OcclusionSensitivity``: one forward pass per box;
box 16, overlap 0.5 in 2D, box 16, overlap 0.25 in 3D, 16 boxes per batch), and the ratios.

Run: python benchmarks/explain_time.py [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch
from timing import best_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from medtl.explain.gradcam import gradcam_maps
    from medtl.explain.occlusion import occlusion_maps
    from medtl.models import create_model

    torch.manual_seed(0)
    print(f"CPU, {torch.get_num_threads()} threads")
    for name, dims, shape, overlap in [("2D image 224x224", 2, (224, 224), 0.5), ("3D volume 64^3", 3, (64, 64, 64),
                                                                                  0.25)]:
        model = create_model("resnet18", dims=dims, num_classes=2, pretrained="none").eval()
        image = torch.randn(1, 1, *shape)
        with torch.no_grad():
            plain = best_time(lambda: model(image), args.repeats)
        cam = best_time(lambda: gradcam_maps(model, image, [1]), args.repeats)
        occlusion = best_time(lambda: occlusion_maps(model, image, [1], size=16, overlap=overlap), 1)
        print(f"{name:<18} predict {plain * 1000:8.1f} ms   Grad-CAM {cam * 1000:8.1f} ms (x{cam / plain:5.1f})   "
              f"occlusion {occlusion:7.2f} s (x{occlusion / plain:6.0f})")


if __name__ == "__main__":
    main()

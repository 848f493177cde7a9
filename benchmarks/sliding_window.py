"""Sliding-window inference: medtl's ``network_logits`` (patch mode) vs MONAI's own ``sliding_window_inference``.

Same model (a ResNet-18 U-Net, 3D, random weights), same volume, same windows,
overlap and gaussian blending; the two alternate, and the best of the repeats is kept
for each. medtl should add no overhead (ratio ~1.0). The outputs are compared too.

Run: python benchmarks/sliding_window.py [--volume 48 128 128] [--patch 32 64 64] [--overlap 0.5]
     [--sw-batch 4] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", type=int, nargs=3, default=[48, 128, 128])
    parser.add_argument("--patch", type=int, nargs=3, default=[32, 64, 64])
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--sw-batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    from monai.inferers import sliding_window_inference

    from medtl.config import load_config
    from medtl.models import create_model
    from medtl.models.sliding import network_logits

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model(args.backbone, dims=3, num_classes=2, task="segmentation", pretrained="none")
    model = model.to(device).eval()
    data = load_config(None, ["data.dims=3", "data.mode=patch", f"data.patch_size={args.patch}",
                              f"data.sliding_window.overlap={args.overlap}",
                              f"data.sliding_window.batch_size={args.sw_batch}"]).data
    volume = torch.randn(1, 1, *args.volume)

    def medtl_run():
        return network_logits(model, volume, data, device)

    def monai_run():  # the same call a MONAI user writes: windows on the device, output stitched on the CPU
        return sliding_window_inference(volume, tuple(args.patch), args.sw_batch, model, overlap=args.overlap,
                                        mode="gaussian", padding_mode="replicate", sw_device=device,
                                        device=torch.device("cpu"))

    timings = {"medtl": [], "monai": []}
    outputs = {}
    with torch.no_grad():
        for name, run in (("medtl", medtl_run), ("monai", monai_run)):
            run()  # warm-up (allocator, cuDNN autotune)
        for _ in range(args.repeats):
            for name, run in (("medtl", medtl_run), ("monai", monai_run)):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                outputs[name] = run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                timings[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in timings.items()}
    difference = float((outputs["medtl"] - outputs["monai"]).abs().max())
    print(f"volume {'x'.join(map(str, args.volume))}, patch {'x'.join(map(str, args.patch))}, overlap "
          f"{args.overlap}, {args.sw_batch} windows per pass, {args.backbone} U-Net on {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"medtl network_logits:           {best['medtl']:.3f} s per volume")
    print(f"MONAI sliding_window_inference: {best['monai']:.3f} s per volume")
    print(f"ratio medtl/MONAI time: {best['medtl'] / best['monai']:.3f} (1.0 = no overhead); "
          f"max |difference| of logits {difference:.2e}")


if __name__ == "__main__":
    main()

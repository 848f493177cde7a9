"""Peak memory of sliding-window segmentation of one large volume with a fold ensemble, in copies of the volume.

Each measurement runs in a fresh process: it builds the fold models (tiny 3D U-Nets) and
the volume, records its peak resident set, predicts, and reports how far the peak rose,
in float32 copies of the network-grid volume. Compared in the same run: medtl's
``_member_probabilities`` (``predict``: members not kept; ``evaluate``: members kept to
score each fold model) against the previous way (every member's softmax in a list, then
stacked, then averaged), and against the guard's count (``prediction_copies``).

Run: python benchmarks/predict_memory.py [--shape 64 128 128] [--members 3] [--classes 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def reset_peak() -> int:
    """Reset this process's peak resident set (Linux ``clear_refs``: earlier peaks, e.g. imports, no longer mask
    the measured step) and return the current resident set in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return peak_bytes()


def peak_bytes() -> int:
    """The peak resident set since the last reset (``VmHWM``), in bytes."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def child(mode: str, shape: list[int], members: int, classes: int) -> None:
    import numpy as np
    import torch

    from medtl.config import load_config
    from medtl.models import create_model
    from medtl.models.sliding import network_logits
    from medtl.predict.engine import _member_probabilities

    torch.set_num_threads(2)
    config = load_config(None, ["task=segmentation", "data.dims=3", "data.mode=patch", "data.patch_size=[32,64,64]",
                                "data.sliding_window.batch_size=2"])
    torch.manual_seed(0)
    models = [create_model("tiny-resnet", dims=3, num_classes=classes, in_channels=1, task="segmentation",
                           pretrained="none").eval() for _ in range(members)]
    image = torch.rand(1, 1, *shape)
    with torch.no_grad():  # warm-up on a small volume: allocator pools, MONAI imports
        network_logits(models[0], torch.rand(1, 1, 32, 64, 64), config.data, torch.device("cpu"))
    before = reset_peak()
    if mode == "previous":
        outputs = []
        with torch.no_grad():
            for model in models:
                outputs.append(torch.softmax(network_logits(model, image, config.data, torch.device("cpu")), 1))
        stacked = torch.stack(outputs).numpy()
        ensemble = stacked.mean(axis=0)
    else:
        out = _member_probabilities(models, image, torch.device("cpu"), config,
                                    keep_members=lambda name: mode == "evaluate")[""]
        ensemble = out.mean
    peak = peak_bytes()
    print(json.dumps({"rise": peak - before, "voxels": int(np.prod(shape)), "sum": float(ensemble.sum())}))


def main() -> None:
    from medtl.io.guards import prediction_copies

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.shape, args.members, args.classes)
        return
    shapes = [args.shape, [2 * args.shape[0], *args.shape[1:]]]
    print(f"volumes {' and '.join('x'.join(map(str, s)) for s in shapes)}, {args.members} fold models, "
          f"{args.classes} classes; copies = (peak rise at the larger - at the smaller) / 4 bytes / extra voxels "
          "(the model's own activations do not grow with the volume and cancel out)")
    results = {}
    for mode in ("previous", "predict", "evaluate"):
        rises = []
        for shape in shapes:
            run = subprocess.run([sys.executable, __file__, "--child", mode, "--shape", *map(str, shape),
                                  "--members", str(args.members), "--classes", str(args.classes)],
                                 capture_output=True, text=True, check=True)
            rises.append(json.loads(run.stdout.strip().splitlines()[-1]))
        results[mode] = (rises[1]["rise"] - rises[0]["rise"]) / 4 / (rises[1]["voxels"] - rises[0]["voxels"])
        results[mode + "_sum"] = rises[0]["sum"]
    guard = {"predict": prediction_copies(args.classes), "evaluate": prediction_copies(args.classes, args.members)}
    for mode in ("previous", "predict", "evaluate"):
        bound = f", guard counts {guard[mode]}" if mode in guard else ""
        print(f"{mode:9s}: {results[mode]:.1f} float32 copies of the volume{bound}")
    print(f"ratio previous / predict: {results['previous'] / results['predict']:.2f}x")
    assert abs(results["previous_sum"] - results["predict_sum"]) < 1e-3 * abs(results["previous_sum"])


if __name__ == "__main__":
    main()

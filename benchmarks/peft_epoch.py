"""Parameter-efficient fine-tuning: seconds per epoch, peak memory and trainable parameters of ``lora``,
``full`` and ``linear`` on ViT-S/16 and ResNet-18, measured in the same run (ratios to ``full``).

Each measurement is its own process (so peak RSS is that strategy's alone): ``medtl.train.loop.fit`` on
64 synthetic 64-px gray images, batch 16, 2 epochs; the time of the second epoch is reported.
``--device cuda`` measures on a GPU (peak memory then from ``torch.cuda.max_memory_allocated``).

Run: python benchmarks/peft_epoch.py [--cases 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ONE = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
import medtl
from medtl.config import load_config
from medtl.data.dataset import PreparedCase
from medtl.train.loop import fit
backbone, strategy, n, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
cases = [PreparedCase(f"c{i}", f"p{i}", f"p{i}", i % 2, rng.normal(size=(1, 64, 64)).astype(np.float32), None, "")
         for i in range(n)]
config = load_config(None, ["data.image_size=64", "train.epochs=2", "train.batch_size=16", f"train.device={device}",
                            f"finetune.strategy={strategy}", f"model.backbone={backbone}", "data.augment.enabled=false",
                            "train.warmup_epochs=0"])
torch.manual_seed(0)
model = medtl.create_model(backbone, dims=2, num_classes=2, pretrained="none")
stamps = []
with tempfile.TemporaryDirectory() as folder:
    start = time.perf_counter()
    result = fit(model, cases, config, Path(folder) / "state.pt", seed=0,
                 on_epoch=lambda record: stamps.append(time.perf_counter()))
record = result.history[-1]
peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({"seconds": stamps[1] - stamps[0], "peak_mb": peak, "trainable": record["trainable_params"],
                  "total": record["total_params"]}))
"""


def measure(backbone: str, strategy: str, cases: int, device: str) -> dict:
    out = subprocess.run([sys.executable, "-c", ONE, backbone, strategy, str(cases), device], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    memory = "peak GPU MiB" if args.device == "cuda" else "peak RSS MiB"
    for backbone in ("vit-s16", "resnet18"):
        figures = {s: measure(backbone, s, args.cases, args.device) for s in ("full", "lora", "linear")}
        full = figures["full"]
        for strategy, f in figures.items():
            print(f"{backbone:9s} {strategy:7s} {f['seconds']:6.2f} s/epoch (x{f['seconds'] / full['seconds']:.2f})  "
                  f"{memory} {f['peak_mb']:7.0f} (x{f['peak_mb'] / full['peak_mb']:.2f})  "
                  f"trained {f['trainable'] / 1e6:6.3f}M of {f['total'] / 1e6:.2f}M "
                  f"({100 * f['trainable'] / f['total']:.2f}%)")


if __name__ == "__main__":
    main()

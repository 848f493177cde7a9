"""Self-supervised pretraining throughput against a supervised epoch on the same backbone and batch.

Each method runs in its own subprocess (so its peak memory is its own), alternating over
repeats; the best epoch time of each is kept:
1. supervised: ``medtl.train.loop.fit`` (cross-entropy, no augmentation) - the reference;
2. simclr, byol, restore: ``medtl.ssl.loop.fit_ssl`` with medtl's views / corruptions
   (expect simclr and byol at about 2x the supervised time or more: two views per image,
   plus the view transforms; byol adds the target network's forward pass).

Images/s counts source images (not views). Peak memory: the process's maximum resident
set on CPU, ``torch.cuda.max_memory_allocated`` on a GPU.

Run: python benchmarks/ssl_epoch.py [--backbone resnet18] [--size 96] [--n 128] [--batch 32] [--epochs 2]
     [--repeats 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import best_in_subprocesses

METHODS = ("supervised", "simclr", "byol", "restore")


def cases(n: int, size: int):
    from medtl.data.dataset import PreparedCase

    rng = np.random.default_rng(0)
    return [PreparedCase(f"c{i}", f"p{i // 2}", f"p{i // 2}", int(i % 2),
                         rng.normal(size=(1, size, size)).astype(np.float32), None, "") for i in range(n)]


def run_one(method: str, args) -> dict:
    """Seconds per epoch and peak memory of one method, in this process."""
    from medtl.config import SSLConfig, load_config
    from medtl.models import create_model

    device = torch.device(args.device)
    data = cases(args.n, args.size)
    config = load_config(None, [f"model.backbone={args.backbone}", "model.pretrained=none",
                                f"data.image_size={args.size}", f"train.batch_size={args.batch}",
                                f"train.epochs={args.epochs}", f"train.device={args.device}",
                                "data.augment.enabled=false", "train.warmup_epochs=0"])
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.pt"
        if method == "supervised":
            from medtl.train.loop import fit

            model = create_model(args.backbone, dims=2, num_classes=2)
            start = time.perf_counter()
            fit(model, data, config, state, 0)
        else:
            from medtl.ssl.loop import fit_ssl
            from medtl.workflows.pretrain_ssl import build_objective, training_data

            objective = build_objective(method, config, SSLConfig())
            dataset, randomised = training_data(objective, data, SSLConfig(), 0)
            start = time.perf_counter()
            fit_ssl(objective, dataset, randomised, config.train, state, 0)
        seconds = (time.perf_counter() - start) / args.epochs
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"seconds": seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args)))
        return
    passed = [f"--{k}={v}" for k, v in vars(args).items() if k != "child"]
    best = best_in_subprocesses(__file__, passed, METHODS, args.repeats, "seconds")
    reference = best["supervised"]["seconds"]
    where = args.device if args.device != "cpu" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.backbone} 2D {args.size}px, {args.n} images, batch {args.batch}, {where}")
    for method in METHODS:
        result = best[method]
        ratio = "reference" if method == "supervised" else f"ratio {result['seconds'] / reference:.2f}"
        print(f"{method:<11} {result['seconds']:6.2f} s/epoch  {args.n / result['seconds']:7.1f} images/s  "
              f"{ratio:<12} peak {'GPU' if args.device == 'cuda' else 'RSS'} {result['peak_mib']:7.0f} MiB")


if __name__ == "__main__":
    main()

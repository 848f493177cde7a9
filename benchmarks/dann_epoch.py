"""DANN epoch time against plain fine-tuning (ERM) and importance re-weighting, on the same data and model.

In one run, alternating: seconds per epoch of ``medtl.train.loop.fit`` for
1. ERM (the reference: plain fine-tuning),
2. DANN (each batch joined by an equally large batch of unlabelled target images, plus
   the discriminator; expect about 1.3-2x: the encoder sees twice the images),
3. re-weighting (per-case losses; the weights are estimated once before training and
   timed separately).

Run: python benchmarks/dann_epoch.py [--backbone resnet18] [--size 96] [--n 128] [--targets 64] [--batch 16]
     [--epochs 2] [--repeats 3]   (the best of the repeats is kept for each)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_data(n: int, targets: int, size: int):
    from medtl.data.dataset import PreparedCase
    from medtl.domain.targets import TargetImage

    rng = np.random.default_rng(0)
    cases = [PreparedCase(f"c{i}", f"p{i}", f"p{i}", int(i % 2), rng.normal(size=(1, size, size)).astype(np.float32),
                          None, "") for i in range(n)]
    images = [TargetImage(rng.normal(0.5, 1.2, size=(1, size, size)).astype(np.float32), f"t{i}")
              for i in range(targets)]
    return cases, images


def make_config(args, method: str):
    from medtl.config import load_config

    return load_config(None, [f"model.backbone={args.backbone}", "model.pretrained=none", f"data.image_size={args.size}",
                              f"train.batch_size={args.batch}", f"train.epochs={args.epochs}", "train.device=cpu",
                              "data.augment.enabled=false", f"adapt.method={method}"])


def seconds_per_epoch(args, method: str, cases, targets) -> tuple[float, float]:
    """``(seconds per epoch, seconds to estimate the weights)``."""
    from medtl.models import create_model
    from medtl.train.loop import fit
    from medtl.train.methods import build_method

    config = make_config(args, method)
    torch.manual_seed(0)
    model = create_model(args.backbone, dims=2, num_classes=2)
    start = time.perf_counter()
    method = build_method(config)
    method.setup(model, cases, targets, torch.device("cpu"), 0)
    setup = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        fit(model, cases, config, Path(tmp) / "state.pt", 0, method=method)
        return (time.perf_counter() - start) / args.epochs, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--targets", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cases, targets = make_data(args.n, args.targets, args.size)
    best = {"none": (float("inf"), 0.0), "dann": (float("inf"), 0.0), "reweight": (float("inf"), 0.0)}
    for _ in range(args.repeats):
        for method in best:
            result = seconds_per_epoch(args, method, cases, targets)
            best[method] = min(best[method], result)
    erm = best["none"][0]
    print(f"{args.backbone} 2D {args.size}px, {args.n} training cases, {args.targets} target images, batch "
          f"{args.batch}, CPU threads {torch.get_num_threads()}")
    print(f"ERM       {erm:7.2f} s/epoch (reference)")
    print(f"DANN      {best['dann'][0]:7.2f} s/epoch  ratio DANN/ERM = {best['dann'][0] / erm:.2f}")
    print(f"reweight  {best['reweight'][0]:7.2f} s/epoch  ratio reweight/ERM = {best['reweight'][0] / erm:.2f} "
          f"(+ {best['reweight'][1]:.2f} s once to estimate the weights)")


if __name__ == "__main__":
    main()

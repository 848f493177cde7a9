"""Federated and private training cost against plain training on the same images, in one run.

1. a federated round (``fedavg``: every client one local epoch on its own images, then the
   server's average) against one pooled epoch of ``medtl.train.loop.fit`` over the same
   images: expect ~1x plus the per-client optimiser set-up and the averaging;
2. a DP-SGD epoch (per-image gradients with ``torch.func``, clipping, noise, Poisson batches)
   against a plain epoch of the same model: expect several times slower (one gradient per
   image instead of one per batch).

Fastest of ``--repeats`` each, alternating, one process, same threads.

Run: python benchmarks/fed_round.py [--backbone resnet18-gn] [--size 64] [--n 96] [--sites 3] [--batch 16]
     [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def cases(n: int, size: int, sites: int):
    from medtl.data.dataset import PreparedCase

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        case = PreparedCase(f"c{i}", f"p{i}", f"p{i}", int(i % 2), rng.normal(size=(1, size, size)).astype(np.float32),
                            None, "")
        case.site = f"site{i % sites}"
        out.append(case)
    return out


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18-gn")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from medtl.config import load_config
    from medtl.models import create_model
    from medtl.train.federated import fit_federated
    from medtl.train.loop import fit

    data = cases(args.n, args.size, args.sites)
    base = [f"model.backbone={args.backbone}", "model.pretrained=none", f"data.image_size={args.size}",
            f"train.batch_size={args.batch}", "train.epochs=1", "fed.rounds=1", "data.augment.enabled=false",
            "train.device=cpu"]
    configs = {"pooled epoch": load_config(None, base), "federated round": load_config(None, base),
               "DP-SGD epoch": load_config(None, [*base, "privacy.dp=true", "privacy.noise_multiplier=1.0"])}
    best = {name: float("inf") for name in configs}
    for _ in range(args.repeats):
        for name, config in configs.items():
            torch.manual_seed(0)
            model = create_model(args.backbone, dims=2, num_classes=2, pretrained="none")
            with tempfile.TemporaryDirectory() as tmp:
                state = Path(tmp) / "state.pt"
                if name == "federated round":
                    seconds = timed(lambda: fit_federated(model, data, config, state, 0, 0.0))
                else:
                    seconds = timed(lambda: fit(model, data, config, state, 0))
            best[name] = min(best[name], seconds)
    print(f"{args.backbone} 2D {args.size}px, {args.n} images at {args.sites} sites, batch {args.batch}, "
          f"CPU, {torch.get_num_threads()} threads; fastest of {args.repeats}")
    reference = best["pooled epoch"]
    for name, seconds in best.items():
        ratio = "reference" if name == "pooled epoch" else f"ratio {seconds / reference:.2f}"
        print(f"{name:<16} {seconds:7.2f} s  {args.n / seconds:7.1f} images/s  {ratio}")


if __name__ == "__main__":
    main()

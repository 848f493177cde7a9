"""Training overhead of medtl's loop against a bare PyTorch loop, and data pipeline vs training step.

In one run, with the same model, batch size and in-memory data:
1. samples/s of ``medtl.train.loop.fit`` (strategy, scheduler, L2-SP hook, per-epoch
   checkpoint included) vs a bare loop (DataLoader over tensors, AdamW, no checkpoint);
   target ratio >= 0.95;
2. samples/s of the data pipeline alone (medtl's Dataset + augmentation) vs the training step,
   to tell whether loading is the bottleneck.

Run: python benchmarks/train_overhead.py [--backbone resnet18] [--size 128] [--n 384] [--batch 16] [--epochs 2]
     [--repeats 3]   (the two loops alternate; the best of the repeats is kept for each)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_cases(n: int, size: int, dims: int):
    from medtl.data.dataset import PreparedCase

    rng = np.random.default_rng(0)
    shape = (1,) + (size,) * dims
    return [PreparedCase(f"c{i}", f"p{i}", f"p{i}", int(i % 2), rng.normal(size=shape).astype(np.float32), None, "")
            for i in range(n)]


def make_config(args, augment: bool):
    from medtl.config import load_config

    return load_config(None, [f"model.backbone={args.backbone}", "model.pretrained=none", f"data.dims={args.dims}",
                              f"train.batch_size={args.batch}", f"train.epochs={args.epochs}", "train.warmup_epochs=0",
                              f"data.augment.enabled={str(augment).lower()}", "train.device=cpu"])


def bench_medtl(args, cases) -> float:
    from medtl.models import create_model
    from medtl.train.loop import fit

    config = make_config(args, augment=False)
    torch.manual_seed(0)
    model = create_model(args.backbone, dims=args.dims, num_classes=2)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        fit(model, cases, config, Path(tmp) / "state.pt", seed=0)
        return len(cases) * args.epochs / (time.perf_counter() - start)


def bench_bare(args, cases) -> float:
    from medtl.models import create_model

    torch.manual_seed(0)
    model = create_model(args.backbone, dims=args.dims, num_classes=2)
    images = torch.from_numpy(np.stack([c.image for c in cases]))
    labels = torch.tensor([c.label for c in cases])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=args.batch,
                                         shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return len(cases) * args.epochs / (time.perf_counter() - start)


def bench_pipeline(args, cases) -> float:
    from medtl.train.loop import make_loader
    from medtl.transforms.presets import augment_pipeline

    config = make_config(args, augment=True)
    augment = augment_pipeline(config.data, with_mask=False)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        augment.set_random_state(seed=epoch)
        for _ in make_loader(cases, config, epoch, augment):
            pass
    return len(cases) * args.epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--n", type=int, default=384)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = make_cases(args.n, args.size, args.dims)
    print(f"{args.backbone} {args.dims}D {args.size}px, batch {args.batch}, {args.n} samples x {args.epochs} epochs, "
          f"{torch.get_num_threads()} threads")
    bench_bare(args, cases[: args.batch])  # warm-up (allocator, kernels)
    # Alternate the two loops and keep the best of each, so neither profits from running later.
    bare, ours = 0.0, 0.0
    for _ in range(args.repeats):
        bare = max(bare, bench_bare(args, cases))
        ours = max(ours, bench_medtl(args, cases))
    pipeline = bench_pipeline(args, cases)
    print(f"bare PyTorch loop:      {bare:8.1f} samples/s")
    print(f"medtl fit():            {ours:8.1f} samples/s   ratio medtl/bare = {ours / bare:.3f} (target >= 0.95)")
    print(f"data pipeline alone:    {pipeline:8.1f} samples/s   = {pipeline / ours:.1f}x the training step "
          f"({'loading is not' if pipeline > ours else 'loading IS'} the bottleneck)")


if __name__ == "__main__":
    main()

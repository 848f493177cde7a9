"""Training overhead of medtl's loop against a bare PyTorch loop, and data pipeline vs training step.

In one run, with the same model, batch size and in-memory data:
1. samples/s of ``medtl.train.loop.fit`` (strategy, scheduler, L2-SP hook, per-epoch
   checkpoint included) vs a bare loop (DataLoader over tensors, AdamW, no checkpoint);
   target ratio >= 0.95;
2. samples/s of the data pipeline alone (medtl's Dataset + augmentation) vs the training step,
   to tell whether loading is the bottleneck.

``--patch``: 3D segmentation in patch mode instead: ``--n`` volumes of 48x``--size``x``--size``
with a spherical lesion, ``data.patches_per_case`` 2 patches of 32^3 per volume and epoch
(half centred on the lesion), ResNet-18 U-Net, Dice+CE; the bare loop crops the same number of
32^3 patches with numpy at random places and trains the same network on the same loss.

Run: python benchmarks/train_overhead.py [--backbone resnet18] [--size 128] [--n 384] [--batch 16] [--epochs 2]
     [--repeats 3] [--patch]   (the two loops alternate; the best of the repeats is kept for each)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PATCH = 32
PATCHES_PER_CASE = 2


def make_cases(n: int, size: int, dims: int, patch: bool = False):
    from medtl.data.dataset import PreparedCase, foreground_sample

    rng = np.random.default_rng(0)
    if patch:  # native-extent volumes with a lesion, as patch mode keeps them
        shape = (48, size, size)
        grid = np.indices(shape)
        cases = []
        for i in range(n):
            centre = rng.integers(8, np.array(shape) - 8)
            mask = (((grid - centre[:, None, None, None]) ** 2).sum(0) < 36).astype(np.int16)[None]
            image = (rng.normal(size=(1, *shape)) + 2 * mask).astype(np.float32)
            cases.append(PreparedCase(f"c{i}", f"p{i}", f"p{i}", None, image, mask, "", spacing=(1.0, 1.0, 1.0),
                                      foreground=foreground_sample(mask, i), source_foreground=int(mask.sum())))
        return cases
    shape = (1,) + (size,) * dims
    return [PreparedCase(f"c{i}", f"p{i}", f"p{i}", int(i % 2), rng.normal(size=shape).astype(np.float32), None, "")
            for i in range(n)]


def make_config(args, augment: bool):
    from medtl.config import load_config

    patch = ["task=segmentation", "data.mode=patch", f"data.patch_size=[{PATCH},{PATCH},{PATCH}]",
             f"data.patches_per_case={PATCHES_PER_CASE}", "data.foreground_ratio=0.5"] if args.patch else []
    return load_config(None, [*patch, f"model.backbone={args.backbone}", "model.pretrained=none", f"data.dims={args.dims}",
                              f"train.batch_size={args.batch}", f"train.epochs={args.epochs}", "train.warmup_epochs=0",
                              f"data.augment.enabled={str(augment).lower()}", "train.device=cpu"])


def bench_medtl(args, cases) -> float:
    from medtl.models import create_model
    from medtl.train.loop import fit

    config = make_config(args, augment=False)
    torch.manual_seed(0)
    model = create_model(args.backbone, dims=args.dims, num_classes=2, task=task_name(args))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        fit(model, cases, config, Path(tmp) / "state.pt", seed=0)
        return samples(args, cases) * args.epochs / (time.perf_counter() - start)


def task_name(args) -> str:
    return "segmentation" if args.patch else "classification"


def samples(args, cases) -> int:
    """Training items per epoch: images, or patches in patch mode."""
    return len(cases) * (PATCHES_PER_CASE if args.patch else 1)


def patch_batches(args, cases, rng):
    """The bare loop's patch-mode batches: random 32^3 crops of the volumes (numpy), in a random order."""
    order = rng.permutation(samples(args, cases))
    for first in range(0, len(order), args.batch):
        images, masks = [], []
        for item in order[first:first + args.batch]:
            case = cases[item // PATCHES_PER_CASE]
            corner = [int(rng.integers(0, s - PATCH + 1)) for s in case.image.shape[1:]]
            window = (slice(None), *(slice(c, c + PATCH) for c in corner))
            images.append(torch.from_numpy(np.ascontiguousarray(case.image[window])))
            masks.append(torch.from_numpy(case.mask[window][0].astype(np.int64)))
        yield torch.stack(images), torch.stack(masks)


def bench_bare(args, cases) -> float:
    from medtl.models import create_model

    torch.manual_seed(0)
    model = create_model(args.backbone, dims=args.dims, num_classes=2, task=task_name(args))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if args.patch:
        from medtl.tasks.losses import segmentation_loss

        loss_fn, rng = segmentation_loss(), np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(args.epochs):
            model.train()
            for x, y in patch_batches(args, cases, rng):
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return samples(args, cases) * args.epochs / (time.perf_counter() - start)
    images = torch.from_numpy(np.stack([c.image for c in cases]))
    labels = torch.tensor([c.label for c in cases])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=args.batch,
                                         shuffle=True)
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
    parser.add_argument("--patch", action="store_true", help="3D segmentation in patch mode (see above)")
    args = parser.parse_args()
    if args.patch:
        args.dims = 3
    cases = make_cases(args.n, args.size, args.dims, args.patch)
    what = (f"patch mode, {args.n} volumes of 48x{args.size}x{args.size}, {PATCHES_PER_CASE} patches of {PATCH}^3 "
            "each" if args.patch else f"{args.size}px, {args.n} samples")
    print(f"{args.backbone} {args.dims}D {what}, batch {args.batch}, {args.epochs} epochs, "
          f"{torch.get_num_threads()} threads")
    bench_bare(args, cases[: args.batch])  # warm-up (allocator, kernels)
    # Alternate the two loops and keep the best of each, so neither profits from running later.
    bare, ours = 0.0, 0.0
    for _ in range(args.repeats):
        bare = max(bare, bench_bare(args, cases))
        ours = max(ours, bench_medtl(args, cases))
    pipeline = bench_pipeline(args, cases) if not args.patch else None
    print(f"bare PyTorch loop:      {bare:8.1f} samples/s")
    print(f"medtl fit():            {ours:8.1f} samples/s   ratio medtl/bare = {ours / bare:.3f} (target >= 0.95)")
    if pipeline is not None:
        print(f"data pipeline alone:    {pipeline:8.1f} samples/s   = {pipeline / ours:.1f}x the training step "
              f"({'loading is not' if pipeline > ours else 'loading IS'} the bottleneck)")


if __name__ == "__main__":
    main()

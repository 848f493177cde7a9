"""Multi-task training cost against the two single-task models it replaces, measured in the same run.

One epoch of ``medtl.train.loop.fit`` on the same images and batch for:
1. classification alone (``task: classification``);
2. segmentation alone (``task: segmentation``, the U-Net decoder);
3. multi-task (one encoder, the classification head and the decoder, uncertainty weighting).

Printed ratios: multitask / segmentation (the price of the extra head on top of the
decoder) and multitask / (classification + segmentation) (what one shared encoder saves
against training both single-task models, as the control arms do). Best epoch of
``--repeats`` after a warm-up epoch; augmentation off (the same images in every variant).

Run: python benchmarks/multitask_epoch.py [--backbone resnet18] [--size 96] [--n 64] [--batch 16] [--repeats 2]
     [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import best_time

TASKS = "[{name: nodule, kind: classification, column: label}, {name: lesion, kind: segmentation, column: mask}]"


def cases(n: int, size: int):
    from medtl.data.dataset import PreparedCase

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        mask = np.zeros((1, size, size), np.int16)
        if i % 2:
            mask[0, size // 4:size // 4 + size // 8, size // 3:size // 3 + size // 8] = 1
        out.append(PreparedCase(f"c{i}", f"p{i // 2}", f"p{i // 2}", int(i % 2),
                                rng.normal(size=(1, size, size)).astype(np.float32), mask, "", spacing=(1.0, 1.0),
                                labels={"nodule": int(i % 2)}))
    return out


def epoch_seconds(task: str, args, data) -> float:
    from dataclasses import replace

    from medtl.config import load_config
    from medtl.models import create_model
    from medtl.train.loop import fit

    overrides = [f"model.backbone={args.backbone}", "model.pretrained=none", f"data.image_size={args.size}",
                 f"train.batch_size={args.batch}", "train.epochs=1", f"train.device={args.device}",
                 "data.augment.enabled=false", "train.warmup_epochs=0", f"task={task}"]
    if task == "multitask":
        overrides += [f"tasks={TASKS}", "multitask.weighting=uncertainty"]
    config = load_config(None, overrides)
    if task == "classification":
        data = [replace(c, mask_data=None) for c in data]

    def one_epoch() -> None:
        torch.manual_seed(0)
        if task == "multitask":
            model = create_model(args.backbone, dims=2, num_classes={"nodule": 2, "lesion": 2}, task="multitask",
                                 task_kinds={"nodule": "classification", "lesion": "segmentation"})
        else:
            model = create_model(args.backbone, dims=2, num_classes=2, task=task)
        with tempfile.TemporaryDirectory() as tmp:
            fit(model, data, config, Path(tmp) / "state.pt", 0)

    return best_time(one_epoch, args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = cases(args.n, args.size)
    seconds = {task: epoch_seconds(task, args, data) for task in ("classification", "segmentation", "multitask")}
    for task, value in seconds.items():
        print(f"{task:15s} {value:7.2f} s/epoch  {args.n / value:6.1f} img/s")
    both = seconds["classification"] + seconds["segmentation"]
    print(f"multitask / segmentation alone: {seconds['multitask'] / seconds['segmentation']:.2f}")
    print(f"multitask / (classification + segmentation): {seconds['multitask'] / both:.2f}")
    print(json.dumps({"config": vars(args), "seconds_per_epoch": seconds}))


if __name__ == "__main__":
    main()

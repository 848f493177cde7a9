"""DDP on CPU (gloo): one epoch of ``fit`` on 2 processes vs 1 process, measured in the same run.

The same 64 images (ResNet-18 2D 96 px, global batch 16, no augmentation) train one epoch:
1. one process with 2 torch threads (the whole machine);
2. one process with 1 thread (the per-process budget of the DDP run);
3. two processes (``torch.multiprocessing.spawn``, gloo), 1 thread each, each taking half of
   every global batch, gradients averaged at every step.
Best of ``--repeats`` epochs after a warm-up. On a GPU machine use ``torchrun`` with
``medtl cv --gpus N`` instead; this script measures the CPU/gloo overhead.

Run: python benchmarks/ddp_overhead.py [--backbone resnet18] [--size 96] [--n 64] [--batch 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def cases(n: int, size: int):
    from medtl.data.dataset import PreparedCase

    rng = np.random.default_rng(0)
    return [PreparedCase(f"c{i}", f"p{i}", f"p{i}", int(i % 2), rng.normal(size=(1, size, size)).astype(np.float32),
                         None, "") for i in range(n)]


def epoch_seconds(args, threads: int, distributed: bool) -> float:
    from medtl.config import load_config
    from medtl.models import create_model
    from medtl.train.loop import fit

    config = load_config(None, [f"model.backbone={args.backbone}", "model.pretrained=none",
                                f"data.image_size={args.size}", f"train.batch_size={args.batch}", "train.epochs=1",
                                "train.device=cpu", f"train.threads={threads}", "data.augment.enabled=false"])
    data = cases(args.n, args.size)
    times = []
    for _ in range(args.repeats + 1):
        torch.manual_seed(0)
        model = create_model(args.backbone, dims=2, num_classes=2)
        with tempfile.TemporaryDirectory() as tmp:
            if distributed:
                dist.barrier()
            start = time.perf_counter()
            fit(model, data, config, Path(tmp) / "state.pt", 0, distributed=distributed)
            times.append(time.perf_counter() - start)
    return min(times[1:])


def _rank(rank: int, world: int, init: str, args, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        seconds = epoch_seconds(args, 1, True)
        if rank == 0:
            Path(out).write_text(json.dumps(seconds))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    seconds = {"1 process, 2 threads": epoch_seconds(args, 2, False),
               "1 process, 1 thread": epoch_seconds(args, 1, False)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.json"
        mp.spawn(_rank, args=(2, str(Path(tmp) / "init"), args, str(out)), nprocs=2, join=True)
        seconds["2 processes (DDP, gloo), 1 thread each"] = json.loads(out.read_text())
    for name, value in seconds.items():
        print(f"{name:40s} {value:6.2f} s/epoch  {args.n / value:6.1f} img/s")
    ddp = seconds["2 processes (DDP, gloo), 1 thread each"]
    print(f"DDP 2 processes / 1 process 2 threads: {ddp / seconds['1 process, 2 threads']:.2f}")
    print(f"DDP 2 processes / 1 process 1 thread: {ddp / seconds['1 process, 1 thread']:.2f}")
    print(json.dumps({"config": vars(args), "seconds_per_epoch": seconds}))


if __name__ == "__main__":
    main()

"""Meta-learning throughput against the supervised source stage on the same images.

Each method runs in its own subprocess (its peak memory is its own), alternating over
repeats; the best time of each is kept:
1. supervised: ``medtl.train.loop.fit`` (cross-entropy, no augmentation) on the pool's
   images, batch = one episode's images - the reference;
2. maml, fomaml, anil, protonet: ``medtl.meta.loop.fit_meta`` on N-way K-shot episodes
   of the same images (expect maml at ~2-3x the supervised time per image: the inner step's
   forward and backward plus the second-order backward; fomaml, anil and protonet near 1x).

Ratio = seconds per image of the method / seconds per image of supervised training. Peak
memory: the process's maximum resident set on CPU, ``torch.cuda.max_memory_allocated`` on a GPU.

Run: python benchmarks/meta_epoch.py [--backbone resnet18] [--size 64] [--n 128] [--ways 2] [--shots 5]
     [--queries 5] [--episodes 16] [--inner-steps 1] [--repeats 2] [--device cpu|cuda]
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

METHODS = ("supervised", "maml", "fomaml", "anil", "protonet")


def cases(n: int, size: int):
    from medtl.data.dataset import PreparedCase

    rng = np.random.default_rng(0)
    return [PreparedCase(f"c{i}", f"p{i}", f"p{i}", int(i % 2), rng.normal(size=(1, size, size)).astype(np.float32),
                         None, "", labels={"c0": int(i % 2), "c1": int(i % 4 // 2)}) for i in range(n)]


def run_one(method: str, args) -> dict:
    """Seconds per image and peak memory of one method, in this process."""
    from medtl.config import MetaConfig, load_config
    from medtl.models import create_model

    device = torch.device(args.device)
    data = cases(args.n, args.size)
    per_episode = args.ways * (args.shots + args.queries)
    meta = MetaConfig(ways=args.ways, shots=args.shots, queries=args.queries, episodes_per_epoch=args.episodes,
                      tasks_per_step=4, inner_steps=args.inner_steps)
    config = load_config(None, [f"model.backbone={args.backbone}", "model.pretrained=none",
                                f"data.image_size={args.size}", f"train.batch_size={per_episode}",
                                "train.epochs=1", f"train.device={args.device}", "data.augment.enabled=false",
                                "train.warmup_epochs=0"])
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.pt"
        model = create_model(args.backbone, dims=2, num_classes=2)
        if method == "supervised":
            from medtl.train.loop import fit

            start = time.perf_counter()
            fit(model, data, config, state, 0)
            images = len(data)
        else:
            from medtl.meta.episodes import EpisodeSampler, build_families
            from medtl.meta.loop import fit_meta
            from medtl.meta.methods import build_meta_method

            families = build_families(["c0", "c1"], [[c.labels["c0"] for c in data], [c.labels["c1"] for c in data]],
                                      [["a", "b"], ["c", "d"]], [c.patient_key for c in data])
            sampler = EpisodeSampler(families, args.ways, args.shots, args.queries, 0)
            start = time.perf_counter()
            fit_meta(build_meta_method(method, model, meta), model, sampler, data, config.train, meta, state, 0)
            images = args.episodes * per_episode
        seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"seconds_per_image": seconds / images, "episodes_per_s": images / per_episode / seconds,
            "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--ways", type=int, default=2)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args)))
        return
    passed = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k != "child"]
    best = best_in_subprocesses(__file__, passed, METHODS, args.repeats, "seconds_per_image")
    reference = best["supervised"]["seconds_per_image"]
    where = args.device if args.device != "cpu" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.backbone} 2D {args.size}px, {args.ways}-way {args.shots}-shot {args.queries} queries, "
          f"{args.inner_steps} inner step(s), {args.episodes} episodes, {where}")
    for method in METHODS:
        result = best[method]
        ratio = "reference" if method == "supervised" else f"ratio {result['seconds_per_image'] / reference:.2f}"
        print(f"{method:<11} {result['episodes_per_s']:6.2f} episodes/s  {1 / result['seconds_per_image']:7.1f} "
              f"images/s  {ratio:<12} peak {'GPU' if args.device == 'cuda' else 'RSS'} {result['peak_mib']:7.0f} MiB")


if __name__ == "__main__":
    main()

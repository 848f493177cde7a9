"""Torch threads on a shared machine: training steps with every core vs fewer threads, alone and beside a
competing job, measured in the same run.

Each measurement is its own process: ResNet-18 2D training steps (96 px, batch 16) with
``torch.set_num_threads(T)``, the median step time over ``--steps`` steps after a warm-up.
The competitor is another such process using every core (a colleague's job), started before
and killed after. A default that degrades gracefully keeps the shared slowdown near the
share of cores lost (2x for two equal jobs), not the collapse of oversubscribed spinning
threads.

Run: python benchmarks/thread_contention.py [--steps 12]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

STEP = r"""
import json, sys, time, torch
from medtl.models.build import create_model
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
model = create_model("resnet18", dims=2, num_classes=2)
optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(16, 1, 96, 96), torch.randint(0, 2, (16,))
times = []
for step in range(steps + 2):
    start = time.perf_counter()
    optimiser.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimiser.step()
    times.append(time.perf_counter() - start)
print(json.dumps(times[2:]))
"""

COMPETITOR = STEP.replace("for step in range(steps + 2):", "while True:").replace("print(json.dumps(times[2:]))", "")


def measure(threads: int, steps: int) -> float:
    out = subprocess.run([sys.executable, "-c", STEP, str(threads), str(steps)], capture_output=True, text=True,
                         check=True)
    return statistics.median(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    counts = sorted({cores, max(1, cores // 2), 1})
    results = {"cores": cores, "alone": {}, "beside a job using every core": {}}
    for threads in counts:
        results["alone"][threads] = measure(threads, args.steps)
    competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR, str(cores), "0"])
    time.sleep(8)  # its imports and model build
    try:
        for threads in counts:
            results["beside a job using every core"][threads] = measure(threads, args.steps)
    finally:
        competitor.kill()
    alone = results["alone"][cores]
    for setting, figures in results.items():
        if isinstance(figures, dict):
            for threads, seconds in figures.items():
                print(f"{setting:32s} {threads} thread(s): {seconds * 1000:7.1f} ms/step "
                      f"(ratio to {cores} threads alone: {seconds / alone:.2f})")


if __name__ == "__main__":
    main()

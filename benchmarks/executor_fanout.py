"""``medtl cv`` units fanned out to a 2-worker Dask LocalCluster vs the sequential run, measured in the same run.

The same config (the sample radiographs, ResNet-18 at 64 px, 4 folds x 1 arm, a few
epochs) runs three times from an empty run folder (the prepared-case cache is warmed
first, outside the timing):
1. sequential with 2 torch threads (all cores, the default on this machine);
2. sequential with 1 thread;
3. ``--executor dask --cluster-workers 2``: 2 worker processes, 1 thread each.
Printed: wall seconds and the ratios dask / sequential. Results are bit-identical to
run 2 (same threads per unit); the benchmark checks that.

Run: python benchmarks/executor_fanout.py [--epochs 3] [--size 64] [--backbone resnet18]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cv(config: Path, out: Path, overrides: list[str], extra: list[str]) -> float:
    args = [sys.executable, "-m", "medtl", "cv", str(config), "--out", str(out), "--quiet", *extra]
    args += [x for o in overrides for x in ("--set", o)]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"medtl cv failed: {done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--backbone", default="resnet18")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = tmp / "fanout.yaml"
        config.write_text("task: classification\n")
        base = [f"data.manifest={ROOT / 'sample_data' / 'cls2d_target' / 'manifest.csv'}",
                f"model.backbone={args.backbone}", "model.pretrained=none", f"train.epochs={args.epochs}",
                "cv.folds=4", f"data.image_size=[{args.size},{args.size}]", "cv.bootstrap=200"]
        warm = tmp / "warm"
        run_cv(config, warm, base + ["train.epochs=1"], [])  # fills the prepared-case cache once
        cache = warm / "cache"
        seconds = {}
        for name, threads, extra in (("sequential, 2 threads", 2, []), ("sequential, 1 thread", 1, []),
                                     ("dask, 2 workers x 1 thread", 1, ["--executor", "dask",
                                                                         "--cluster-workers", "2"])):
            out = tmp / name.replace(" ", "_").replace(",", "")
            out.mkdir()
            shutil.copytree(cache, out / "cache")
            seconds[name] = run_cv(config, out, base + [f"train.threads={threads}"], extra)
            print(f"{name:28s} {seconds[name]:7.1f} s")
        same = ((tmp / "sequential_1_thread" / "metrics.json").read_text() ==
                (tmp / "dask_2_workers_x_1_thread" / "metrics.json").read_text())
    dask = seconds["dask, 2 workers x 1 thread"]
    print(f"dask / sequential (2 threads): {dask / seconds['sequential, 2 threads']:.2f}")
    print(f"dask / sequential (1 thread): {dask / seconds['sequential, 1 thread']:.2f}")
    print(f"metrics.json identical to the 1-thread sequential run: {same}")
    print(json.dumps({"config": vars(args), "seconds": seconds, "identical": same}))


if __name__ == "__main__":
    main()

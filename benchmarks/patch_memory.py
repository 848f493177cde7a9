"""Peak memory of ``medtl cv`` in patch mode on 50 vs 100 volumes (and resize mode for contrast).

Patch mode keeps prepared cases in memory-mapped ``.npy`` files, so a run's memory
should not grow with the number of cases; resize mode holds every prepared case in
memory. Each run is a fresh process (its own peak resident set, ``ru_maxrss``), on
synthetic CT-like volumes with lesion masks, a tiny backbone and one epoch: the
figure is about data handling, not the model.

Run: python benchmarks/patch_memory.py [--counts 50 100] [--shape 48 96 96] [--modes patch resize]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(manifest: str, mode: str, shape: list[int], out: str) -> None:
    """One cv run in this process; prints its peak RSS in MB as JSON."""
    from medtl.config import load_config
    from medtl.workflows.cv import run_cv

    data = [f"data.manifest={manifest}", "task=segmentation", "data.dims=3", "data.spacing=[3,0.9,0.9]",
            "data.intensity=window"]
    if mode == "patch":
        data += ["data.mode=patch", "data.patch_size=[32,32,32]", "data.patches_per_case=1"]
    else:
        data += [f"data.image_size={shape}"]
    config = load_config(None, data + ["model.backbone=tiny-resnet", "model.pretrained=none", "train.epochs=1",
                                       "train.batch_size=4", "cv.folds=2", "cv.bootstrap=100"])
    started = time.perf_counter()
    run_cv(config, out, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": round(peak, 1), "seconds": round(time.perf_counter() - started, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 96, 96])
    parser.add_argument("--modes", nargs="+", default=["patch", "resize"])
    parser.add_argument("--child", nargs=3, metavar=("MANIFEST", "MODE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.shape, args.child[2])
        return

    from medtl.samples.sample_data import write_ct_set

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        largest = max(args.counts)
        print(f"writing {largest} synthetic volumes of {'x'.join(map(str, args.shape))} voxels ...", flush=True)
        write_ct_set(root / "ct", largest, tuple(args.shape), seed=0)
        lines = (root / "ct" / "manifest.csv").read_text().splitlines()
        results = {}
        for count in args.counts:
            manifest = root / "ct" / f"manifest{count}.csv"  # beside the images its paths name
            manifest.write_text("\n".join(lines[:count + 1]) + "\n")
            for mode in args.modes:
                out = root / f"run_{mode}_{count}"
                command = [sys.executable, __file__, "--shape", *map(str, args.shape), "--child", str(manifest),
                           mode, str(out)]
                result = subprocess.run(command, capture_output=True, text=True)
                if result.returncode:
                    sys.exit(f"{mode} run on {count} cases failed:\n{result.stderr[-3000:]}")
                results[mode, count] = json.loads(result.stdout.strip().splitlines()[-1])
                print(f"{mode:6s} {count:4d} cases: peak RSS {results[mode, count]['peak_mb']:7.1f} MB "
                      f"({results[mode, count]['seconds']} s)", flush=True)
        low, high = min(args.counts), max(args.counts)
        for mode in args.modes:
            ratio = results[mode, high]["peak_mb"] / results[mode, low]["peak_mb"]
            print(f"{mode}: peak memory {high} cases / {low} cases = {ratio:.3f} (1.0 = flat)")


if __name__ == "__main__":
    main()

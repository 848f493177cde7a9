"""``medtl predict`` over synthetic hospital exports of two sizes: series/s, peak memory, overhead.

In one run:
1. writes exports of N radiograph series (DICOM, in patient-named folders) plus ~5% junk
   files, for each N in --sizes (default 50 and 500);
2. makes a run folder holding --folds fold models (random weights: speed does not depend
   on training) so ``medtl predict`` ensembles them as it would a real run;
3. runs ``medtl predict`` in a fresh process per size and reports wall time, series/s and
   peak resident memory (the largest process, via getrusage), and the memory ratio
   largest/smallest export (flat memory = ratio near 1);
4. a bare reference on the same files: pydicom read, resize, the same models in batches
   of 16, no scan, no workers, no outputs; ratio = medtl rate / bare rate; and the same
   loop on the models exported to ONNX (``medtl export``'s writer) run by onnxruntime;
5. where the bottleneck is: loading+preprocessing alone vs the models alone (items/s).

Run: python benchmarks/predict_export.py [--sizes 50 500] [--folds 5] [--backbone resnet18] [--image-size 128]
     [--pixels 512] [--workers N] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_export(root: Path, n_series: int, pixels: int) -> Path:
    from medtl.samples.synthetic import write_radiograph

    rng = np.random.default_rng(n_series)
    for i in range(n_series):
        stored = rng.integers(200, 3800, size=(pixels, pixels), dtype=np.uint16)
        write_radiograph(root / f"PATIENT^{i % 97:03d}" / f"img{i:05d}.dcm", stored, patient_id=f"P{i % 97:03d}",
                         seed=i, instance=i + 1, modality="CR")
    for j in range(max(1, n_series // 20)):  # junk: text, empty and random files
        (root / f"junk{j:03d}.txt").write_text("not an image")
        (root / f"empty{j:03d}.dcm").write_bytes(b"")
    return root


def write_run(root: Path, folds: int, backbone: str, image_size: int) -> Path:
    from medtl.config import load_config
    from medtl.models import create_model
    from medtl.models.checkpoint import save_weights
    from medtl.plumbing.atomic import write_json
    from medtl.rundir import RunDir

    config = load_config(None, [f"model.backbone={backbone}", "model.pretrained=none", "data.dims=2",
                                f"data.image_size=[{image_size},{image_size}]", f"cv.folds={folds}",
                                "train.batch_size=16"])
    rundir = RunDir(root)
    rundir.write_config(config)
    rundir.write_splits([{"case_id": f"case{fold}", "patient_key": f"p{fold}", "repeat": 0, "fold": fold}
                         for fold in range(folds)])
    for fold in range(folds):
        torch.manual_seed(fold)
        model = create_model(backbone, dims=2, num_classes=2, class_names=["0", "1"])
        folder = rundir.fold("scratch", 0, fold)
        save_weights(folder.model, model, {**model.describe(), "class_names": '["0", "1"]'})
        write_json(folder.done, {"record": {"fold": fold, "repeat": 0, "n_train": 0}})
    return root


def run_predict(run: Path, export: Path, out: Path, args) -> dict:
    code = ("import resource, sys, time; from medtl.cli import main; t = time.perf_counter(); "
            f"rc = main(['predict', {str(run)!r}, {str(export)!r}, '--out', {str(out)!r}, '--quiet', "
            f"'--device', {args.device!r}" + (f", '--workers', '{args.workers}'" if args.workers is not None else "")
            + "]); print(time.perf_counter() - t); sys.exit(rc)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads((out / "predict.json").read_text())
    seconds = float(result.stdout.strip().splitlines()[-1])
    return {"seconds": seconds, "predicted": summary["predicted"], "peak_mb": max(peak_kb, before) / 1024,
            "peak_is_new": peak_kb > before}


def reference_rate(export: Path, args, run_batch, limit: int = 100) -> float:
    """Series/s of a minimal loop: read, scale, resize, ``run_batch`` on batches of 16, nothing else."""
    import pydicom

    files = sorted(export.rglob("img*.dcm"))[:limit]
    start = time.perf_counter()
    for first in range(0, len(files), 16):  # same batch size as medtl's run config
        images = []
        for path in files[first:first + 16]:
            array = pydicom.dcmread(path).pixel_array.astype(np.float32)
            lo, hi = np.percentile(array, [0.5, 99.5])
            image = torch.from_numpy(np.clip((array - lo) / (hi - lo), 0, 1)).float()[None, None]
            images.append(torch.nn.functional.interpolate(image, size=(args.image_size,) * 2, mode="area")[0])
        run_batch((torch.stack(images) - 0.449) / 0.226)
    return len(files) / (time.perf_counter() - start)


def bare_rate(run: Path, export: Path, args) -> float:
    """The reference loop with the fold models in PyTorch (eval, no_grad), their softmax averaged."""
    from medtl.models.trained import load_trained_run

    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    models = load_trained_run(run).build_models(device)

    def ensemble(batch):
        with torch.no_grad():
            batch = batch.to(device)
            return torch.stack([torch.softmax(m(batch), 1) for m in models]).mean(0).cpu()

    return reference_rate(export, args, ensemble)


def onnx_rate(run: Path, export: Path, args, folder: Path) -> float:
    """The reference loop with the same fold models exported to ONNX as ``medtl export`` writes them, run by
    onnxruntime (CPU, as many intra-op threads as torch uses)."""
    import onnxruntime

    from medtl.export.networks import write_network
    from medtl.models.trained import load_trained_run

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sessions = []
    for index, model in enumerate(load_trained_run(run).build_models(torch.device("cpu"))):
        path = folder / f"fold{index}.onnx"
        write_network(model.eval(), path, "onnx", torch.zeros(2, 1, args.image_size, args.image_size))
        sessions.append(onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))

    def ensemble(batch):
        feed = batch.numpy()
        logits = [session.run(None, {session.get_inputs()[0].name: feed})[0] for session in sessions]
        return torch.stack([torch.softmax(torch.from_numpy(x), 1) for x in logits]).mean(0)

    return reference_rate(export, args, ensemble)


def bottleneck(run: Path, export: Path, args, limit: int = 100) -> tuple[float, float]:
    """(loading+preprocessing items/s with the loader workers, model items/s on random batches)."""
    from medtl.models.trained import load_trained_run
    from medtl.predict.engine import default_workers
    from medtl.predict.items import read_inputs
    from medtl.predict.loading import ItemDataset, collate_items, quiet_worker

    trained = load_trained_run(run)
    inputs = read_inputs(export, "classification", progress=False)
    items = inputs.items[:limit]
    workers = default_workers() if args.workers is None else args.workers
    loader = torch.utils.data.DataLoader(ItemDataset(items, trained.config, False), batch_size=16,
                                         num_workers=workers, collate_fn=collate_items, worker_init_fn=quiet_worker,
                                         prefetch_factor=2 if workers else None)
    start = time.perf_counter()
    count = sum(len(batch) for batch in loader)
    loading = count / (time.perf_counter() - start)
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    models = trained.build_models(device)
    batch = torch.randn(16, 1, args.image_size, args.image_size, device=device)
    with torch.no_grad():
        [m(batch) for m in models]  # warm-up
        start = time.perf_counter()
        for _ in range(max(1, limit // 16)):
            torch.stack([torch.softmax(m(batch), 1) for m in models]).mean(0).cpu()
    model = 16 * max(1, limit // 16) / (time.perf_counter() - start)
    return loading, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--pixels", type=int, default=512, help="rows = columns of each synthetic radiograph")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-onnx", action="store_true", help="no onnxruntime reference (needs the export extra)")
    args = parser.parse_args()
    os.environ.setdefault("MEDTL_SALT", "benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = write_run(tmp / "run", args.folds, args.backbone, args.image_size)
        print(f"model: {args.backbone} 2D {args.image_size}px, ensemble of {args.folds}; device {args.device}; "
              f"{os.cpu_count()} cores; radiographs {args.pixels}x{args.pixels}")
        results = []
        for size in sorted(args.sizes):
            export = write_export(tmp / f"export{size}", size, args.pixels)
            result = run_predict(run, export, tmp / f"out{size}", args)
            results.append((size, export, result))
            print(f"{size:>5} series: {result['seconds']:7.2f} s, {result['predicted'] / result['seconds']:6.1f} "
                  f"series/s, peak memory {result['peak_mb']:7.0f} MB")
        first, last = results[0][2], results[-1][2]
        print(f"memory ratio {results[-1][0]}/{results[0][0]} series: {last['peak_mb'] / first['peak_mb']:.2f} "
              f"(1.00 = flat)" + ("" if last["peak_is_new"] else " (upper bound: the larger run did not set a new "
                                                                   "peak)"))
        bare = bare_rate(run, results[-1][1], args)
        medtl_rate = last["predicted"] / last["seconds"]
        # the difference of two sizes cancels the fixed start-up (imports, model loading, scan of few files)
        steady = (last["predicted"] - first["predicted"]) / (last["seconds"] - first["seconds"])
        print(f"bare loop (read, resize, ensemble; no scan, outputs or workers): {bare:.1f} series/s; "
              f"medtl/bare = {medtl_rate / bare:.2f} end to end, {steady / bare:.2f} steady state "
              f"({steady:.1f} series/s without start-up)")
        if not args.skip_onnx:
            exported = onnx_rate(run, results[-1][1], args, tmp)
            print(f"the same loop on the exported ONNX networks (onnxruntime): {exported:.1f} series/s; "
                  f"medtl/onnxruntime = {medtl_rate / exported:.2f} end to end, {steady / exported:.2f} steady state")
        loading, model = bottleneck(run, results[-1][1], args)
        verdict = "loading" if loading < model else "the model"
        print(f"loading+preprocessing {loading:.1f} items/s vs models {model:.1f} items/s: bottleneck is {verdict}")


if __name__ == "__main__":
    main()

"""``medtl cv`` wall time on a 5,000-image 2D set against a bare PyTorch script doing the same work.

The set is MedMNIST-like: ``--n`` grayscale PNGs of ``--size`` pixels (a faint disc on
class 1), two images per patient. Both sides, each in a fresh process (imports counted):

- bare: read every PNG with SimpleITK (the library medtl reads PNG with), scale it, make
  ``--folds`` patient-grouped stratified folds (scikit-learn), and per fold train the same
  network (``medtl.models.create_model``, ResNet-18 adapted to one channel) for
  ``--epochs`` epochs with AdamW at the same batch size, then score the held-out fold (AUC);
- medtl: ``medtl cv`` with the same network, epochs, batch size and folds, augmentation off
  (the bare side has none) and everything else at its defaults (patient bootstrap CIs, the
  report, per-epoch checkpoints, the leak and duplicate checks), first with an empty
  ``MEDTL_HOME`` (cold: every image decoded and prepared into the shared cache) and then as a
  second run into a new ``--out`` folder (warm: the prepared cases come from the cache).

Ratio = bare seconds / medtl seconds (1.0 = no overhead; target >= 0.9 warm). The warm run and
the bare script alternate ``--repeats`` times (after one bare run and the cold run), and every
time is printed. On a shared machine the speed drifts by 10-30% within minutes, so two
figures are given: each warm run against the mean of the bare runs just before and just after
it (a drift between them cancels; the median of these paired ratios is the headline), and the
best of each side (as ``train_overhead.py`` compares).

Run: python benchmarks/end_to_end.py [--n 5000] [--size 28] [--epochs 2] [--folds 3] [--batch 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_set(root: Path, n: int, size: int) -> Path:
    """``n`` PNGs with a faint disc on half of them, two per patient; returns the manifest."""
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    rows = []
    for index in range(n):
        label = int(rng.random() < 0.5)
        image = rng.normal(100, 25, (size, size))
        if label:
            cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
            image += 40 * (((yy - cy) ** 2 + (xx - cx) ** 2) < (size / 7) ** 2)
        name = f"images/img{index:05d}.png"
        sitk.WriteImage(sitk.GetImageFromArray(np.clip(image, 0, 255).astype(np.uint8)), str(root / name))
        rows.append({"image": name, "label": label, "patient_id": f"P{index // 2:05d}"})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "label", "patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


def write_config(path: Path, manifest: Path, args) -> Path:
    path.write_text(f"""task: classification
data:
  manifest: {manifest}
  dims: 2
  image_size: [{args.size}, {args.size}]
  augment: {{enabled: false}}
model: {{backbone: {args.backbone}, pretrained: none}}
train: {{epochs: {args.epochs}, batch_size: {args.batch}, lr: 0.001, seed: 0}}
cv: {{folds: {args.folds}}}
compare: []
""")
    return path


def bare(manifest: Path, args) -> dict:
    """The bare script: the same reads, folds, network, epochs and scoring, nothing else."""
    import SimpleITK as sitk
    import torch
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    from medtl.models import create_model

    with open(manifest) as f:
        rows = list(csv.DictReader(f))
    images = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(manifest.parent / r["image"]))) for r in rows])
    images = images.astype(np.float32)[:, None]
    images = (images - images.mean(axis=(2, 3), keepdims=True)) / (images.std(axis=(2, 3), keepdims=True) + 1e-6)
    x, y = torch.from_numpy(images), torch.tensor([int(r["label"]) for r in rows])
    groups = [r["patient_id"] for r in rows]
    aucs = []
    for train, val in StratifiedGroupKFold(args.folds, shuffle=True, random_state=0).split(images, y.numpy(), groups):
        torch.manual_seed(0)
        model = create_model(args.backbone, dims=2, num_classes=2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[train], y[train]),
                                             batch_size=args.batch, shuffle=True)
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(args.epochs):
            model.train()
            for batch, target in loader:
                loss = loss_fn(model(batch), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            scores = torch.cat([model(x[val][i:i + 256]).softmax(1)[:, 1] for i in range(0, len(val), 256)])
        aucs.append(roc_auc_score(y[val].numpy(), scores.numpy()))
    return {"auc": float(np.mean(aucs))}


def timed_child(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs alternated with bare runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "bare":
        print(json.dumps(bare(args.manifest, args)))
        return

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        manifest = write_set(tmp / "data", args.n, args.size)
        print(f"wrote {args.n} PNGs of {args.size}x{args.size} in {time.perf_counter() - start:.0f} s; "
              f"{args.backbone}, {args.folds} folds x {args.epochs} epochs, batch {args.batch}, "
              f"{torch.get_num_threads()} threads", flush=True)
        config = write_config(tmp / "config.yaml", manifest, args)
        env = {**os.environ, "MEDTL_HOME": str(tmp / "home"), "MEDTL_SALT": "benchmark"}
        passed = [f"--{k}={getattr(args, k)}" for k in ("n", "size", "epochs", "folds", "batch", "backbone")]
        bare_command = [sys.executable, __file__, *passed, "--child=bare", f"--manifest={manifest}"]
        bare_times = [timed_child(bare_command, env)]
        medtl = [sys.executable, "-m", "medtl", "cv", str(config), "--quiet", "--out"]
        cold = timed_child(medtl + [str(tmp / "run1")], env)
        warm_times = []
        for repeat in range(args.repeats):
            warm_times.append(timed_child(medtl + [str(tmp / f"run{repeat + 2}")], env))
            bare_times.append(timed_child(bare_command, env))
        bare_s, warm = min(bare_times), min(warm_times)
        print("in order: bare " + f"{bare_times[0]:.1f} s, cold medtl {cold:.1f} s, "
              + ", ".join(f"warm medtl {w:.1f} s, bare {b:.1f} s" for w, b in zip(warm_times, bare_times[1:])))
        paired = [(bare_times[i] + bare_times[i + 1]) / 2 / w for i, w in enumerate(warm_times)]
        auc = json.loads((tmp / "run1" / "metrics.json").read_text())["summary"]["auc"]["mean"]
        print(f"bare PyTorch script (best):     {bare_s:7.1f} s")
        print(f"medtl cv, first run (cold):     {cold:7.1f} s   ratio bare/medtl = {bare_s / cold:.2f} "
              f"(against the bare run before it: {bare_times[0] / cold:.2f})")
        print(f"medtl cv, second run (warm):    {warm:7.1f} s   ratio bare/medtl: each warm run against the bare runs "
              f"around it {', '.join(f'{r:.2f}' for r in paired)}, median {float(np.median(paired)):.2f}; best of each "
              f"{bare_s / warm:.2f} (target >= 0.9); AUC {auc:.3f}")


if __name__ == "__main__":
    main()

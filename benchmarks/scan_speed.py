"""``medtl scan`` files/s against dcm2niix on the same trees, measured in the same run.

Trees:
1. a generated export of ``--files`` files (default 20,000): CT series (120 slices) and MR
   series (48 slices) of ``--size``-pixel images from several patients, plus ~2% junk
   (text files, PNGs, a truncated DICOM, an empty file), opaque nested folder names;
2. the same generator at a tenth of the size (``--files / 10``) for the memory check
   (peak RSS of ``medtl scan`` at 20k files vs 2k files, target <= 1.2x);
3. ``sample_data/scan_demo`` (the messy demo export).

dcm2niix converts (decodes every image and writes NIfTI + JSON) where ``medtl scan`` only
inventories headers, so files/s of medtl >= files/s of dcm2niix is the bar. Each tool runs
in its own process (``medtl scan`` as a user runs it, with ``--workers`` = the machine's
cores), page cache warmed by one untimed pass of each; the best of ``--repeats`` is kept.
Without dcm2niix (``apt-get install dcm2niix`` or ``pip install dcm2niix``) only medtl's
figures are printed.

Run: python benchmarks/scan_speed.py [--files 20000] [--size 128] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_tree(root: Path, n_files: int, size: int) -> int:
    """A mixed CT/MR export of about ``n_files`` files; returns the number of files written."""
    import pydicom

    from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series

    rng = np.random.default_rng(0)
    junk = max(4, n_files // 50)
    written, index = 0, 0
    while written < n_files - junk:
        modality, slices = ("CT", 120) if index % 3 else ("MR", 48)
        slices = min(slices, n_files - junk - written)
        patient = f"BENCH{index // 4:05d}"
        spec = SeriesSpec(stored=phantom_volume((slices, size, size), seed=index % 7), patient_id=patient,
                          seed=index, series_number=index % 4 + 1, modality=modality,
                          intercept=-1024.0 if modality == "CT" else 0.0)
        folder = root / f"{rng.integers(16 ** 6):06x}" / f"S{index:05d}"
        write_series(folder, spec)
        written += slices
        index += 1
    for k in range(junk):
        folder = root / "misc"
        folder.mkdir(parents=True, exist_ok=True)
        kind = k % 4
        if kind == 0:
            (folder / f"notes_{k}.txt").write_text("exported by PACS\n")
        elif kind == 1:
            (folder / f"thumb_{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
        elif kind == 2:
            (folder / f"empty_{k}").write_bytes(b"")
        else:  # a DICOM cut short in its pixel data
            source = next(root.glob("*/S00000/*"))
            data = source.read_bytes()
            (folder / f"cut_{k}.dcm").write_bytes(data[: len(data) - 500])
    del pydicom
    return sum(len(files) for _, _, files in os.walk(root))


def run_medtl(tree: Path, out: Path) -> dict:
    """``medtl scan`` in a child process: wall seconds and the child's peak RSS (main process + workers)."""
    shutil.rmtree(out, ignore_errors=True)
    code = ("import json, resource, sys, time\n"
            "from medtl.cli import main\n"
            "start = time.perf_counter()\n"
            "try:\n"
            "    main(['scan', sys.argv[1], '--out', sys.argv[2], '--quiet'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "seconds = time.perf_counter() - start\n"
            "own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "print(json.dumps({'seconds': seconds, 'peak_mib': max(own, children) / 1024}))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tree), str(out)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_dcm2niix(tree: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run(["dcm2niix", "-z", "n", "-o", str(out), str(tree)], capture_output=True, check=False)
    return time.perf_counter() - start


def measure(name: str, tree: Path, work: Path, repeats: int, converter: str | None) -> dict:
    files = sum(len(names) for _, _, names in os.walk(tree))
    run_medtl(tree, work / "medtl")  # warm the page cache and imports
    ours = min((run_medtl(tree, work / "medtl") for _ in range(repeats)), key=lambda r: r["seconds"])
    summary = json.loads((work / "medtl" / "scan.json").read_text())
    row = {"tree": name, "files": files, "medtl_s": ours["seconds"], "medtl_files_s": files / ours["seconds"],
           "medtl_peak_mib": ours["peak_mib"], "series": summary["series"], "skipped": summary["files_skipped"]}
    if converter:
        run_dcm2niix(tree, work / "dcm2niix")
        theirs = min(run_dcm2niix(tree, work / "dcm2niix") for _ in range(repeats))
        row.update(dcm2niix_s=theirs, dcm2niix_files_s=files / theirs, ratio=(files / ours["seconds"])
                   / (files / theirs))
    line = (f"{name}: {files:,} files, {row['series']} series, {row['skipped']} skipped; medtl scan "
            f"{row['medtl_files_s']:,.0f} files/s ({ours['seconds']:.2f} s, peak RSS {ours['peak_mib']:.0f} MiB)")
    if converter:
        line += (f"; dcm2niix {row['dcm2niix_files_s']:,.0f} files/s ({row['dcm2niix_s']:.2f} s); "
                 f"ratio medtl/dcm2niix files/s {row['ratio']:.2f} (>= 1.0: medtl faster)")
    print(line, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write the trees here and keep them (default: a temporary folder)")
    args = parser.parse_args()

    from medtl.io.parallel import default_workers

    converter = shutil.which("dcm2niix")
    print(f"{default_workers()} worker(s); dcm2niix: {converter or 'not installed (medtl figures only)'}")
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        rows = []
        for name, count in (("generated-large", args.files), ("generated-small", max(200, args.files // 10))):
            tree = base / name
            if not tree.exists():
                start = time.perf_counter()
                write_tree(tree, count, args.size)
                print(f"wrote {name} ({count:,} files) in {time.perf_counter() - start:.0f} s", flush=True)
            rows.append(measure(name, tree, Path(tmp) / f"work-{name}", args.repeats, converter))
        rows.append(measure("scan_demo", ROOT / "sample_data" / "scan_demo", Path(tmp) / "work-demo", args.repeats,
                            converter))
        growth = rows[0]["medtl_peak_mib"] / rows[1]["medtl_peak_mib"]
        print(f"memory: peak RSS at {rows[0]['files']:,} files / at {rows[1]['files']:,} files = {growth:.2f} "
              "(target <= 1.2)")


if __name__ == "__main__":
    main()

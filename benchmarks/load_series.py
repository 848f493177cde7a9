"""Series loading and scan throughput, with references measured in the same run.

1. Writes a 200-slice 512x512 CT-like series (opaque, shuffled file names) and loads
   it with medtl, SimpleITK's ImageSeriesReader and MONAI's LoadImage (pydicom
   reader); prints each median time and the ratios medtl / reference.
2. Writes an export of a few thousand small files and prints medtl scan's files/s
   with 1 worker and with all cores.

Run: python benchmarks/load_series.py [--slices 200] [--size 512] [--export-files 3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def load_medtl(folder: Path):
    from medtl.io import load_volume

    return load_volume(folder).array


def load_sitk(folder: Path):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def load_monai(folder: Path):
    from monai.transforms import LoadImage

    return np.asarray(LoadImage(reader="PydicomReader", image_only=True)(str(folder)))


def write_export(root: Path, n_files: int) -> None:
    from medtl.data.synthetic import SeriesSpec, phantom_volume, write_series

    per_series = 100
    for index in range(max(1, n_files // per_series)):
        spec = SeriesSpec(stored=phantom_volume((per_series, 32, 32), seed=index), patient_id=f"P{index:04d}",
                          seed=index)
        write_series(root / f"p{index:04d}", spec)
    for index in range(n_files % per_series):
        (root / f"junk_{index}.txt").write_text("not dicom")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--export-files", type=int, default=3000)
    args = parser.parse_args()

    from medtl.data.synthetic import SeriesSpec, phantom_volume, write_series
    from medtl.io.parallel import default_workers
    from medtl.io.scan import scan_export

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "series"
        spec = SeriesSpec(stored=phantom_volume((args.slices, args.size, args.size)), spacing=(1.0, 0.7, 0.7))
        write_series(folder, spec, instance_numbers="shuffled")
        readers = {"medtl": load_medtl, "SimpleITK": load_sitk, "MONAI LoadImage": load_monai}
        results = {}
        for name, fn in readers.items():
            fn(folder)  # warm the page cache and imports
            results[name], array = timed(lambda: fn(folder), args.repeats)
            print(f"{name:>16}: {results[name]:.3f} s for {args.slices}x{args.size}x{args.size} "
                  f"(median of {args.repeats}), shape {tuple(np.shape(array))}")
        for name in ("SimpleITK", "MONAI LoadImage"):
            print(f"ratio medtl / {name}: {results['medtl'] / results[name]:.2f}  (<= 1.0 means medtl is faster)")

        export = Path(tmp) / "export"
        write_export(export, args.export_files)
        n = sum(len(files) for _, _, files in os.walk(export))
        for workers in sorted({1, default_workers()}):
            seconds, result = timed(lambda: scan_export(export, workers=workers, progress=False), 1)
            print(f"scan, {workers} worker(s): {n} files in {seconds:.2f} s = {n / seconds:,.0f} files/s "
                  f"({len(result.series_rows)} series)")


if __name__ == "__main__":
    main()

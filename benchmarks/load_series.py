"""Series loading and scan throughput, with references measured in the same run.

1. Writes a 200-slice 512x512 CT-like series (opaque, shuffled file names) and loads
   it with medtl, SimpleITK's ImageSeriesReader and MONAI's LoadImage (pydicom
   reader); prints each median time and the ratios medtl / reference.
2. Writes an export of a few thousand small files and prints medtl scan's files/s
   with 1 worker and with all cores.
3. Real scanner MR: a series of Siemens mosaics (nibabel's shipped DWI header, 48 slices
   of 128x128 each, with synthetic pixels) loaded by medtl vs nibabel's MosaicWrapper,
   and a classic DTI series (volumes sharing positions, split by b-value and direction)
   loaded with ``medtl.load_volumes`` vs a bare pydicom read of the same files.

Run: python benchmarks/load_series.py [--slices 200] [--size 512] [--export-files 3000] [--mosaics 20]
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
    from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series

    per_series = 100
    for index in range(max(1, n_files // per_series)):
        spec = SeriesSpec(stored=phantom_volume((per_series, 32, 32), seed=index), patient_id=f"P{index:04d}",
                          seed=index)
        write_series(root / f"p{index:04d}", spec)
    for index in range(n_files % per_series):
        (root / f"junk_{index}.txt").write_text("not dicom")


def write_mosaics(folder: Path, count: int) -> list[Path]:
    import gzip
    import io

    import nibabel
    import pydicom

    source = Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / "siemens_dwi_1000.dcm.gz"
    template = pydicom.dcmread(io.BytesIO(gzip.open(source).read()))
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):  # an fMRI-like run: one mosaic per time point
        ds = template.copy()
        ds.SOPInstanceUID, ds.AcquisitionNumber, ds.InstanceNumber = pydicom.uid.generate_uid(), index + 1, index + 1
        ds.PixelData = rng.integers(0, 4095, (ds.Rows, ds.Columns), dtype=np.uint16).tobytes()
        paths.append(folder / f"mosaic_{index:03d}.dcm")
        ds.save_as(paths[-1])
    return paths


def write_dti(folder: Path, volumes: int, slices: int, size: int) -> list[Path]:
    import pydicom

    from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series

    paths = []
    for volume in range(volumes):
        direction = [float(v) for v in np.eye(3)[volume % 3]] if volume else [0.0, 0.0, 0.0]
        spec = SeriesSpec(stored=phantom_volume((slices, size, size), seed=volume), seed=3)

        def edit(ds, index, volume=volume, direction=direction):
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.add_new(0x00189087, "FD", 0.0 if volume == 0 else 1000.0)
            ds.add_new(0x00189089, "FD", direction)
            ds.InstanceNumber = volume * slices + index + 1

        paths += write_series(folder, spec, edit=edit)
    return paths


def bench_scanner_mr(tmp: Path, mosaics: int, repeats: int) -> None:
    import warnings

    import pydicom
    from nibabel.nicom import dicomwrappers

    from medtl.io import load_volume, load_volumes

    paths = write_mosaics(tmp / "mosaics", mosaics)

    def medtl_mosaics():
        return [load_volume(p).array for p in paths]

    def nibabel_mosaics():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [dicomwrappers.wrapper_from_data(pydicom.dcmread(p)).get_data() for p in paths]

    ours, _ = timed(medtl_mosaics, repeats)
    theirs, _ = timed(nibabel_mosaics, repeats)
    print(f"{mosaics} Siemens mosaics (48x128x128 each): medtl {ours:.3f} s, nibabel MosaicWrapper {theirs:.3f} s, "
          f"ratio {ours / theirs:.2f}")
    dti = tmp / "dti"
    files = write_dti(dti, volumes=7, slices=40, size=128)
    ours, result = timed(lambda: load_volumes(dti), repeats)
    bare, _ = timed(lambda: [pydicom.dcmread(p).pixel_array for p in files], repeats)
    print(f"classic DTI, 7 volumes x 40 slices of 128x128 ({len(files)} files): medtl load_volumes {ours:.3f} s "
          f"({len(result)} volumes), bare pydicom read {bare:.3f} s, ratio {ours / bare:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--export-files", type=int, default=3000)
    parser.add_argument("--mosaics", type=int, default=20)
    args = parser.parse_args()

    from medtl.io.parallel import default_workers
    from medtl.io.scan import scan_export
    from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series

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
        bench_scanner_mr(Path(tmp), args.mosaics, args.repeats)


if __name__ == "__main__":
    main()

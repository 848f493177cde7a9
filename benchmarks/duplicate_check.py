"""The cross-patient near-duplicate check on many rows: time and peak memory against the dHash pass alone.

Two manifests of ``--rows`` cases: every row the same image (the worst case of the old
pair list: 7.5 GB and MemoryError at 50,000 rows), and every row a different image. The
reference is the dHash computation alone (what the check cannot avoid), measured in the
same run; the ratio says what grouping and counting add on top.

Run: python benchmarks/duplicate_check.py [--rows 50000] [--size 32]
"""

from __future__ import annotations

import argparse
import resource
import time
from types import SimpleNamespace

import numpy as np


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from medtl.data.duplicates import cross_patient_duplicates, difference_hash

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    one = rng.random((1, args.size, args.size)).astype(np.float32)
    same = [SimpleNamespace(case_id=f"c{i}", group_key=f"p{i}", image=one) for i in range(args.rows)]
    different = [SimpleNamespace(case_id=f"d{i}", group_key=f"p{i}",
                                 image=rng.random((1, args.size, args.size)).astype(np.float32))
                 for i in range(args.rows)]
    start = time.perf_counter()
    for case in same:
        difference_hash(case.image)
    reference = time.perf_counter() - start
    print(f"rows {args.rows}, {args.size} px; peak RSS before the checks {peak_mb():.0f} MB")
    for name, cases in (("one image in every row", same), ("every row different", different)):
        start = time.perf_counter()
        found = cross_patient_duplicates(cases)
        seconds = time.perf_counter() - start
        print(f"{name}: {seconds:.1f} s ({seconds / reference:.2f}x the dHash pass alone, {reference:.1f} s), "
              f"{found.total} cross-patient pairs counted, {len(found.pairs)} listed, peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()

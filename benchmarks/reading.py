"""Reading a large log: wall time and peak memory of turning a CSV into a Dataset, against the file's size.

    python benchmarks/reading.py --rows 10000000 --out /tmp/big.csv

Writes a SYNTHETIC log (random users, items and times, plus a 100-character text column that no reader
role maps, as real exports carry) unless the file already exists, then runs ``read`` and
``Dataset.from_raw`` in a fresh process so that its peak resident memory is this step's alone.
Readers scan the file lazily and ``from_raw`` collects only the encoded columns with polars' streaming
engine, so the peak should stay below the size of the file.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl


def write_synthetic_log(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    pl.DataFrame(
        {
            "user_id": rng.integers(0, rows // 50, rows),
            "item_id": rng.integers(0, rows // 200, rows),
            "timestamp": rng.integers(1_500_000_000, 1_600_000_000, rows),
            "rating": rng.integers(1, 6, rows).astype(np.float64),
        }
    ).with_columns(comment=pl.lit("x" * 100)).write_csv(path)


def measure(path: Path) -> None:
    """Runs in the child process: read and encode, then print what it cost."""
    from intentrec.data.dataset import Dataset
    from intentrec.data.readers import read

    started = time.perf_counter()
    dataset = Dataset.from_raw(read(path))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = path.stat().st_size / 1e6
    print(f"file {size_mb:,.0f} MB, {dataset.card.n_interactions:,} interactions")
    print(f"read + encode {seconds:.1f} s ({dataset.card.n_interactions / seconds:,.0f} rows/s)")
    print(f"peak RSS {peak_mb:,.0f} MB = {peak_mb / size_mb:.2f} x the file")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (kept if it exists)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.out)
        return
    if not args.out.exists():
        write_synthetic_log(args.out, args.rows)
    subprocess.run([sys.executable, __file__, "--out", str(args.out), "--measure"], check=True)


if __name__ == "__main__":
    main()

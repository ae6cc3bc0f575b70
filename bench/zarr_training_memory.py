"""Peak memory of `python -m operators train` on a zarr store of 0.2 GB against 2 GB (issue 15).

Builds a Darcy-shaped store (a, u at s x s, float32) of N samples: a few real solves, each
sample a real solve plus small seeded noise (so the chunks do not compress away), written in
whole zarr chunks with ``pde_data.storage.create_zarr`` / ``write_zarr_rows``; then trains a
small FNO for a few steps on it in a subprocess under ``/usr/bin/time -v`` and records the peak
resident memory. Flat memory means the pipeline streams the store (normalisers fitted chunk by
chunk, batches read by rows).

    python bench/zarr_training_memory.py OUT_DIR [--res 129] [--sizes 1500 15000 30000]

Measured (bench/zarr_training_memory.json, 2-core VM): peak RSS 1126 / 1640 / 1692 MiB for stores of
0.15 / 1.53 / 3.05 GiB: bounded by the 256 MiB blocks the normaliser fit reads (float64 moments),
flat once the split is larger than one block.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def build_store(path: Path, n: int, res: int, seed: int = 0) -> float:
    import pde_data
    from pde_data.storage import create_zarr, sample_row_bytes, write_zarr_rows, zarr_sample_chunk

    template = pde_data.darcy.generate(seed, 8, res)
    samples = zarr_sample_chunk(sample_row_bytes(template))
    create_zarr(template, path, n, samples)
    rng = np.random.default_rng(seed)
    a0, u0 = template["a"].values, template["u"].values
    block = samples * max(1, 256 // samples)
    for start in range(0, n, block):
        m = min(block, n - start)
        idx = np.arange(start, start + m) % len(a0)
        noise = rng.standard_normal((m, *a0.shape[1:]), dtype=np.float32)
        write_zarr_rows(path, {"a": a0[idx] * (1 + 0.01 * noise),
                               "u": u0[idx] * (1 + 0.01 * noise)}, start)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**30


def peak_rss_train(data: Path, out: Path) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "operators", "train", "--data", str(data),
           "--model", "fno", "--out", str(out), "--epochs", "1", "--max-steps", "20",
           "--batch-size", "16", "--n-val", "16", "--hparam", "width=8", "--hparam", "modes=8",
           "--no-progress"]
    t0 = time.time()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"peak_rss_mib": kb / 1024, "wall_s": time.time() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--res", type=int, default=129)
    p.add_argument("--sizes", type=int, nargs="+", default=[1500, 15000, 30000])
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        store = out / f"darcy{args.res}_{n}.zarr"
        gib = build_store(store, n, args.res) if not store.exists() else sum(
            f.stat().st_size for f in store.rglob("*") if f.is_file()) / 2**30
        shutil.rmtree(out / f"run_{n}", ignore_errors=True)  # a fresh run (a finished one resumes)
        row = {"n": n, "resolution": args.res, "store_gib": gib,
               **peak_rss_train(store, out / f"run_{n}")}
        print(json.dumps(row), flush=True)
        rows.append(row)
    Path(__file__).with_suffix(".json").write_text(json.dumps(
        {"machine": "2-core VM, CPU", "command": "operators train fno width 8, 20 steps, batch 16",
         "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

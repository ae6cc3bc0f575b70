"""Data at scale (issue 15 item 3): bytes a random batch reads from a zarr store, and the peak
memory of ``python -m pde_data generate`` against ``n``; writes ``bench/data_scale.json``.

1. ``batch_read``: a store of ``--store-n`` 64x64 samples (two float32 variables of random
   values, which zstd cannot shrink) saved with the chunk rule of ``pde_data.storage`` and with
   the previous rule (~4 MiB chunks, no sample cap: 256 samples at 64x64); random batches of 32
   (indices sorted, as ``FieldData`` reads them) read through ``pde_data.load``. Bytes read are
   the process's ``rchar`` of ``/proc/self/io`` (every byte a read call returned, page cache or
   not); chunks touched are counted from the indices.
2. ``generate_rss``: peak RSS (``wait4``'s ``ru_maxrss``) of ``python -m pde_data generate darcy``
   at ``--resolution`` for ``--n-small`` and ``--n-large`` samples, for this tree and (unless
   ``--skip-old``) for the files of ``git HEAD`` extracted with ``git archive`` (the code before
   streaming, when that is what HEAD holds; ``--old-rev`` names another revision).

    .venv/bin/python bench/data_scale.py [--resolution 65 --n-small 200 --n-large 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def batch_read(tmp: Path, n: int, batches: int, seed: int = 0) -> dict:
    import xarray as xr

    from pde_data import load, storage

    s = 64
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, s)
    ds = xr.Dataset({v: (("sample", "x", "y"), rng.normal(size=(n, s, s)).astype(np.float32))
                     for v in ("a", "u")}, coords={"x": grid, "y": grid},
                    attrs={"pde": "darcy", "input_vars": ["a"], "output_vars": ["u"]})
    rules = {"before (4 MiB, no sample cap)": (4 << 20, 1 << 30),
             "after (storage.zarr_sample_chunk)": (storage.ZARR_CHUNK_BYTES,
                                                   storage.ZARR_CHUNK_SAMPLES)}
    out = {}
    saved = storage.ZARR_CHUNK_BYTES, storage.ZARR_CHUNK_SAMPLES
    for label, (chunk_bytes, cap) in rules.items():
        storage.ZARR_CHUNK_BYTES, storage.ZARR_CHUNK_SAMPLES = chunk_bytes, cap
        path = tmp / f"store-{len(out)}.zarr"
        try:
            storage.save(ds, path)
        finally:
            storage.ZARR_CHUNK_BYTES, storage.ZARR_CHUNK_SAMPLES = saved
        store = load(path)
        per = store["u"].encoding["chunks"][0]
        read, touched = [], []
        for _ in range(batches):
            idx = np.sort(rng.choice(n, 32, replace=False))
            before = rchar()
            x, y = store["a"][idx].values, store["u"][idx].values
            read.append(rchar() - before)
            touched.append(2 * len(np.unique(idx // per)))
            assert x.shape == y.shape == (32, s, s)
        data = 2 * 32 * s * s * 4
        out[label] = {"samples_per_chunk": per, "chunk_MiB": per * s * s * 4 / 2**20,
                      "batch_data_MiB": data / 2**20,
                      "bytes_read_per_batch_MiB": float(np.mean(read)) / 2**20,
                      "read_over_data": float(np.mean(read)) / data,
                      "chunks_touched_per_batch": float(np.mean(touched))}
        print(label, out[label], flush=True)
    return {"n": n, "shape": [n, s, s], "variables": 2, "batch": 32, "batches": batches,
            "rules": out}


def peak_rss(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one command."""
    t = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err}")
    return usage.ru_maxrss / 1024, time.time() - t


def generate_rss(tmp: Path, resolution: int, ns: list[int], old_rev: str | None) -> dict:
    trees = {"after (streaming)": ROOT}
    if old_rev:
        old = tmp / "old"
        old.mkdir()
        archive = subprocess.run(["git", "archive", old_rev, "pde_data"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        trees[f"before ({old_rev}: whole dataset in memory)"] = old
    out = {}
    for label, tree in trees.items():
        rows = {}
        for n in ns:
            dest = tmp / f"gen-{len(out)}-{n}.zarr"
            cmd = [sys.executable, "-m", "pde_data", "generate", "darcy", "--n", str(n),
                   "--resolution", str(resolution), "--out", str(dest), "--no-progress"]
            rss, wall = peak_rss(cmd, tree)
            rows[str(n)] = {"peak_rss_MiB": round(rss, 1), "wall_s": round(wall, 1)}
            print(label, n, rows[str(n)], flush=True)
            shutil.rmtree(dest, ignore_errors=True)
        out[label] = rows
    data = {str(n): round(2 * n * resolution**2 * 4 / 2**20, 1) for n in ns}
    return {"pde": "darcy", "resolution": resolution, "chunk_size": 32,
            "dataset_MiB": data, "runs": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store-n", type=int, default=2048)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--resolution", type=int, default=65)
    ap.add_argument("--n-small", type=int, default=200)
    ap.add_argument("--n-large", type=int, default=2000)
    ap.add_argument("--old-rev", default="HEAD")
    ap.add_argument("--skip-old", action="store_true")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "data_scale.json"))
    args = ap.parse_args()
    result = {"machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.platform()} "
                         "(shared with other jobs while measured)",
              "date": time.strftime("%Y-%m-%d %H:%M")}
    with tempfile.TemporaryDirectory() as tmp:
        result["batch_read"] = batch_read(Path(tmp), args.store_n, args.batches)
        if not args.skip_generate:
            result["generate_rss"] = generate_rss(
                Path(tmp), args.resolution, [args.n_small, args.n_large],
                None if args.skip_old else args.old_rev)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

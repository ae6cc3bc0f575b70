"""One GPU check of MgNO (issue 17 items 5 and 8), ~150 s of work on one H200, one JSON summary.

1. ``bench/mgno_vs_torch.py`` on the accelerator: our MgNO (JAX) against the reference rewritten
   in torch (CUDA), Darcy-rough configuration, inference and training step at 64 and 256.
2. A short Darcy-rough run with the reference recipe: the paper's coefficient field
   (``pde_data.darcy_rough``) generated on the host cores (one process per core, sample ``i``
   from ``fold_in(key(seed), i)`` as ``python -m pde_data generate`` does, so the data equal
   the CLI's), stored as netCDF3 (xarray's scipy engine: no zarr or h5netcdf needed, and
   ``pde_data.load`` reads it), then ``python -m operators train --model mgno --recipe
   mgno-reference`` for an epoch count sized from step 1's step time to fill about
   ``--train-seconds``, then ``python -m operators evaluate --json`` on the test set.

Writes ``OUT/summary.json`` (everything), ``OUT/mgno_vs_torch_gpu.json``, ``OUT/metrics.jsonl``
(the run's metrics), ``OUT/evaluate.json`` and the logs of each command (``OUT/*.log``); the
datasets and the run folder stay in a scratch folder (``--work``, default a temporary one).

    bash bench/mgno_gpu.sh OUT                                  # the GPU check
    MGNO_GPU_TINY=1 bash bench/mgno_gpu.sh OUT                  # a CPU smoke test, ~2-4 minutes

This parent process imports neither JAX nor torch: the generator workers run JAX on the CPU,
the commands run as subprocesses on the accelerator.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _cpu_worker_init() -> None:
    """Generator workers: JAX on the CPU, one thread each (the parallelism is the processes)."""
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    sys.path.insert(0, str(ROOT))


def _solve(job):
    """Samples ``start .. stop-1`` of the plan ``(seed, n, resolution, solve_resolution)``."""
    (seed, n, resolution, solve_resolution), start, stop = job
    from pde_data import chunked, darcy_rough

    p = chunked.plan(darcy_rough, seed, n, resolution, chunk_size=max(1, stop - start),
                     solve_resolution=solve_resolution)
    return start, chunked.solve_chunk(p, start, stop)


def generate(path: Path, seed: int, n: int, resolution: int, solve_resolution: int | None,
             workers: int) -> dict:
    """Darcy-rough samples into a netCDF3 file, solved on ``workers`` processes; returns timings."""
    sys.path.insert(0, str(ROOT))
    from pde_data import chunked, darcy_rough, storage

    t = time.perf_counter()
    spec = (seed, n, resolution, solve_resolution)
    per = max(1, -(-n // (4 * workers)))  # ~4 jobs per worker: balanced, little per-job overhead
    jobs = [(spec, s, min(s + per, n)) for s in range(0, n, per)]
    with mp.get_context("spawn").Pool(workers, initializer=_cpu_worker_init) as pool:
        parts = dict(pool.imap_unordered(_solve, jobs))
    import numpy as np

    arrays = {k: np.concatenate([parts[s][k] for s in sorted(parts)]) for k in parts[0]}
    p = chunked.plan(darcy_rough, seed, n, resolution, chunk_size=per, solve_resolution=solve_resolution)
    ds = storage._prepare(p.dataset(arrays), netcdf=True)
    for key in ("input_vars", "output_vars"):  # netCDF3 attributes hold no list of strings
        ds.attrs[key] = " ".join(ds.attrs[key])
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, engine="scipy", format="NETCDF3_64BIT")
    os.replace(tmp, path)
    return {"file": path.name, "n": n, "resolution": resolution, "solve_resolution": p.params["solve_resolution"],
            "seed": seed, "workers": workers, "seconds": round(time.perf_counter() - t, 1),
            "bytes": path.stat().st_size}


def run(cmd: list[str], log: Path, timeout: float, env: dict | None = None) -> dict:
    """Run ``cmd`` with its output in ``log``; returns rc and seconds (never raises on failure)."""
    t = time.perf_counter()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT,
                                env=env, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return {"cmd": " ".join(cmd), "rc": rc, "seconds": round(time.perf_counter() - t, 1), "log": log.name}


def epochs_for(seconds: float, step_ms: float | None, steps_per_epoch: int, lo: int, hi: int) -> int:
    """Epochs that fill ``seconds`` at ``step_ms`` per step (x1.5 for validation and logging)."""
    if not step_ms:
        return lo
    return max(lo, min(hi, int(seconds / (1.5 * steps_per_epoch * step_ms / 1e3))))


def read_metrics(path: Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv=None) -> int:
    tiny = os.environ.get("MGNO_GPU_TINY", "") not in ("", "0")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for the summary and logs (created)")
    p.add_argument("--work", help="scratch folder for the datasets and the run (default: temporary)")
    p.add_argument("--grids", type=int, nargs="+", default=[32] if tiny else [64, 256])
    p.add_argument("--bench-batch", type=int, nargs="+", default=[2] if tiny else [16, 4])
    p.add_argument("--resolution", type=int, default=17 if tiny else 128)
    p.add_argument("--n-train", type=int, default=16 if tiny else 256)
    p.add_argument("--n-test", type=int, default=8 if tiny else 64)
    p.add_argument("--batch-size", type=int, default=4 if tiny else 8)
    p.add_argument("--train-seconds", type=float, default=10 if tiny else 60)
    p.add_argument("--max-epochs", type=int, default=2 if tiny else 500)
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 16))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mgno_gpu_"))
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    summary = {"what": "MgNO on one accelerator: speed against the torch reference, and a short "
                       "Darcy-rough run with the reference recipe (bench/mgno_gpu.py)",
               "host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs", "tiny": tiny,
               "args": vars(args)}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        smi = None
    summary["gpu"] = smi

    def save():
        tmp = out / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, out / "summary.json")

    # 1. speed against the torch reference on the accelerator
    # torch shares the device; the repository root on the path (a script's own folder is what a
    # plain `python bench/x.py` puts there, and opbayes need not be installed on that machine)
    env = {**os.environ, "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.45",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    bench_json = out / "mgno_vs_torch_gpu.json"
    summary["bench"] = run([py, str(HERE / "mgno_vs_torch.py"), "--grids", *map(str, args.grids),
                            "--batch", *map(str, args.bench_batch), "--rounds", "2" if tiny else "3",
                            "--iters", "2" if tiny else "5", "--device", "auto", "--out", str(bench_json)],
                           out / "bench.log", timeout=300, env=env)
    step_ms = None
    if bench_json.exists():
        rows = json.loads(bench_json.read_text())["rows"]
        summary["bench"]["rows"] = [{k: v for k, v in r.items() if k != "rounds_ms"} for r in rows]
        # the step of the largest bench grid, scaled to the run's points per batch (at least half
        # of it: small steps do not shrink linearly on a GPU)
        r = rows[-1]
        step_ms = r["ours_step_ms"] * max(0.5, (args.batch_size * args.resolution**2) / (r["batch"] * r["grid"] ** 2))
    save()

    # 2. Darcy-rough data, the reference recipe, evaluation
    train_nc, test_nc = work / "rough_train.nc", work / "rough_test.nc"
    n_val = max(1, args.n_train // 10)
    summary["generate"] = [generate(train_nc, 0, args.n_train + n_val, args.resolution, None, args.workers),
                           generate(test_nc, 1, args.n_test, args.resolution, None, args.workers)]
    save()
    if step_ms is None:  # the bench failed: a guess of one H200 step at batch 8, 128^2 (ms)
        step_ms = 25.0
    epochs = epochs_for(args.train_seconds, step_ms, -(-args.n_train // args.batch_size), 1, args.max_epochs)
    run_dir = work / "run_mgno_rough"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    summary["train"] = run([py, "-m", "operators", "train", "--data", str(train_nc), "--model", "mgno",
                            "--recipe", "mgno-reference", "--epochs", str(epochs), "--batch-size",
                            str(args.batch_size), "--n-val", str(n_val), "--n-train", str(args.n_train),
                            "--out", str(run_dir),
                            "--no-progress"], out / "train.log", timeout=600)
    summary["train"]["epochs"] = epochs
    rows = read_metrics(run_dir / "metrics.jsonl")
    if rows:
        shutil.copyfile(run_dir / "metrics.jsonl", out / "metrics.jsonl")
        summary["train"]["last_rows"] = rows[-3:]
    save()
    ev = run([py, "-m", "operators", "evaluate", "--run", str(run_dir), "--data", str(test_nc), "--json"],
             out / "evaluate.log", timeout=300)
    summary["evaluate"] = ev
    text = (out / "evaluate.log").read_text().splitlines()
    for line in reversed(text):
        if line.startswith("{"):
            try:
                summary["evaluate"]["result"] = json.loads(line)
            except json.JSONDecodeError:
                pass
            (out / "evaluate.json").write_text(line + "\n")
            break
    save()
    ok = all(summary[k]["rc"] == 0 for k in ("bench", "train", "evaluate"))
    print(json.dumps({k: summary[k] for k in ("gpu", "bench", "generate", "train", "evaluate")}, indent=1)[:6000])
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""MgNO with its own recipe and with the reference's, beside FNO and MgNO-conv: a short CPU run.

    .venv/bin/python bench/mgno_recipe.py [--resolution 32] [--n-train 500] [--epochs 6]
        [--variants mgno mgno-reference mgno-conv fno] [--json OUT]

Each variant is one ``python -m operators train`` subprocess (the command a user runs) on the
same Darcy data (``pde_data.darcy``, the FNO smooth distribution, solved on the 2x finer node
grid and subsampled): ``--n-train`` train + 10% validation (seed 0) and 100 test samples (seed
1) at ``--resolution``; then ``python -m operators evaluate --json`` of the best-validation
checkpoint on the test file. Variants:

- ``mgno``: the registry MgNO (4 layers x 24 channels) with our defaults: AdamW 5e-4, one-cycle
  per step, H1 loss, batch 8;
- ``mgno-reference``: the same model with ``--recipe mgno-reference`` (coupled-L2 Adam, one-cycle
  stepped once per epoch with beta1 cycling; the rest as ours);
- ``mgno-conv``: the resolution-convergent variant with our defaults;
- ``fno``: the registry FNO at width 16 (~0.6 M parameters, near MgNO's) with its defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "mgno": ["--model", "mgno"],
    "mgno-reference": ["--model", "mgno", "--recipe", "mgno-reference"],
    "mgno-conv": ["--model", "mgno-conv"],
    "fno": ["--model", "fno", "--hparam", "width=16"],
}


def _env() -> dict:
    env = dict(os.environ, OPBAYES_PROGRESS="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def make_data(cache: Path, resolution: int, n_train: int) -> tuple[Path, Path]:
    import pde_data

    cache.mkdir(parents=True, exist_ok=True)
    n = n_train + max(1, n_train // 10)
    solve = 2 * (resolution - 1) + 1
    train = cache / f"darcy{resolution}_train{n}.nc"
    test = cache / f"darcy{resolution}_test100.nc"
    if not train.exists():
        pde_data.save(pde_data.darcy.generate(0, n, resolution, solve_resolution=solve), train)
    if not test.exists():
        pde_data.save(pde_data.darcy.generate(1, 100, resolution, solve_resolution=solve), test)
    return train, test


def run_variant(name: str, train: Path, test: Path, epochs: int, work: Path) -> dict:
    out = work / name
    n = int(train.stem.split("train")[-1])
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "operators", "train", "--data", str(train),
                           "--out", str(out), "--epochs", str(epochs), "--n-val", str(n // 11),
                           "--no-progress", *VARIANTS[name]],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{name}: {proc.stderr[-2000:]}")
    seconds = time.perf_counter() - t0
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    proc = subprocess.run([sys.executable, "-m", "operators", "evaluate", "--run", str(out),
                           "--data", str(test), "--json"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{name} evaluate: {proc.stderr[-2000:]}")
    ev = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epoch_s = [r["seconds"] for r in rows if "loss" in r and "seconds" in r]
    return {"params": res["params"], "epochs": epochs, "best_epoch": res["best_epoch"],
            "wall_s": seconds, "median_epoch_s": sorted(epoch_s)[len(epoch_s) // 2],
            "best_val_rel_l2": res["best_val"], "test_rel_l2": ev["rel_l2"],
            "test_rel_h1": ev.get("rel_h1")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "opbayes_bench_mgno"))
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    cache = Path(args.cache)
    train, test = make_data(cache, args.resolution, args.n_train)
    work = Path(tempfile.mkdtemp(prefix="runs_", dir=cache))
    res = {"config": {"resolution": args.resolution, "n_train": args.n_train, "n_test": 100,
                      "epochs": args.epochs, "cpu_count": os.cpu_count(),
                      "loadavg_at_start": os.getloadavg()}, "runs": {}}
    for name in args.variants:
        res["runs"][name] = run_variant(name, train, test, args.epochs, work)
        print(name, json.dumps(res["runs"][name]), file=sys.stderr, flush=True)
    res["config"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        tmp = Path(args.json).with_suffix(".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

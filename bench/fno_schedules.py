"""Learning-rate schedules that follow the epoch budget: our FNO with each schedule beside
neuraloperator 2.0's FNO trained with its Darcy tutorial recipe, same data, same epochs.

    .venv/bin/python bench/fno_schedules.py [--epochs 30] [--seeds 0 1] [--json OUT]
        [--variants step cosine onecycle tutorial] [--torch-python /work/benchenv/bin/python]

Data (our generator, ``pde_data.darcy``: GRF alpha=2 tau=3 thresholded to 12 / 3, f = 1, solved
on the 31-node grid and subsampled to 16): 1000 train samples (seed 0, all used for training,
no validation split), 100 test at 16x16 (seed 1) and 50 at 32x32 (seed 2, zero-shot).

Ours: ``operators.train.train`` (what ``python -m operators train`` runs) of the registry FNO
(width 32, 12 modes, 4 layers, 2.37 M parameters at defaults) with its defaults (AdamW 1e-3,
weight decay 1e-4, batch 20, relative L2 loss, pointwise normalisers, coordinates) and the
schedule of each variant over the same number of epochs:

- ``step``: the FNO paper's x0.5 after each fifth of the run (the default before this study);
- ``cosine``: cosine from 1e-3 to 0 over the run (per step);
- ``onecycle``: the one-cycle of MgNO over the run (peak 1e-3, from peak/2 to peak/200);
- ``tutorial``: neuraloperator's tutorial recipe run by us (AdamW 8e-3, cosine to 0 over 30
  epochs stepped once per epoch, relative H1 loss, batch 32).

Theirs (a subprocess with the benchmark venv: torch 2.13 CPU + neuraloperator 2.0): the tutorial
``examples/models/plot_FNO_darcy.py`` recipe, ``FNO(n_modes=(16, 16), hidden_channels=32,
projection_channel_ratio=2)`` (grid positional embedding, channel MLP), AdamW(lr 8e-3, weight
decay 1e-4), ``CosineAnnealingLR(T_max=30)`` stepped once per epoch, ``H1Loss(d=2)`` on the
channel-wise normalised output, batch 32; the input is the coefficient mapped to {0, 1} as in
their small Darcy set. The tutorial trains 20 epochs with T_max=30; here every model trains
for ``--epochs`` and T_max = epochs (the cosine ends at the end of the run).

Both are scored by one numpy function: the relative L2 error per test sample (trapezoid
quadrature on the node grid, as ``operators.losses.rel_l2``), averaged, of the last epoch's
parameters.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TORCH_PYTHON = "/work/benchenv/bin/python"
OUR_VARIANTS = {
    "step": {"schedule": "step"},
    "cosine": {"schedule": "cosine"},
    "onecycle": {"schedule": "onecycle"},
    "tutorial": {"schedule": "cosine", "schedule_every": "epoch", "lr": 8e-3, "loss": "h1",
                 "batch_size": 32},
}


def make_data(cache: Path) -> dict:
    """The train / test files (``.nc``, for ``operators train``) and their arrays (``.npz``)."""
    import pde_data

    cache.mkdir(parents=True, exist_ok=True)
    files = {"train": (0, 1000, 16, 31), "test16": (1, 100, 16, 31), "test32": (2, 50, 32, 63)}
    out = {}
    for name, (seed, n, s, solve) in files.items():
        path = cache / f"darcy_{name}.nc"
        if not path.exists():
            pde_data.save(pde_data.darcy.generate(seed, n, s, solve_resolution=solve), path)
        ds = pde_data.load(path)
        out[name] = {"path": path, "a": ds["a"].values.astype(np.float32),
                     "u": ds["u"].values.astype(np.float32)}
    return out


def rel_l2(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over samples of the relative L2 error with trapezoid weights (node grid)."""
    n = true.shape[-1]
    w = np.ones(n)
    w[0] = w[-1] = 0.5
    w2 = np.outer(w, w)
    num = ((pred - true) ** 2 * w2).sum(axis=(-2, -1))
    den = (true**2 * w2).sum(axis=(-2, -1))
    return float(np.mean(np.sqrt(num / den)))


def ours(data: dict, variant: str, seed: int, epochs: int, work: Path) -> dict:
    from operators.run import load_run
    from operators.train import train

    out = work / f"ours_{variant}_{seed}"
    t0 = time.perf_counter()
    res = train(data["train"]["path"], "fno", out, epochs=epochs, n_val=0, seed=seed,
                progress=False, **OUR_VARIANTS[variant])
    seconds = time.perf_counter() - t0
    run = load_run(out, which="latest")
    result = {"seconds": seconds, "params": res["params"]}
    for name in ("test16", "test32"):
        pred = run.predict(data[name]["path"])["u"].values
        result[f"rel_l2_{name}"] = rel_l2(pred, data[name]["u"])
    return result


# ------------------------------------------------------------------------------------------
# the PyTorch half (run with the benchmark venv: `--torch-worker NPZ`)
# ------------------------------------------------------------------------------------------
def torch_worker(npz: str, seed: int, epochs: int) -> dict:
    import torch
    from neuralop import H1Loss
    from neuralop.models import FNO

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # two threads spin against each other on the shared 2-core VM
    with np.load(npz) as f:
        d = {k: f[k] for k in f.files}
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a[:, None]))  # (n, 1, s, s)
    lo, hi = float(d["a_train"].min()), float(d["a_train"].max())
    xtr, ytr = t((d["a_train"] - lo) / (hi - lo)), t(d["u_train"])
    ym, ys = ytr.mean(), ytr.std()  # channel-wise Gaussian normaliser of the output
    model = FNO(n_modes=(16, 16), in_channels=1, out_channels=1, hidden_channels=32,
                projection_channel_ratio=2)
    n_params = int(sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()))
    opt = torch.optim.AdamW(model.parameters(), lr=8e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    h1 = H1Loss(d=2)
    batch = 32
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(xtr)))
        for b in range(0, len(xtr), batch):
            idx = order[b:b + batch]
            opt.zero_grad(set_to_none=True)
            loss = h1(model(xtr[idx]), (ytr[idx] - ym) / ys)
            loss.backward()
            opt.step()
        sched.step()
    result = {"seconds": time.perf_counter() - t0, "params": n_params, "torch": torch.__version__}
    model.eval()
    preds = {}
    with torch.no_grad():
        for name in ("test16", "test32"):
            x = t((d[f"a_{name}"] - lo) / (hi - lo))
            preds[name] = (model(x) * ys + ym)[:, 0].numpy()
    np.savez(npz.replace(".npz", f"_pred_{seed}.npz"), **preds)
    return result


def theirs(data: dict, seed: int, epochs: int, work: Path, python: str) -> dict:
    npz = work / "arrays.npz"
    np.savez(npz, **{f"{v}_{name}": data[name][v] for name in data for v in ("a", "u")})
    proc = subprocess.run([python, __file__, "--torch-worker", str(npz), "--seed", str(seed),
                           "--epochs", str(epochs)], check=False, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(str(npz).replace(".npz", f"_pred_{seed}.npz")) as f:
        for name in ("test16", "test32"):
            result[f"rel_l2_{name}"] = rel_l2(f[name], data[name]["u"])
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--variants", nargs="+", default=[*OUR_VARIANTS, "neuraloperator"],
                   choices=[*OUR_VARIANTS, "neuraloperator"])
    p.add_argument("--torch-python", default=TORCH_PYTHON)
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "opbayes_bench_schedules"))
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--torch-worker", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.torch_worker:
        print(json.dumps(torch_worker(args.torch_worker, args.seed, args.epochs)))
        return 0
    cache = Path(args.cache)
    data = make_data(cache)
    work = Path(tempfile.mkdtemp(prefix="runs_", dir=cache))
    results: dict = {"config": {"epochs": args.epochs, "seeds": args.seeds, "n_train": 1000,
                                "n_test16": 100, "n_test32": 50, "cpu_count": os.cpu_count(),
                                "loadavg_at_start": os.getloadavg()}, "runs": {}}
    for variant in args.variants:
        rows = []
        for seed in args.seeds:
            row = (theirs(data, seed, args.epochs, work, args.torch_python) if variant == "neuraloperator"
                   else ours(data, variant, seed, args.epochs, work))
            print(variant, seed, json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
        results["runs"][variant] = {
            "per_seed": rows,
            **{f"mean_{k}": float(np.mean([r[k] for r in rows]))
               for k in ("rel_l2_test16", "rel_l2_test32", "seconds")}}
    results["config"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        tmp = Path(args.json).with_suffix(".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

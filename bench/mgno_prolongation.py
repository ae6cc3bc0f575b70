"""Periodic MgNO: zero-padded (the reference's ConvTranspose2d) against wrapped prolongation.

The MgNO reference's Navier-Stokes model smooths with circular padding but prolongs with
PyTorch's ``ConvTranspose2d``, which cannot wrap: the coarse field is zero-padded at the
boundary of a periodic domain. Our ``mgno-ns`` does the same by default
(``prolongation_padding="zeros"``); ``"wrap"`` makes the prolongation periodic too. This bench
trains the two, otherwise identical, on the same Navier-Stokes one-step data, with the
reference's recipe (``--recipe mgno-reference``: coupled-L2 Adam, one-cycle per epoch with
``pct_start`` 0.1, relative L2 loss, no normaliser, one-step pairs, output ``u + u0``) and
scores one-step and 10-step rollout errors on held-out trajectories.

Data: ``pde_data.navier_stokes`` vorticity, nu = 1e-3, FNO forcing, at 32 x 32 (solved at 64,
dt = 1e-3, snapshots t = 1..11): 60 trajectories (50 train, 10 validation) and 10 test
trajectories, 10 one-step pairs each
(the reference's T = 10, from the first snapshot). Model: ``mgno-ns`` at reduced width / depth
(CPU budget), both prolongations, seeds 0 and 1.

    .venv/bin/python bench/mgno_prolongation.py [--epochs 15 --width 16 --layers 3]

Writes ``bench/mgno_prolongation.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_data(folder: Path, resolution: int, n_train: int, n_test: int, steps: int):
    import pde_data
    from pde_data import navier_stokes as ns

    times = [float(t) for t in range(1, steps + 2)]
    paths = {}
    for name, seed, n in (("train", 0, n_train), ("test", 1, n_test)):
        path = folder / f"ns_{name}.nc"
        t0 = time.perf_counter()
        ds = ns.generate(seed, n, resolution=resolution, nu=1e-3, times=times,
                         solve_resolution=2 * resolution, dt=1e-3)
        pde_data.save(ds, path)
        print(f"{name}: {n} trajectories in {time.perf_counter() - t0:.1f} s", flush=True)
        paths[name] = path
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--n-train", type=int, default=60)
    p.add_argument("--n-test", type=int, default=10)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", default=str(HERE / "mgno_prolongation.json"))
    args = p.parse_args()

    from operators.train import train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_data(folder, args.resolution, args.n_train, args.n_test, args.steps)
        for seed in args.seeds:
            for padding in ("zeros", "wrap"):
                t0 = time.perf_counter()
                res = train(paths["train"], "mgno-ns", folder / f"run_{padding}_{seed}",
                            recipe="mgno-reference", one_step=args.steps, epochs=args.epochs,
                            batch_size=args.batch_size, n_val=10, seed=seed,
                            hparams={"width": args.width, "n_layers": args.layers,
                                     "prolongation_padding": padding},
                            tests=[paths["test"]], plot_samples=0, progress=False)
                test = res["tests"][str(paths["test"])]
                row = {"prolongation_padding": padding, "seed": seed, "params": res["params"],
                       "seconds": round(time.perf_counter() - t0, 1),
                       "best_val_one_step_rel_l2": res["best_val"],
                       "test_one_step_rel_l2": test["rel_l2"],
                       "test_rollout_rel_l2": test["rollout_rel_l2"],
                       "test_rollout_rel_l2_per_step": test["rollout_rel_l2_per_step"]}
                rows.append(row)
                print(json.dumps(row), flush=True)

    def mean(padding, key):
        vals = [r[key] for r in rows if r["prolongation_padding"] == padding]
        return sum(vals) / len(vals)

    summary = {pad: {k: mean(pad, k) for k in ("test_one_step_rel_l2", "test_rollout_rel_l2")}
               for pad in ("zeros", "wrap")}
    better = min(("zeros", "wrap"), key=lambda pad: summary[pad]["test_rollout_rel_l2"])
    out = {"what": "mgno-ns, zero-padded vs wrapped prolongation, NS nu=1e-3 one-step pairs",
           "machine": f"{platform.machine()} CPU, {platform.processor() or 'cpu'} (2-core VM, shared)",
           "settings": {k: v for k, v in vars(args).items() if k != "out"}
           | {"recipe": "mgno-reference", "nu": 1e-3, "solve_resolution": 2 * args.resolution,
              "dt": 1e-3},
           "runs": rows, "mean": summary, "better_rollout": better}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["mean"]), "better:", better)


if __name__ == "__main__":
    main()

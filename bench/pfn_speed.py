"""Speed: predict 1000 targets from 100 context points (1-D, the gp-rbf setting).

- our PFN forward pass (jitted; the shipped gp-rbf size and the paper's size: emb 512,
  4 heads, FF 1024, 6 layers, 1000 buckets), against
- an exact GP posterior solve (jitted Cholesky, pde_data.priors.gp),
- an ML-II GP fit + predict (our batched Adam on the log marginal likelihood, 3 starts x 300
  steps; and scikit-learn's GaussianProcessRegressor with L-BFGS, 2 restarts), and
- the `pfns` package's transformer (PyTorch CPU, /work/benchenv) at equal sizes, run as a
  second process (bench/pfn_speed_torch.py) because our JAX stack is not in that venv.
Median wall time of 5 runs after a warm-up (compilation excluded; reported separately).
Writes bench/pfn_speed.json and prints a markdown table.

    .venv/bin/python bench/pfn_speed.py [--threads N] [--out FILE]

``--threads``: PyTorch threads for the `pfns` half (default: the cores this process may run on,
so ``taskset -c 0`` gives both halves one core).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pde_data.priors import gp, kernels
from pfn.checkpoint import load_shipped
from pfn.evaluate import fit_ml2
from pfn.model import PFN

HERE = Path(__file__).parent
TORCH_PY = os.environ.get("PFNS_PYTHON", "/work/benchenv/bin/python")


def timed(fn, repeats=5):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times), first


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--out", default=str(HERE / "pfn_speed.json"))
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    xc = rng.uniform(0, 1, (1, 100, 1)).astype(np.float32)
    yc = np.sin(6 * xc[..., 0]).astype(np.float32)
    xt = rng.uniform(0, 1, (1, 1000, 1)).astype(np.float32)
    rows = []

    sizes = {}
    shipped, cfg, _ = load_shipped("gp-rbf")
    sizes["shipped gp-rbf"] = (shipped, (cfg["d_model"], cfg["n_heads"], cfg["n_layers"],
                                         cfg["d_ff"], cfg["n_outputs"]))
    paper = PFN(1, 1000, d_model=512, n_heads=4, n_layers=6, d_ff=1024, rngs=nnx.Rngs(0))
    sizes["paper size"] = (paper, (512, 4, 6, 1024, 1000))
    for label, (model, dims) in sizes.items():
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        fwd = jax.jit(lambda p, a, b, c, g=graphdef, r=rest: nnx.merge(g, p, r).predict(a, b, c))
        med, first = timed(lambda f=fwd, p=params: f(p, xc, yc, xt))
        n_params = sum(v.size for v in jax.tree_util.tree_leaves(params))
        rows.append({"method": f"PFN forward, ours (JAX), {label}", "params": int(n_params),
                     "seconds": med, "first_call_seconds": first})
        res = subprocess.run([TORCH_PY, str(HERE / "pfn_speed_torch.py"), *map(str, dims),
                              str(args.threads)], check=False, capture_output=True, text=True, timeout=900)
        if res.returncode == 0:
            info = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append({"method": f"PFN forward, pfns {info['pfns_version']} TableTransformer "
                                   f"(torch {info['torch']}), {label}",
                         "params": info["params"], "seconds": info["seconds_median"]})
        else:
            rows.append({"method": f"pfns transformer, {label}", "error": res.stderr[-500:]})

    kern = partial(kernels.rbf, lengthscale=0.1, outputscale=1.0)
    exact = jax.jit(lambda a, b, c: gp.gp_posterior(a, b, c, kern, 1e-4))
    med, first = timed(lambda: exact(xc, yc, xt))
    rows.append({"method": "exact GP posterior (JAX Cholesky, known hyperparameters)",
                 "seconds": med, "first_call_seconds": first})

    def ml2():
        ls, os_, nv = fit_ml2(jnp.asarray(xc), jnp.asarray(yc), "rbf")
        return gp.gp_posterior(xc, yc, xt, partial(kernels.rbf, lengthscale=ls, outputscale=os_),
                               nv)

    med, first = timed(ml2, repeats=3)
    rows.append({"method": "ML-II GP fit + predict (JAX Adam, 3 starts x 300 steps)",
                 "seconds": med, "first_call_seconds": first})

    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    def sk():
        k = ConstantKernel(1.0) * RBF(0.3) + WhiteKernel(1e-2, (1e-6, 1.0))
        m = GaussianProcessRegressor(k, n_restarts_optimizer=2, random_state=0)
        return m.fit(xc[0], yc[0]).predict(xt[0], return_std=True)[0]

    med, first = timed(sk, repeats=3)
    rows.append({"method": "ML-II GP fit + predict (scikit-learn, L-BFGS, 2 restarts)",
                 "seconds": med})
    Path(args.out).write_text(json.dumps({"cpu_count": os.cpu_count(), "threads": args.threads,
                                          "jax": jax.__version__, "rows": rows}, indent=1))
    print("| method | params | median seconds |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r.get('params', '')} | "
              f"{r['seconds']:.4f} |" if "seconds" in r else f"| {r['method']} | error | |")


if __name__ == "__main__":
    sys.exit(main())

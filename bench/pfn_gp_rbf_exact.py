"""The `gp-rbf` PFN against the exact GP posterior, paired per dataset (issue 14).

Datasets from the PFN's own prior (RBF kernel, lengthscale 0.1, outputscale 1, noise variance
1e-4, x uniform on [0, 1]); per-point test NLL of the network (one forward pass on the prior's
x, y) and of the exact GP predictive, computed here in float64 NumPy from the kernel formula
(independent of ``pde_data.priors.gp``, which ``python -m pfn evaluate`` uses). The gap
PFN - GP is paired (same datasets, same targets), so its standard error is that of the
per-dataset differences, smaller than either column's. ``--n-estimators 1,2`` adds the
estimator as a user calls it, ``PFNRegressor(model, n_estimators=K)`` (K = 2: the test-time
ensemble of x and its reflection 1 - x, ``pfn.ensemble``), paired the same way (``gap_est_k{K}``).

    python bench/pfn_gp_rbf_exact.py [--model gp-rbf] [--contexts 1,2,3,5,...,100]
        [--n-datasets 256] [--n-estimators 1,2] [--out bench/pfn_gp_rbf_exact.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pde_data.priors.samplers import make_prior
from pfn.checkpoint import load_any
from pfn.estimators import PFNRegressor
from pfn.riemann import RiemannDistribution


def exact_gp_nll(xc, yc, xt, yt, lengthscale, outputscale, noise_var):
    """Per-target NLL of the exact GP predictive of a noisy y, float64, for one dataset."""
    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return outputscale * np.exp(-0.5 * d2 / lengthscale**2)

    L = np.linalg.cholesky(k(xc, xc) + noise_var * np.eye(len(xc)))
    ks = k(xc, xt)
    alpha = np.linalg.solve(L.T, np.linalg.solve(L, yc))
    v = np.linalg.solve(L, ks)
    mean = ks.T @ alpha
    var = outputscale + noise_var - (v**2).sum(0)
    return 0.5 * (np.log(2 * np.pi * var) + (yt - mean) ** 2 / var)


def measure(model_name, contexts, n_datasets, n_targets, seed, ensembles=()):
    network, cfg, stats = load_any(model_name)
    prior = make_prior(cfg["prior"], **cfg.get("prior_options", {}))
    if prior.kernel != "rbf" or getattr(prior, "hyper_prior", False):
        raise ValueError(f"{model_name} was trained on {cfg['prior']}: this script needs a "
                         "fixed-hyperparameter RBF prior")
    borders = jnp.asarray(stats["borders"])
    forward = jax.jit(lambda x, y, n: (network(x, y, n), *network.y_affine(x, y, n)),
                      static_argnums=2)
    rows = []
    for n in contexts:
        key = jax.random.fold_in(jax.random.key(seed), n)
        batch = prior(key, n_datasets, n + n_targets, n)
        x, y = np.asarray(batch.x, np.float64), np.asarray(batch.y[..., 0], np.float64)
        out, shift, scale = forward(batch.x, batch.y[..., 0], n)
        shift, scale = np.asarray(shift)[:, None], np.asarray(scale)[:, None]
        yt = y[:, n:]
        pfn = (np.asarray(-RiemannDistribution(out[:, n:], borders).logpdf(
            jnp.asarray((yt - shift) / scale, jnp.float32))) + np.log(scale)).mean(1)
        gp = np.array([exact_gp_nll(x[i, :n], y[i, :n], x[i, n:], yt[i], prior.lengthscale,
                                    prior.outputscale, prior.noise_var).mean()
                       for i in range(n_datasets)])
        se = lambda v: float(v.std(ddof=1) / np.sqrt(len(v)))
        est = {}
        for k in ensembles:
            est[k] = np.array([-PFNRegressor(model=model_name, n_estimators=k).fit(
                x[i, :n], y[i, :n]).predict_distribution(x[i, n:]).logpdf(yt[i]).mean()
                for i in range(n_datasets)])
        gap = pfn - gp
        rows.append({"n": n, "n_datasets": n_datasets, "pfn_nll": float(pfn.mean()),
                     "pfn_nll_se": se(pfn), "gp_nll": float(gp.mean()), "gp_nll_se": se(gp),
                     "gap": float(gap.mean()), "gap_se": se(gap),
                     "gap_median": float(np.median(gap))})
        for k, v in est.items():
            rows[-1].update({f"est_k{k}_nll": float(v.mean()), f"gap_est_k{k}": float((v - gp).mean()),
                             f"gap_est_k{k}_se": se(v - gp)})
            if k != min(est):
                rows[-1].update({f"diff_k{k}_k{min(est)}": float((v - est[min(est)]).mean()),
                                 f"diff_k{k}_k{min(est)}_se": se(v - est[min(est)])})
        r = rows[-1]
        print(f"n={n:3d}  pfn {r['pfn_nll']:.3f}  gp {r['gp_nll']:.3f}  gap {r['gap']:.3f} +- "
              f"{r['gap_se']:.3f}" + "".join(f"  est k={k} gap {r[f'gap_est_k{k}']:.3f} +- "
                                              f"{r[f'gap_est_k{k}_se']:.3f}" for k in est),
              flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gp-rbf")
    ap.add_argument("--contexts", default="1,2,3,5,7,10,15,20,30,40,50,75,100")
    ap.add_argument("--n-datasets", type=int, default=256)
    ap.add_argument("--n-targets", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("pfn_gp_rbf_exact.json")))
    ap.add_argument("--n-estimators", default="",
                    help="also score PFNRegressor at these test-time ensemble sizes, e.g. 1,2")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        ap.error(f"{out} exists; pass --overwrite to replace it")
    ensembles = [int(v) for v in args.n_estimators.split(",") if v]
    rows = measure(args.model, [int(v) for v in args.contexts.split(",")], args.n_datasets,
                   args.n_targets, args.seed, ensembles)
    result = {"model": args.model, "date": time.strftime("%Y-%m-%d"),
              "machine": "2-core CPU VM shared with other jobs", "jax": jax.__version__,
              "n_targets": args.n_targets, "seed": args.seed, "n_estimators": ensembles,
              "rows": rows}
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The `gp-hyper` PFN against scikit-learn's maximum-likelihood (ML-II) GP, an independent
reference (issue 14): datasets drawn from the PFN's own hyper-prior (Matern-5/2, lengthscale
~ Gamma(3, 6), outputscale ~ Gamma(2, 0.15), noise 1e-4; x uniform on [0, 1]^d) at d = 1 and
d = 3, n context points, 50 targets; per-point test NLL of

- ``pfn``: the network on the prior's own x and y (features zero-padded to the network's width,
  as in training and in ``python -m pfn evaluate``);
- ``pfn_estimator``: ``pfn.PFNRegressor(model=...)`` as a user calls it (it rescales X to
  [0, 1] by the context's range and standardises y itself);
- ``pfn_estimator_k{K}`` (``--n-estimators 1,K``): the estimator with a test-time ensemble of
  K views (``n_estimators=K, random_state=i``: feature permutations and reflections x -> 1 - x,
  the prior's symmetries, ``pfn.ensemble``);
- ``pfn_estimator_range``: the estimator with the context's own min and max mapped to 0 and 1
  (its scaling before 2026-12-05; now the unbiased uniform-support estimate), for the paired
  comparison;
- ``sklearn``: ``GaussianProcessRegressor(ConstantKernel * Matern(nu=2.5) + WhiteKernel,
  n_restarts_optimizer=5)`` (isotropic lengthscale, as the prior; L-BFGS-B on the log
  marginal likelihood from the default start and 5 random ones); its predictive std includes
  the fitted white noise, so it is the predictive of a noisy y like the PFN's;
- ``oracle``: the exact GP under the hyperparameters that drew the dataset (no method can
  know them: a bound in spirit, not a baseline).

Standard errors are over datasets; ``diff_*`` are paired (same dataset) differences.

    python bench/pfn_gp_hyper_sklearn.py [--model gp-hyper] [--dims 1,3]
        [--contexts 2,5,10,15,20] [--n-datasets 100] [--out bench/pfn_gp_hyper_sklearn.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pde_data.priors.samplers import make_prior
from pfn.checkpoint import load_any
from pfn.estimators import PFNRegressor
from pfn.riemann import RiemannDistribution


def gaussian_nll(y, mean, var):
    return 0.5 * (np.log(2 * np.pi * var) + (y - mean) ** 2 / var)


def sklearn_nll(xc, yc, xt, yt, restarts, seed):
    """Per-target NLL of scikit-learn's ML-II GP (Matern-5/2 + white noise)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    from threadpoolctl import threadpool_limits

    kernel = ConstantKernel(1.0) * Matern(length_scale=0.5, nu=2.5) + WhiteKernel(1e-2)
    gpr = GaussianProcessRegressor(kernel, n_restarts_optimizer=restarts, random_state=seed)
    # one BLAS thread: on small matrices more threads only contend (7x slower on 2 busy cores)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        gpr.fit(xc, yc)
        mean, std = gpr.predict(xt, return_std=True)
    return gaussian_nll(yt, mean, np.maximum(std, 1e-12) ** 2)


class _RangeScaled(PFNRegressor):
    """The estimator with its previous x scaling: the context's min and max to 0 and 1."""

    def _fit_x_transform(self, X, kind):
        lo, hi = X.min(0), X.max(0)
        self._x_shift, self._x_scale = lo, np.where(hi > lo, hi - lo, 1.0)


def measure(model_name, dims, contexts, n_datasets, n_targets, restarts, seed, ensembles=(1,)):
    network, cfg, stats = load_any(model_name)
    borders = jnp.asarray(stats["borders"])
    width = cfg["num_features"]
    forward = jax.jit(lambda x, y, n: (network(x, y, n), *network.y_affine(x, y, n)),
                      static_argnums=2)
    rows = []
    for d in dims:
        if d > width:
            raise ValueError(f"d = {d} exceeds the model's {width} features")
        prior = make_prior(cfg["prior"], num_features=d, min_features=d,
                           **cfg.get("prior_options", {}))
        for n in contexts:
            t0 = time.perf_counter()
            key = jax.random.fold_in(jax.random.key(seed), 1000 * d + n)
            batch = prior(key, n_datasets, n + n_targets, n)
            x = np.asarray(batch.x, np.float64)
            y = np.asarray(batch.y[..., 0], np.float64)
            o_mean, o_var = (np.asarray(a)[:, n:] for a in prior.predictive(key, batch))
            ok = np.isfinite(y).all(1) & np.isfinite(o_mean).all(1) & np.isfinite(o_var).all(1)
            x, y, o_mean, o_var = x[ok], y[ok], o_mean[ok], o_var[ok]
            xp = np.pad(x, ((0, 0), (0, 0), (0, width - d))).astype(np.float32)
            out, shift, scale = forward(jnp.asarray(xp), jnp.asarray(y, jnp.float32), n)
            shift, scale = np.asarray(shift)[:, None], np.asarray(scale)[:, None]
            dist = RiemannDistribution(out[:, n:], borders)
            yt = y[:, n:]
            per = {"pfn": np.asarray(-dist.logpdf(jnp.asarray((yt - shift) / scale, jnp.float32)))
                   + np.log(scale),
                   "oracle": gaussian_nll(yt, o_mean, o_var)}
            variants = {("pfn_estimator" if k == 1 else f"pfn_estimator_k{k}"):
                        (lambda i, k=k: PFNRegressor(model=model_name, n_estimators=k,
                                                     random_state=i)) for k in ensembles}
            variants["pfn_estimator_range"] = lambda i: _RangeScaled(model=model_name, n_estimators=1)
            est, sk = {name: [] for name in variants}, []
            for i in range(len(x)):
                xc, yc, xt = x[i, :n], y[i, :n], x[i, n:]
                for name, make in variants.items():
                    reg = make(i).fit(xc, yc)
                    est[name].append(-reg.predict_distribution(xt).logpdf(yt[i]))
                sk.append(sklearn_nll(xc, yc, xt, yt[i], restarts, seed + i))
            per.update({name: np.array(v) for name, v in est.items()})
            per["sklearn"] = np.array(sk)
            per = {k: v.mean(axis=1) for k, v in per.items()}  # per dataset
            se = lambda v: float(v.std(ddof=1) / np.sqrt(len(v)))
            row = {"d": d, "n": n, "n_datasets": int(ok.sum()), "n_failed_draws": int((~ok).sum()),
                   "seconds": round(time.perf_counter() - t0, 1)}
            for k, v in per.items():
                row[f"{k}_nll"], row[f"{k}_nll_se"] = float(v.mean()), se(v)
                row[f"{k}_nll_median"] = float(np.median(v))
            for k in ("pfn", *variants):
                diff = per[k] - per["sklearn"]
                row[f"diff_{k}_sklearn"], row[f"diff_{k}_sklearn_se"] = float(diff.mean()), se(diff)
                row[f"diff_{k}_sklearn_median"] = float(np.median(diff))
                row[f"{k}_better_fraction"] = float((diff < 0).mean())
            for k in variants:  # paired against the plain estimator with the previous scaling
                if k != "pfn_estimator_range":
                    diff = per[k] - per["pfn_estimator_range"]
                    row[f"diff_{k}_range"], row[f"diff_{k}_range_se"] = float(diff.mean()), se(diff)
            if len(ensembles) > 1:  # each ensemble against the plain estimator
                for k in variants:
                    if k.startswith("pfn_estimator_k"):
                        diff = per[k] - per["pfn_estimator"]
                        row[f"diff_{k}_plain"], row[f"diff_{k}_plain_se"] = (float(diff.mean()),
                                                                              se(diff))
            rows.append(row)
            print(f"d={d} n={n:3d}  pfn {row['pfn_nll']:.3f}+-{row['pfn_nll_se']:.3f}  "
                  f"estimator {row['pfn_estimator_nll']:.3f}+-{row['pfn_estimator_nll_se']:.3f}  "
                  f"sklearn {row['sklearn_nll']:.3f}+-{row['sklearn_nll_se']:.3f}  "
                  f"oracle {row['oracle_nll']:.3f}  pfn-sk {row['diff_pfn_sklearn']:+.3f}"
                  f"+-{row['diff_pfn_sklearn_se']:.3f} (median {row['diff_pfn_sklearn_median']:+.3f},"
                  f" pfn better on {row['pfn_better_fraction']:.0%})  {row['seconds']} s",
                  flush=True)
            print("    " + "  ".join(f"{k} {row[f'{k}_nll']:.3f} (-sk {row[f'diff_{k}_sklearn']:+.3f}"
                                      f"+-{row[f'diff_{k}_sklearn_se']:.3f})" for k in variants),
                  flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gp-hyper")
    ap.add_argument("--dims", default="1,3")
    ap.add_argument("--contexts", default="2,5,10,15,20")
    ap.add_argument("--n-datasets", type=int, default=100)
    ap.add_argument("--n-targets", type=int, default=50)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("pfn_gp_hyper_sklearn.json")))
    ap.add_argument("--n-estimators", default="1",
                    help="comma-separated test-time ensemble sizes of the estimator, e.g. 1,8")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        ap.error(f"{out} exists; pass --overwrite to replace it")
    dims = [int(v) for v in args.dims.split(",")]
    contexts = [int(v) for v in args.contexts.split(",")]
    ensembles = [int(v) for v in args.n_estimators.split(",")]
    rows = measure(args.model, dims, contexts, args.n_datasets, args.n_targets, args.restarts,
                   args.seed, ensembles)
    result = {"model": args.model, "date": time.strftime("%Y-%m-%d"),
              "machine": "2-core CPU VM shared with other jobs", "jax": jax.__version__,
              "baseline": "sklearn GaussianProcessRegressor(ConstantKernel*Matern(nu=2.5)"
                          f"+WhiteKernel, n_restarts_optimizer={args.restarts})",
              "n_targets": args.n_targets, "seed": args.seed, "n_estimators": ensembles,
              "rows": rows}
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

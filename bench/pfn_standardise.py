"""A/B of per-dataset standardisation inside the PFN (``pfn.model``, ``standardise``), at equal
CPU budget: two PFNs of one architecture, trained with the same seed, steps and batches on the
``gp-hyper`` prior (1-D, Matern-5/2, outputscale ~ Gamma(2, 0.15): datasets of very different
scales), one with the option ON and one OFF, then scored on the same fresh datasets of that
prior: per-point test NLL in the units of y at n = 5 / 10 / 20 context points, with standard
errors over datasets, the paired difference ON - OFF with its own standard error, and the
ML-II GP (``pfn.evaluate.fit_ml2``) as a reference.

    .venv/bin/python bench/pfn_standardise.py --steps 400 --out /tmp/pfn_std \
        --json bench/pfn_standardise.json

The runs land in ``--out`` (re-running resumes them); the json records the configuration,
the training seconds and the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pde_data.priors import gp
from pde_data.priors.samplers import make_prior
from pfn.checkpoint import load_run
from pfn.evaluate import fit_ml2, gaussian_nll
from pfn.riemann import RiemannDistribution
from pfn.train import train

PRIOR = "gp-hyper"
PRIOR_OPTIONS = {"num_features": 1, "min_features": None}


def options(steps: int) -> dict:
    """The architecture and budget both arms share (tiny: a 2-core CPU)."""
    return {"steps": steps, "warmup": max(steps // 10, 1), "batch_size": 16, "lr": 1e-3,
            "d_model": 64, "n_heads": 4, "n_layers": 2, "d_ff": 128, "n_buckets": 200,
            "border_samples": 40_000, "max_context": 20, "n_targets": 20, "seed": 0,
            "checkpoint_every": steps, "log_every": max(steps // 10, 1),
            "loss": "expected-nll", "prior_options": dict(PRIOR_OPTIONS)}


def per_dataset_nll(model, stats, x, y, n):
    """Per-dataset mean NLL of the targets after the first ``n`` points, in the units of y."""
    out = model(x, y, n)
    shift, scale = (a[:, None] for a in model.y_affine(x, y, n))
    dist = RiemannDistribution(out[:, n:], jnp.asarray(stats["borders"]))
    nll = -dist.logpdf((y[:, n:] - shift) / scale) + jnp.log(scale)
    return np.asarray(nll.mean(axis=1))


def score(models, contexts=(5, 10, 20), n_datasets=512, n_targets=50, seed=7, chunk=128):
    prior = make_prior(PRIOR, **PRIOR_OPTIONS)
    rows = []
    for n in contexts:
        acc = {name: [] for name in (*models, "ml2_gp", "oracle")}
        for start in range(0, n_datasets, chunk):
            key = jax.random.fold_in(jax.random.key(seed), n * 100_003 + start)
            batch = prior(key, chunk, n + n_targets, n)
            x, y = batch.x, batch.y[..., 0]
            ok = np.isfinite(np.asarray(y)).all(axis=1)
            y = jnp.where(jnp.asarray(ok)[:, None], y, 0.0)
            for name, (model, stats) in models.items():
                acc[name].append(np.where(ok, per_dataset_nll(model, stats, x, y, n), np.nan))
            ls, os_, nv = fit_ml2(x[:, :n], y[:, :n], prior.kernel, prior.noise_floor)
            mean, var = gp.gp_posterior(x[:, :n], y[:, :n], x[:, n:], prior.kernel_fn(ls, os_), nv)
            acc["ml2_gp"].append(np.where(ok, np.asarray(
                gaussian_nll(y[:, n:], mean, var).mean(1)), np.nan))
            o_mean, o_var = (v[:, n:] for v in prior.predictive(key, batch))
            acc["oracle"].append(np.where(ok, np.asarray(
                gaussian_nll(y[:, n:], o_mean, o_var).mean(1)), np.nan))
        acc = {k: np.concatenate(v) for k, v in acc.items()}
        keep = np.all([np.isfinite(v) for v in acc.values()], axis=0)
        row = {"n": n, "n_datasets": int(keep.sum())}
        for k, v in acc.items():
            v = v[keep]
            row[k] = float(v.mean())
            row[k + "_se"] = float(v.std(ddof=1) / np.sqrt(len(v)))
        diff = acc["on"][keep] - acc["off"][keep]
        row["on_minus_off"] = float(diff.mean())
        row["on_minus_off_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
        rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--out", default="/tmp/pfn_standardise")
    ap.add_argument("--json", default=None)
    ap.add_argument("--n-datasets", type=int, default=512)
    args = ap.parse_args(argv)
    seconds, models = {}, {}
    for name, on in (("off", False), ("on", True)):
        run = Path(args.out) / name
        t0 = time.perf_counter()
        train(str(run), PRIOR, quiet=True, standardise=on, **options(args.steps))
        seconds[name] = round(time.perf_counter() - t0, 1)
        model, _, stats = load_run(run)
        models[name] = (model, stats)
        print(f"{name}: trained in {seconds[name]} s", flush=True)
    rows = score(models, n_datasets=args.n_datasets)
    for r in rows:
        print(f"n={r['n']:3d} off {r['off']:.3f}±{r['off_se']:.3f}  on {r['on']:.3f}±"
              f"{r['on_se']:.3f}  on-off {r['on_minus_off']:+.3f}±{r['on_minus_off_se']:.3f}  "
              f"ml2 {r['ml2_gp']:.3f}±{r['ml2_gp_se']:.3f}  oracle {r['oracle']:.3f}")
    result = {"prior": PRIOR, "prior_options": PRIOR_OPTIONS, "options": options(args.steps),
              "train_seconds": seconds, "machine": "2-core VM, shared with other jobs",
              "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()

"""PFN evaluation on fresh datasets from the model's own prior (Mueller et al. 2022, sec. 5.1).

Per-point predictive NLL and MSE of the PFN next to the exact GP posterior (fixed
hyperparameters: the Bayes-optimal predictor) or next to a GP whose hyperparameters are fitted
per dataset by maximum marginal likelihood (ML-II; hyper-prior), for several context sizes.
Classification checkpoints are scored on scikit-learn's bundled datasets instead
(``tabular_benchmark``).
"""

from __future__ import annotations

import json
import math
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pde_data.priors import gp, kernels
from pde_data.priors.samplers import make_prior
from pfn.checkpoint import load_any
from pfn.riemann import RiemannDistribution


def gaussian_nll(y, mean, var):
    return 0.5 * (jnp.log(2 * jnp.pi * var) + (y - mean) ** 2 / var)


def _unpack(theta, noise_floor, ard=False):
    """theta ``(..., L + 2)``: L log lengthscales (L = 1, or d with ``ard``), log outputscale,
    softplus^-1 of the noise above the floor."""
    ls = jnp.exp(theta[..., :-2]) if ard else jnp.exp(theta[..., 0])
    return ls, jnp.exp(theta[..., -2]), noise_floor + jax.nn.softplus(theta[..., -1])


def _neg_lml(theta, x, y, kernel, noise_floor, ard=False):
    ls, os_, nv = _unpack(theta, noise_floor, ard)
    kfn = partial(kernels.KERNELS[kernel], lengthscale=ls, outputscale=os_, ard=ard)
    return -gp.gp_log_marginal_likelihood(x, y, kfn, nv, jitter=1e-6)


@partial(jax.jit, static_argnames=("kernel", "noise_floor", "steps", "lr", "ard"))
def _ml2_adam(theta0, x, y, kernel, noise_floor, steps, lr, ard=False):
    """Adam on the summed negative log marginal likelihood (datasets are independent)."""
    opt = optax.adam(lr)

    def step(carry, _):
        theta, state = carry
        loss, g = jax.value_and_grad(
            lambda t: jnp.sum(_neg_lml(t, x, y, kernel, noise_floor, ard)))(theta)
        upd, state = opt.update(jnp.nan_to_num(g), state)
        return (theta + upd, state), loss

    (theta, _), _ = jax.lax.scan(step, (theta0, opt.init(theta0)), None, length=steps)
    return theta, _neg_lml(theta, x, y, kernel, noise_floor, ard)


def fit_ml2(x, y, kernel: str, noise_floor: float = 1e-4, steps: int = 300, lr: float = 0.05,
            inits=((0.5, 1.0, 0.1), (0.1, 1.0, 0.01), (1.0, 5.0, 0.01)), ard: bool = False):
    """Type-II maximum likelihood per dataset (batched): maximise log p(y | x, theta) over
    log lengthscale(s), log outputscale, noise = floor + softplus, from several starts, keeping
    the best. x (b, n, d), y (b, n). Returns (lengthscale, outputscale, noise_var), each (b,);
    with ``ard`` the lengthscale is (b, d), one per input dimension (every start puts the
    same value on each)."""
    best_theta, best = None, None
    n_ls = x.shape[-1] if ard else 1
    for ls0, os0, nv0 in inits:
        t0 = jnp.broadcast_to(jnp.array([math.log(ls0)] * n_ls + [
            math.log(os0), math.log(math.expm1(max(nv0 - noise_floor, 1e-6)))]),
                              (x.shape[0], n_ls + 2)).astype(jnp.float32)
        theta, val = _ml2_adam(t0, x, y, kernel, float(noise_floor), steps, lr, ard)
        val = jnp.where(jnp.isfinite(val), val, jnp.inf)
        if best is None:
            best_theta, best = theta, val
        else:
            better = val < best
            best_theta = jnp.where(better[:, None], theta, best_theta)
            best = jnp.where(better, val, best)
    return _unpack(best_theta, noise_floor, ard)


def evaluate_regression(model, cfg, stats, contexts=(2, 5, 10, 20, 50, 100), n_datasets=256,
                        n_targets=50, seed=123, chunk=64):
    """Rows of {n, pfn_nll, pfn_mse, gp_nll, gp_mse, baseline, oracle_nll, floor_nll} averaged
    over datasets/targets. ``oracle_nll``: the exact GP under the hyperparameters that drew each
    dataset (= ``gp_nll`` for a fixed-hyperparameter prior); ``floor_nll``: that Gaussian put
    on the PFN's buckets, the best its bar head can score (the bucket-width floor). A model
    that standardises y by its context (``pfn.model``) is scored in the units of y: its bar
    distribution of z = (y - shift) / scale mapped back, log-density less log scale. An ARD
    prior (``gp-hyper-ard``) gets an ARD ML-II baseline and ARD oracle."""
    prior = make_prior(cfg["prior"], **cfg.get("prior_options", {}))
    borders = jnp.asarray(stats["borders"])
    hyper = getattr(prior, "hyper_prior", False)
    baseline = "ml2-gp" if hyper else "exact-gp"
    pfn_out = jax.jit(lambda x, y, n: (model(x, y, n), *model.y_affine(x, y, n)),
                      static_argnums=2)
    rows = []
    for n in contexts:
        if n > cfg["max_context"]:
            continue
        acc = {k: [] for k in ("pfn_nll", "pfn_mse", "gp_nll", "gp_mse", "oracle_nll",
                               "floor_nll")}
        finite = []  # datasets whose prior draw failed (float32 Cholesky) are left out
        for start in range(0, n_datasets, chunk):
            b = min(chunk, n_datasets - start)
            key = jax.random.fold_in(jax.random.key(seed), n * 100_003 + start)
            batch = prior(key, b, n + n_targets, n)
            x, y = batch.x, batch.y[..., 0]
            ok = np.isfinite(np.asarray(y)).all(axis=1)
            finite.append(ok)
            y = jnp.where(jnp.asarray(ok)[:, None], y, 0.0)
            out, shift, scale = pfn_out(x, y, n)
            shift, scale = shift[:, None], scale[:, None]
            dist = RiemannDistribution(out[:, n:], borders)
            yt = y[:, n:]
            acc["pfn_nll"].append(np.asarray(-dist.logpdf((yt - shift) / scale) + jnp.log(scale)))
            acc["pfn_mse"].append(np.asarray((shift + scale * dist.mean - yt) ** 2))
            if hyper:
                ls, os_, nv = fit_ml2(x[:, :n], y[:, :n], prior.kernel, prior.noise_floor,
                                      ard=getattr(prior, "ard", False))
            else:
                ls, os_, nv = prior.hyperparameters(key, b)
            mean, var = gp.gp_posterior(x[:, :n], y[:, :n], x[:, n:], prior.kernel_fn(ls, os_), nv)
            o_mean, o_var = (v[:, n:] for v in prior.predictive(key, batch))
            acc["oracle_nll"].append(np.asarray(gaussian_nll(yt, o_mean, o_var)))
            floor = RiemannDistribution.from_gaussian((o_mean - shift) / scale,
                                                      o_var / scale**2, borders)
            acc["floor_nll"].append(np.asarray(-floor.logpdf((yt - shift) / scale)
                                               + jnp.log(scale)))
            acc["gp_nll"].append(np.asarray(gaussian_nll(yt, mean, var)))
            acc["gp_mse"].append(np.asarray((mean - yt) ** 2))
        finite = np.concatenate(finite)
        row = {"n": n, "baseline": baseline, "n_datasets": int(finite.sum()),
               "n_failed_draws": int((~finite).sum())}
        for k, v in acc.items():
            v = np.concatenate(v).mean(axis=1)[finite]  # per dataset
            row[k] = float(v.mean())
            row[k + "_se"] = float(v.std(ddof=1) / np.sqrt(len(v)))
        rows.append(row)
    return rows


def plot_rows(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for a, metric in zip(ax, ("nll", "mse")):
        a.errorbar(ns, [r[f"pfn_{metric}"] for r in rows], [r[f"pfn_{metric}_se"] for r in rows],
                   marker="o", label="PFN")
        a.errorbar(ns, [r[f"gp_{metric}"] for r in rows], [r[f"gp_{metric}_se"] for r in rows],
                   marker="s", label=rows[0]["baseline"])
        a.set_xscale("log")
        a.set_xlabel("context points n")
        a.set_ylabel(f"per-point {metric.upper()}")
        a.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- classification: scikit-learn's bundled datasets -----------------------------------------------
def _datasets(max_features=20):
    from sklearn import datasets

    out = {}
    for name, loader in [("iris", datasets.load_iris), ("wine", datasets.load_wine),
                         ("breast_cancer", datasets.load_breast_cancer),
                         ("digits", datasets.load_digits)]:
        X, y = loader(return_X_y=True)
        if X.shape[1] > max_features:
            # digits: the 20 most variable pixels (a fixed, label-free choice); others: first 20
            keep = np.argsort(-X.var(0), kind="stable")[:max_features]
            X = X[:, np.sort(keep)]
        out[name] = (X.astype(np.float64), y)
    return out


def expected_calibration_error(proba, y, n_bins=10):
    """Top-label ECE with equal-width confidence bins."""
    conf = proba.max(1)
    correct = proba.argmax(1) == y
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def tabular_benchmark(make_pfn, train_sizes=(20, 50, 100), n_splits=10, seed=0,
                      baselines=("logreg", "gpc")):
    """Accuracy, ROC AUC (one-vs-rest, macro), ECE and test NLL (log loss, probabilities
    clipped at 1e-12) over random stratified splits.
    ``make_pfn``: a maker of the PFN estimator (method ``"pfn"``), or ``{method: maker}`` to
    score several on the same splits (makers take the split index, e.g. as a random_state)."""
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pfns = dict(make_pfn) if isinstance(make_pfn, dict) else {"pfn": lambda split: make_pfn()}
    makers = {**pfns,
              "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
              "gpc": lambda: make_pipeline(StandardScaler(), GaussianProcessClassifier())}
    rows = []
    for dname, (X, y) in _datasets().items():
        for n_train in train_sizes:
            for split in range(n_splits):
                rng = np.random.default_rng(seed + 1000 * split + n_train)
                # every class present in the training rows when possible
                try:
                    Xtr, Xte, ytr, yte = train_test_split(
                        X, y, train_size=n_train, stratify=y,
                        random_state=int(rng.integers(1 << 31)))
                except ValueError:
                    Xtr, Xte, ytr, yte = train_test_split(
                        X, y, train_size=n_train, random_state=int(rng.integers(1 << 31)))
                classes = np.unique(y)
                for method in (*pfns, *baselines):
                    t0 = time.perf_counter()
                    est = (makers[method](split) if method in pfns else makers[method]()).fit(
                        Xtr, ytr)
                    proba_seen = est.predict_proba(Xte)
                    elapsed = time.perf_counter() - t0
                    seen = est.classes_ if hasattr(est, "classes_") else est[-1].classes_
                    proba = np.zeros((len(Xte), len(classes)))
                    proba[:, np.searchsorted(classes, seen)] = proba_seen
                    yi = np.searchsorted(classes, yte)
                    auc = (roc_auc_score(yi, proba[:, 1]) if len(classes) == 2 else
                           roc_auc_score(yi, proba, multi_class="ovr", labels=np.arange(len(classes))))
                    nll = -np.log(np.maximum(proba[np.arange(len(yi)), yi], 1e-12)).mean()
                    rows.append({"dataset": dname, "n_train": n_train, "split": split,
                                 "method": method, "accuracy": accuracy_score(yi, proba.argmax(1)),
                                 "roc_auc": float(auc), "ece": expected_calibration_error(proba, yi),
                                 "nll": float(nll), "seconds": elapsed})
    return rows


def summarize_tabular(rows):
    out = {}
    for r in rows:
        key = (r["dataset"], r["n_train"], r["method"])
        out.setdefault(key, []).append(r)
    table = []
    for (d, n, m), rs in sorted(out.items()):
        table.append({"dataset": d, "n_train": n, "method": m,
                      **{k: float(np.mean([r[k] for r in rs]))
                         for k in ("accuracy", "roc_auc", "ece", "nll", "seconds")}})
    return table


def _contexts(text: str) -> list[int]:
    try:
        contexts = [int(c) for c in text.split(",")]
    except ValueError:
        contexts = []
    if not contexts or min(contexts) < 1:
        raise ValueError(f"--contexts takes comma-separated positive integers, got {text!r}")
    return contexts


def main(args):
    """``python -m pfn evaluate``: score ``args.model`` and print a table (or JSON)."""
    for name in ("n_datasets", "n_targets"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got "
                             f"{getattr(args, name)}")
    contexts = _contexts(args.contexts)
    model, cfg, stats = load_any(args.model)
    if cfg["task"] == "classification":
        from pfn.estimators import LoadedPFN, PFNClassifier

        loaded = LoadedPFN(model, cfg, stats, source=str(args.model))
        rows = summarize_tabular(tabular_benchmark(lambda: PFNClassifier(model=loaded)))
        if args.json:
            print(json.dumps({"model": args.model, "rows": rows}))
        else:
            print(f"{'dataset':14s} {'n':>4s} {'method':7s} {'acc':>6s} {'auc':>6s} {'ece':>6s}")
            for r in rows:
                print(f"{r['dataset']:14s} {r['n_train']:4d} {r['method']:7s} "
                      f"{r['accuracy']:6.3f} {r['roc_auc']:6.3f} {r['ece']:6.3f}")
        return rows
    if cfg.get("prior") is None:
        raise ValueError(f"{args.model} was trained on a data file ({cfg.get('data')}), not a "
                         "prior: evaluate scores a model on fresh datasets of its own prior")
    if min(contexts) > cfg["max_context"]:
        raise ValueError(f"every --contexts size exceeds the model's max_context "
                         f"{cfg['max_context']}")
    rows = evaluate_regression(model, cfg, stats, contexts, args.n_datasets, args.n_targets,
                               args.seed)
    if args.plot:
        plot_rows(rows, args.plot, f"PFN {cfg['prior']} vs {rows[0]['baseline']}")
    if args.json:
        print(json.dumps({"model": args.model, "prior": cfg["prior"], "rows": rows}))
    else:
        print(f"prior {cfg['prior']}: PFN vs {rows[0]['baseline']} "
              f"({args.n_datasets} datasets x {args.n_targets} targets)")
        print(f"{'n':>4s} {'pfn_nll':>9s} {'gp_nll':>9s} {'diff':>7s} {'pfn_mse':>9s} "
              f"{'gp_mse':>9s} {'oracle':>9s} {'floor':>9s}")
        for r in rows:
            print(f"{r['n']:4d} {r['pfn_nll']:9.4f} {r['gp_nll']:9.4f} "
                  f"{r['pfn_nll'] - r['gp_nll']:7.4f} {r['pfn_mse']:9.4f} {r['gp_mse']:9.4f} "
                  f"{r['oracle_nll']:9.4f} {r['floor_nll']:9.4f}")
    return rows

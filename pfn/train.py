"""Prior fitting (Mueller et al. 2022, algorithm 1): minimise the NLL of held-out points of
datasets drawn fresh from the prior at every step.

The prior is sampled inside the jitted step from ``fold_in(key(seed), step)`` (no host round
trip, and a resumed run sees exactly the data it would have seen). The context size is drawn
per batch. Adam with linear warm-up and cosine decay, global-norm clipping. The batch is
sharded over every local device (data parallel, ``pde_data.sharding``), parameters
replicated. The run folder (``pde_data.runs.Run``) holds config.json, borders.npz (Riemann
bucket borders), orbax checkpoints and metrics.jsonl; re-running the command resumes.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from pde_data import sharding
from pde_data.priors.samplers import make_prior
from pde_data.runs import Run, progress
from pfn.model import PFN
from pfn.riemann import RiemannDistribution, borders_from_samples

DEFAULTS: dict[str, Any] = {
    "prior_options": {},
    "steps": 1000,
    "batch_size": 64,
    "lr": 3e-4,
    "warmup": 100,
    "clip": 1.0,
    "min_context": 1,
    "max_context": 100,
    "n_targets": 28,
    "d_model": 192,
    "n_heads": 4,
    "n_layers": 5,
    "d_ff": 384,
    "n_buckets": 1000,
    "border_samples": 200_000,
    "seed": 0,
    "checkpoint_every": 250,
    "log_every": 25,
}

# "nll": -log q(y) of the sampled target y (the paper's loss). "expected-nll": its average over
# y ~ p(y | context, generating hyperparameters), exact for GP priors (``prior.predictive``):
# the same expected loss, hence the same minimiser (the posterior predictive), without the
# variance of drawing y (Rao-Blackwellisation).
LOSSES = ("nll", "expected-nll")

# Estimator-side transforms stored in the run config (see pfn.estimators).
PRESETS: dict[str, dict[str, Any]] = {
    "gp-rbf": {"max_context": 100, "x_transform": "none", "y_transform": "none"},
    "gp-hyper": {"max_context": 100, "x_transform": "minmax", "y_transform": "standardize"},
    "tabular": {"max_context": 200, "n_targets": 56, "x_transform": "standardize",
                "y_transform": "none"},
}


def build_config(prior: str, **options) -> dict:
    """Full run configuration: defaults < prior preset < explicit options (None = unset)."""
    cfg = dict(DEFAULTS)
    cfg.update({"x_transform": "none", "y_transform": "none"})
    cfg.update(PRESETS.get(prior, {}))
    cfg.update({k: v for k, v in options.items() if v is not None})
    cfg["prior"] = prior
    p = make_prior(prior, **cfg["prior_options"])
    cfg["task"] = p.task
    cfg["num_features"] = p.num_features
    cfg["n_classes"] = p.max_classes if p.task == "classification" else 0
    cfg["n_outputs"] = cfg["n_classes"] or cfg["n_buckets"]
    if not 1 <= cfg["min_context"] <= cfg["max_context"]:
        raise ValueError(f"need 1 <= min_context <= max_context, got {cfg['min_context']}, "
                         f"{cfg['max_context']}")
    if cfg["n_targets"] < 1:
        raise ValueError(f"n_targets must be >= 1, got {cfg['n_targets']}")
    loss = cfg.get("loss", "nll")  # absent in run configs written before the option existed
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; available: {', '.join(LOSSES)}")
    if loss == "expected-nll" and not hasattr(p, "predictive"):
        raise ValueError(f"loss 'expected-nll' needs a prior with an exact predictive (the GP "
                         f"priors); {prior!r} has none")
    return cfg


def build_model(cfg: dict, seed: int | None = None) -> PFN:
    return PFN(cfg["num_features"], cfg["n_outputs"], n_classes=cfg["n_classes"],
               d_model=cfg["d_model"], n_heads=cfg["n_heads"], n_layers=cfg["n_layers"],
               d_ff=cfg["d_ff"], rngs=nnx.Rngs(cfg["seed"] if seed is None else seed))


def prior_statistics(cfg: dict) -> dict[str, np.ndarray]:
    """Bucket borders from a large prior sample of y (regression) and the median per-dataset
    std of y (the scale the estimator maps standardised targets to)."""
    if cfg["task"] != "regression":
        return {"borders": np.zeros(0, np.float32), "y_std": np.float32(1.0)}
    prior = make_prior(cfg["prior"], **cfg["prior_options"])
    n = cfg["max_context"] + cfg["n_targets"]
    b = max(1, cfg["border_samples"] // n)
    batch = jax.jit(partial(prior, batch_size=b, n_points=n, n_context=n))(
        jax.random.key(cfg["seed"] + 10_000))
    y = np.asarray(batch.y)
    return {"borders": borders_from_samples(y, cfg["n_buckets"]),
            "y_std": np.float32(np.median(y.std(axis=1)))}


def loss_fn(model: PFN, x, y, n_context, n_classes, borders, task: str, target=None):
    """Mean NLL over target points (positions >= n_context); with ``target`` = (mean, var)
    (b, n) the expected NLL under those Gaussians instead of the NLL of y.

    Datasets with a non-finite value are left out of the mean: a float32 Cholesky of a
    hyper-prior draw fails now and then (about 1 dataset in 3,000 for gp-hyper), and one NaN
    would otherwise poison the parameters.
    """
    ok = jnp.all(jnp.isfinite(y.reshape(y.shape[0], -1)), axis=1) & jnp.all(
        jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1)  # (batch,)
    if target is not None:
        ok = ok & jnp.all(jnp.isfinite(target[0]) & jnp.isfinite(target[1]), axis=1)
    x = jnp.where(ok[:, None, None], x, jnp.zeros_like(x))
    y = jnp.where(ok.reshape(-1, *([1] * (y.ndim - 1))), y, jnp.zeros_like(y))
    out = model(x, y, n_context)
    is_tgt = (jnp.arange(x.shape[1]) >= n_context)[None, :] & ok[:, None]
    if task == "regression" and target is not None:
        mean, var = (jnp.where(ok[:, None], t, 1.0) for t in target)
        nll = RiemannDistribution(out, borders).expected_nll_gaussian(mean, var)
    elif task == "regression":
        nll = -RiemannDistribution(out, borders).logpdf(y)
    else:
        valid = jnp.arange(out.shape[-1])[None, None, :] < n_classes[:, None, None]
        logp = jax.nn.log_softmax(jnp.where(valid, out, -1e9), axis=-1)
        nll = -jnp.take_along_axis(logp, y[..., None].astype(jnp.int32), axis=-1)[..., 0]
    w = jnp.broadcast_to(is_tgt, nll.shape).astype(nll.dtype)
    return jnp.sum(jnp.where(w > 0, nll, 0.0)) / jnp.maximum(jnp.sum(w), 1.0)


def make_optimizer(cfg: dict):
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg["lr"], min(cfg["warmup"], max(cfg["steps"] - 1, 1)), max(cfg["steps"], 2),
        end_value=cfg["lr"] * 0.01)
    # apply_if_finite: a step whose gradient is not finite is skipped, never applied
    tx = optax.chain(optax.clip_by_global_norm(cfg["clip"]), optax.adam(schedule))
    return optax.apply_if_finite(tx, max_consecutive_errors=20), schedule


_STEP_CACHE: dict = {}


def make_train_step(cfg: dict, graphdef, rest, tx, mesh):
    """The jitted ``step(params, opt_state, step_idx, borders)``; cached per configuration
    and mesh so a resumed run in the same process does not compile again."""
    import json

    cache_key = (json.dumps(cfg, sort_keys=True, default=str), tuple(mesh.devices.flat))
    if cache_key in _STEP_CACHE:
        return _STEP_CACHE[cache_key]
    prior = make_prior(cfg["prior"], **cfg["prior_options"])
    n_points = cfg["max_context"] + cfg["n_targets"]
    base_key = jax.random.key(cfg["seed"])
    data_sharding = sharding.batch_sharding(mesh)

    @jax.jit
    def step(params, opt_state, step_idx, borders):
        key = jax.random.fold_in(base_key, step_idx)
        k_ctx, k_data = jax.random.split(key)
        n_ctx = jax.random.randint(k_ctx, (), cfg["min_context"], cfg["max_context"] + 1)
        batch = prior(k_data, cfg["batch_size"], n_points, n_ctx)
        x = jax.lax.with_sharding_constraint(batch.x, data_sharding)
        y = jax.lax.with_sharding_constraint(batch.y, data_sharding)
        n_cls = batch.n_classes if batch.n_classes is not None else jnp.zeros(
            (cfg["batch_size"],), jnp.int32)
        target = prior.predictive(k_data, batch) if cfg.get("loss") == "expected-nll" else None

        def objective(p):
            model = nnx.merge(graphdef, p, rest)
            return loss_fn(model, x, y, n_ctx, n_cls, borders, cfg["task"], target)

        loss, grads = jax.value_and_grad(objective)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss, optax.global_norm(grads), n_ctx

    _STEP_CACHE[cache_key] = step
    return step


def train(out: str, prior: str, stop_after: int | None = None, quiet: bool = False,
          **options) -> dict:
    """Train (or resume) the PFN run in folder ``out``; returns a summary dict.

    ``stop_after``: return after that global step (simulates an interruption; the run stays
    resumable). Not part of the config, so the resumed run's config still matches.
    """
    cfg = build_config(prior, **options)
    run = Run(out)
    source = None
    if cfg.get("init_from") and run.latest_step() is None:  # before writing the config: a
        source = initial_model(cfg)  # refused source leaves no half-made run behind
    resumed = run.ensure_config(cfg)
    if resumed and (run.path / "prior_stats.npz").exists():
        stats = run.load_arrays("prior_stats")
    else:
        stats = source[1] if source else prior_statistics(cfg)
        run.save_arrays("prior_stats", stats)
    mesh = sharding.data_mesh()
    n_dev = mesh.devices.size
    if cfg["batch_size"] % n_dev:
        raise ValueError(f"batch_size {cfg['batch_size']} is not divisible by the {n_dev} "
                         "local devices")
    model = source[0] if source else build_model(cfg)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, schedule = make_optimizer(cfg)
    opt_state = tx.init(params)
    start = 0
    if run.latest_step() is not None:
        state, extra = run.restore({"params": params, "opt": opt_state})
        params, opt_state = state["params"], state["opt"]
        start = int(extra.get("step", run.latest_step()))
    params, opt_state = sharding.replicate((params, opt_state), mesh)
    step_fn = make_train_step(cfg, graphdef, rest, tx, mesh)
    borders = sharding.replicate(jnp.asarray(stats["borders"]), mesh)
    end = cfg["steps"] if stop_after is None else min(cfg["steps"], stop_after)
    bar = progress(total=cfg["steps"], desc=f"pfn {prior}", unit="step", initial=start)
    if quiet:
        bar.disable = True
    acc, t0, last_loss = [], time.time(), float("nan")
    for i in range(start, end):
        params, opt_state, loss, gnorm, n_ctx = step_fn(params, opt_state, jnp.int32(i), borders)
        acc.append(loss)
        done = i + 1
        if done % cfg["log_every"] == 0 or done == end:
            last_loss = float(np.mean(jax.device_get(acc)))
            run.log(step=done, loss=last_loss, grad_norm=float(gnorm), n_context=int(n_ctx),
                    lr=float(schedule(i)), time=time.time() - t0)
            bar.set_postfix(loss=f"{last_loss:.4f}")
            acc = []
        bar.update(1)
        if done % cfg["checkpoint_every"] == 0 or done == end:
            if not np.isfinite(float(loss)):  # never checkpoint diverged parameters
                raise FloatingPointError(
                    f"pfn {prior}: the training loss is not finite at step {done}; the last "
                    f"checkpoint (step {run.latest_step()}) is kept. Lower --lr or --clip.")
            run.save(done, {"params": params, "opt": opt_state}, {"step": done})
    bar.close()
    run.close()
    return {"run": str(run.path), "step": end, "loss": last_loss, "resumed_from": start}


# Config keys that must agree between a run and the model it starts from (``init_from``).
ARCHITECTURE = ("prior", "prior_options", "task", "num_features", "n_classes", "n_outputs",
                "d_model", "n_heads", "n_layers", "d_ff", "max_context")


def initial_model(cfg: dict):
    """(model, prior_stats) of ``cfg["init_from"]`` (a shipped name, export or run folder) to
    continue training from: same architecture and prior, and its bucket borders (the head's
    outputs mean those buckets). Fresh optimiser state and schedule."""
    from pfn.export import load_any

    model, src_cfg, stats = load_any(cfg["init_from"])
    differ = [k for k in ARCHITECTURE if src_cfg.get(k) != cfg.get(k)]
    if differ:
        detail = ", ".join(f"{k}: {src_cfg.get(k)!r} vs {cfg.get(k)!r}" for k in differ)
        raise ValueError(f"cannot start from {cfg['init_from']!r}: it is another model ({detail})")
    return model, {k: np.asarray(v) for k, v in stats.items()}


def load_run(out: str, step: int | None = None):
    """(model, config, prior_stats) from a run folder's latest (or given) checkpoint."""
    run = Run(out)
    cfg = run.read_config()
    stats = run.load_arrays("prior_stats")
    model = build_model(cfg)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, _ = make_optimizer(cfg)
    state, _ = run.restore({"params": params, "opt": tx.init(params)}, step=step)
    run.close()
    return nnx.merge(graphdef, state["params"], rest), cfg, stats

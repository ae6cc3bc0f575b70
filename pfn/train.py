"""Prior fitting (Mueller et al. 2022, algorithm 1): minimise the NLL of held-out points of
datasets drawn fresh from the prior at every step, or of tasks drawn from a user's point-set
file (``--data``).

What is PFN's own lives here: the run configuration (:func:`build_config`, checked at the
boundary), the loss (:func:`make_loss`, an engine ``LossFn`` over ``pde_data.points.PointSets``),
the optimiser (Adam with linear warm-up, cosine decay and global-norm clipping; a step with a
non-finite gradient is skipped) and the batch stream (:func:`make_batches`: the prior sampled
inside a jitted function of ``(seed, step)`` through ``pde_data.points.stream``, the context
size drawn per batch). The engine (``pde_data.runs.loop.fit``) does the rest: the jitted step,
data-parallel sharding, resume, checkpoints (never of non-finite weights), metrics, progress.

The run folder holds config.json, prior_stats.npz (Riemann bucket borders and the typical
per-dataset std of y), the engine's checkpoints and metrics.jsonl. Re-running the command
resumes; the same command with a larger ``--steps`` continues a finished run.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pde_data import sharding
from pde_data.points import PointSetData, PointSets, load_point_sets, stream
from pde_data.priors.samplers import make_prior
from pde_data.runs import Run
from pde_data.runs.loop import Loop, fit
from pfn.checkpoint import STATS, build_model, load_any
from pfn.model import NORMS, X_ENCODERS
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

# Architecture and context-size options (pfn.model; :func:`context_size_probs`): the values
# every NEW run records in its config, and LEGACY, what a config written before the options
# existed means (the first checkpoints' architecture and sampler), so those keep loading,
# resuming and predicting exactly as before. The new-run values are the PFN reference code's
# three choices, which won the equal-budget A/B of bench/pfn_arch_ab.json (gp-rbf, gp-hyper).
ARCH_DEFAULTS: dict[str, Any] = {
    "norm": "post",
    "zero_init": True,
    "context_sampler": "weighted",
    "context_power": 1.0,
    "x_encoder": "linear",
}
LEGACY: dict[str, Any] = {"norm": "pre", "zero_init": False, "context_sampler": "uniform",
                          "context_power": 1.0, "x_encoder": "linear"}
CONTEXT_SAMPLERS = ("uniform", "weighted")

# "nll": -log q(y) of the sampled target y (the paper's loss). "expected-nll": its average over
# y ~ p(y | context, generating hyperparameters), exact for GP priors (``prior.predictive``):
# the same expected loss, hence the same minimiser (the posterior predictive), without the
# variance of drawing y (Rao-Blackwellisation).
LOSSES = ("nll", "expected-nll")

# Estimator-side transforms stored in the run config (see pfn.estimators).
# The GP priors' new runs embed x with Fourier features (``x_encoder``): better at equal steps
# on gp-rbf (2 seeds) and gp-hyper (1 seed) in bench/pfn_x_encoder_ab*.json.
_GP_PRESET: dict[str, Any] = {"max_context": 100, "x_encoder": "fourier"}
PRESETS: dict[str, dict[str, Any]] = {
    "gp-rbf": {**_GP_PRESET, "x_transform": "none", "y_transform": "none"},
    "gp-hyper": {**_GP_PRESET, "x_transform": "minmax", "y_transform": "standardize"},
    "gp-hyper-ard": {**_GP_PRESET, "x_transform": "minmax", "y_transform": "standardize"},
    "tabular": {"max_context": 200, "n_targets": 56, "x_transform": "standardize",
                "y_transform": "none"},
}

# Config keys that must agree between a run and the model it starts from (``init_from``);
# a run on a data file may start from a model fitted to any prior.
ARCHITECTURE = ("prior", "prior_options", "task", "num_features", "n_classes", "n_outputs",
                "d_model", "n_heads", "n_layers", "d_ff", "max_context", "standardise", "norm",
                "x_encoder")

_POSITIVE_INT = ("steps", "batch_size", "min_context", "max_context", "n_targets", "d_model",
                 "n_heads", "n_layers", "d_ff", "n_buckets", "border_samples",
                 "checkpoint_every", "log_every")


class TrainBatch(NamedTuple):
    """One training batch: the point sets and, for the expected NLL, the exact Gaussian
    predictive ``(mean, var)``, each ``(batch, point)``, of every point's y."""

    points: PointSets
    target_mean: Any = None
    target_var: Any = None


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_options(cfg: dict) -> None:
    """Every option a positive, finite number of the right kind; ``ValueError`` naming the
    command-line flag otherwise."""
    for key in _POSITIVE_INT:
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{_flag(key)} must be a positive integer, got {v!r}")
    v = cfg["warmup"]
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
        raise ValueError(f"--warmup must be a non-negative integer, got {v!r}")
    v = cfg["seed"]
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {v!r}")
    for key in ("lr", "clip"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (
                math.isfinite(v) and v > 0):
            raise ValueError(f"{_flag(key)} must be a positive finite number, got {v!r}")
    if cfg["d_model"] % cfg["n_heads"]:
        raise ValueError(f"--d-model {cfg['d_model']} must be divisible by --n-heads "
                         f"{cfg['n_heads']} (each head gets d_model / n_heads features)")
    if cfg["min_context"] > cfg["max_context"]:
        raise ValueError(f"need --min-context <= --max-context, got {cfg['min_context']} > "
                         f"{cfg['max_context']}")
    if cfg["n_buckets"] < 2:
        raise ValueError(f"--n-buckets must be >= 2, got {cfg['n_buckets']}")
    if not isinstance(cfg["prior_options"], dict):
        raise ValueError(f"prior options must be a dict, got {cfg['prior_options']!r}")  # noqa: TRY004
    for key in ("x_transform", "y_transform"):
        allowed = ("none", "minmax", "standardize") if key == "x_transform" else (
            "none", "standardize")
        if cfg[key] not in allowed:
            raise ValueError(f"unknown {key} {cfg[key]!r}; choose from {', '.join(allowed)}")
    if cfg.get("norm", LEGACY["norm"]) not in NORMS:
        raise ValueError(f"--norm must be one of {', '.join(NORMS)}, got {cfg['norm']!r}")
    if not isinstance(cfg.get("zero_init", False), bool):
        raise ValueError(f"zero_init must be true or false, got {cfg['zero_init']!r}")  # noqa: TRY004
    if cfg.get("context_sampler", "uniform") not in CONTEXT_SAMPLERS:
        raise ValueError(f"--context-sampler must be one of {', '.join(CONTEXT_SAMPLERS)}, got "
                         f"{cfg['context_sampler']!r}")
    if cfg.get("x_encoder", LEGACY["x_encoder"]) not in X_ENCODERS:
        raise ValueError(f"--x-encoder must be one of {', '.join(X_ENCODERS)}, got "
                         f"{cfg['x_encoder']!r}")
    v = cfg.get("context_power", 1.0)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (math.isfinite(v) and v >= 0):
        raise ValueError(f"--context-power must be a finite number >= 0, got {v!r}")


def _fingerprint(data: PointSetData) -> str:
    h = hashlib.sha256()
    for a in (data.x, data.y):
        a = np.ascontiguousarray(a, np.float32)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def build_config(prior: str | None = None, data: PointSetData | None = None,
                 data_path: str | None = None, **options) -> dict:
    """Full run configuration: defaults < prior preset < explicit options (None = unset).
    Exactly one of ``prior`` (a name of ``pde_data.priors.samplers.PRIORS``) and ``data`` (a
    regression point-set dataset, ``data_path`` where it came from). Every option is checked
    here, with an error naming it."""
    if (prior is None) == (data is None):
        raise ValueError("give exactly one of --prior and --data")
    unknown = sorted(set(options) - set(DEFAULTS) - set(ARCH_DEFAULTS) - {
        "loss", "init_from", "x_transform", "y_transform", "standardise"})
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}")
    cfg = dict(DEFAULTS)
    cfg.update(ARCH_DEFAULTS)
    cfg.update({"x_transform": "none", "y_transform": "none"})
    if prior is not None:
        if not isinstance(prior, str):
            raise ValueError(f"the prior must be a name, got {prior!r}")
        cfg.update(PRESETS.get(prior, {}))
    cfg.update({k: v for k, v in options.items() if v is not None})
    # per-dataset standardisation inside the model (pfn.model): stored only when on, so the
    # configs of earlier runs (and the exact-match check of a resume) stay as they were
    if not isinstance(cfg.get("standardise", False), bool):
        raise ValueError(f"standardise must be true or false, got {cfg['standardise']!r}")  # noqa: TRY004
    if cfg.pop("standardise", False):
        cfg["standardise"] = True
    check_options(cfg)
    loss = cfg.get("loss", "nll")  # absent in run configs written before the option existed
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; available: {', '.join(LOSSES)}")
    if prior is not None:
        cfg["prior"] = prior
        p = make_prior(prior, **cfg["prior_options"])  # unknown prior / option: ValueError
        cfg["task"] = p.task
        cfg["num_features"] = p.num_features
        cfg["n_classes"] = p.max_classes if p.task == "classification" else 0
        if loss == "expected-nll" and not hasattr(p, "predictive"):
            raise ValueError(f"loss 'expected-nll' needs a prior with an exact predictive (the "
                             f"GP priors); {prior!r} has none")
    else:
        if cfg["prior_options"]:
            raise ValueError("prior options apply to --prior, not to --data")
        if loss == "expected-nll":
            raise ValueError("loss 'expected-nll' needs a GP prior (an exact predictive); a "
                             "data file has none: use --loss nll")
        if data.y_dim != 1:
            raise ValueError(f"{data.source}: a PFN regresses one output; y has {data.y_dim}")
        n_points = cfg["max_context"] + cfg["n_targets"]
        if n_points > data.n_points:
            raise ValueError(f"{data.source} has {data.n_points} points per task; --max-context "
                             f"+ --n-targets = {n_points} must not exceed it")
        cfg["prior"] = None
        cfg["data"] = str(Path(data_path).absolute()) if data_path else data.source
        cfg["data_fingerprint"] = _fingerprint(data)
        cfg["task"] = "regression"
        cfg["num_features"] = data.x_dim
        cfg["n_classes"] = 0
    cfg["n_outputs"] = cfg["n_classes"] or cfg["n_buckets"]
    if cfg["task"] == "regression" and cfg["border_samples"] < 2 * cfg["n_buckets"]:
        raise ValueError(f"--n-buckets {cfg['n_buckets']} needs at least {2 * cfg['n_buckets']} "
                         f"border samples, got {cfg['border_samples']}")
    return cfg


def prior_statistics(cfg: dict, data: PointSetData | None = None) -> dict[str, np.ndarray]:
    """Bucket borders from a large sample of y (the prior's, or the data file's) and the
    median per-dataset std of y (the scale the estimator maps standardised targets to)."""
    if cfg["task"] != "regression":
        return {"borders": np.zeros(0, np.float32), "y_std": np.float32(1.0)}
    if data is not None:
        y = np.asarray(data.y[..., 0])
        if y.size < 2 * cfg["n_buckets"]:
            raise ValueError(f"{data.source} holds {y.size} values of y; {cfg['n_buckets']} "
                             f"buckets need at least {2 * cfg['n_buckets']}: lower --n-buckets")
    else:
        prior = make_prior(cfg["prior"], **cfg["prior_options"])
        n = cfg["max_context"] + cfg["n_targets"]
        b = max(1, cfg["border_samples"] // n)
        batch = jax.jit(partial(prior, batch_size=b, n_points=n, n_context=n))(
            jax.random.key(cfg["seed"] + 10_000))
        y = np.asarray(batch.y[..., 0])
    y_std = np.float32(np.median(y.std(axis=1)))
    if cfg.get("standardise"):  # the network predicts standardised targets: their borders
        y = standardised_targets(y, cfg["min_context"], cfg["max_context"], cfg["seed"])
    return {"borders": borders_from_samples(y, cfg["n_buckets"]), "y_std": y_std}


def standardised_targets(y, min_context: int, max_context: int, seed: int) -> np.ndarray:
    """The targets a standardising PFN (``pfn.model``, ``standardise``) predicts, for its
    bucket borders: each dataset (row of ``y (datasets, points)``) gets a context size drawn
    uniformly in ``[min_context, max_context]`` as in training, and the points after that
    prefix are standardised by its statistics (``pfn.model.context_affine``)."""
    from pfn.model import context_affine

    y = np.asarray(y, np.float32)
    n = y.shape[1]
    rng = np.random.default_rng(seed + 20_000)
    n_ctx = rng.integers(min_context, min(max_context, n - 1) + 1, size=len(y))
    mask = np.arange(n)[None, :] < n_ctx[:, None]
    shift, scale = (np.asarray(a)[..., 0] for a in context_affine(jnp.asarray(y[..., None]),
                                                                   jnp.asarray(mask)))
    z = (y - shift) / scale
    return z[~mask]


def loss_fn(model, points: PointSets, borders, task: str, target=None):
    """Mean NLL over the target points of a prefix batch; with ``target = (mean, var)``, each
    ``(batch, point)``, the expected NLL under those Gaussians instead of the NLL of y.

    Datasets with a non-finite value are left out of the mean: a float32 Cholesky of a
    hyper-prior draw fails now and then (about 1 dataset in 3,000 for gp-hyper), and one NaN
    would otherwise poison the parameters.
    """
    if points.n_context is None:
        raise ValueError("a PFN trains on prefix batches (one context size per batch)")
    x, y = points.x, points.y[..., 0]
    b = x.shape[0]
    ok = jnp.all(jnp.isfinite(y.reshape(b, -1)), axis=1) & jnp.all(
        jnp.isfinite(x.reshape(b, -1)), axis=1)  # (batch,)
    if target is not None:
        ok = ok & jnp.all(jnp.isfinite(target[0]) & jnp.isfinite(target[1]), axis=1)
    x = jnp.where(ok[:, None, None], x, jnp.zeros_like(x))
    y = jnp.where(ok[:, None], y, jnp.zeros_like(y))
    out = model(x, y, points.n_context)
    is_tgt = (points.mask_target > 0) & ok[:, None]
    standardise = task == "regression" and getattr(model, "standardise", False)
    if standardise:  # the logits are those of z = (y - shift) / scale: p(y) = p_z(z) / scale
        shift, scale = (a[:, None] for a in model.y_affine(x, y, points.n_context))
    if task == "regression" and target is not None:
        mean, var = (jnp.where(ok[:, None], t, 1.0) for t in target)
        if standardise:
            mean, var = (mean - shift) / scale, var / scale**2
        nll = RiemannDistribution(out, borders).expected_nll_gaussian(mean, var)
        if standardise:
            nll = nll + jnp.log(scale)
    elif task == "regression" and standardise:
        nll = -RiemannDistribution(out, borders).logpdf((y - shift) / scale) + jnp.log(scale)
    elif task == "regression":
        nll = -RiemannDistribution(out, borders).logpdf(y)
    else:
        n_classes = points.n_classes
        if n_classes is None:
            n_classes = jnp.full((b,), out.shape[-1], jnp.int32)
        valid = jnp.arange(out.shape[-1])[None, None, :] < n_classes[:, None, None]
        logp = jax.nn.log_softmax(jnp.where(valid, out, -1e9), axis=-1)
        nll = -jnp.take_along_axis(logp, y[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return jnp.sum(jnp.where(is_tgt, nll, 0.0)) / jnp.maximum(jnp.sum(is_tgt), 1)


def make_loss(cfg: dict, borders):
    """The engine's ``loss(model, batch, key) -> (loss, aux)`` over :class:`TrainBatch`."""
    borders = jnp.asarray(borders)
    task = cfg["task"]

    def loss(model, batch: TrainBatch, key):
        target = None if batch.target_mean is None else (batch.target_mean, batch.target_var)
        value = loss_fn(model, batch.points, borders, task, target)
        return value, {"n_context": jnp.asarray(batch.points.n_context, jnp.float32)}

    return loss


def make_optimizer(cfg: dict):
    """``(tx, schedule)``: Adam, linear warm-up then cosine decay to 1% of ``lr``, clipped;
    a step whose gradient is not finite is skipped, never applied."""
    warmup = min(cfg["warmup"], max(cfg["steps"] - 1, 1))
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg["lr"], warmup, max(cfg["steps"], 2), end_value=cfg["lr"] * 0.01)
    tx = optax.chain(optax.clip_by_global_norm(cfg["clip"]), optax.adam(schedule))
    return optax.apply_if_finite(tx, max_consecutive_errors=20), schedule


def context_size_probs(min_context: int, max_context: int, sampler: str = "uniform",
                       power: float = 1.0) -> np.ndarray:
    """Exact probabilities of the context sizes ``n = min_context .. max_context`` that a
    training batch draws (float64, summing to 1).

    ``"uniform"``: each size alike. ``"weighted"``: the PFN reference code's
    ``get_weighted_single_eval_pos_sampler(max_len, min_len, p)`` (``automl/PFNs``, used by its
    GP-fitting runs) with ``max_len = max_context + 1``: ``P(n) ~ (max_context + 1 - n)^-power``,
    so the largest context is drawn most often (``power = 1``: harmonic weights, 1 : 1/2 : 1/3
    ... from the top). A batch has ``max_context + n_targets - n`` targets, fewer at large n,
    and its loss is their mean (:func:`loss_fn`, as in the reference code, where every batch
    weighs alike): the weighting gives the large contexts, hard and rarely seen otherwise,
    more of the gradient steps."""
    n = np.arange(min_context, max_context + 1, dtype=np.float64)
    if sampler == "uniform":
        w = np.ones_like(n)
    elif sampler == "weighted":
        w = (max_context + 1.0 - n) ** -float(power)
    else:
        raise ValueError(f"unknown context sampler {sampler!r}; available: "
                         f"{', '.join(CONTEXT_SAMPLERS)}")
    return w / w.sum()


def draw_context_size(cfg: dict):
    """A jit-able ``draw(key) -> int32 scalar``: one batch's context size, with the
    probabilities of :func:`context_size_probs` for ``cfg`` (uniform for a config without
    ``context_sampler``, drawn exactly as before the option existed)."""
    lo, hi = cfg["min_context"], cfg["max_context"]
    sampler = cfg.get("context_sampler", LEGACY["context_sampler"])
    if sampler == "uniform":
        return lambda key: jax.random.randint(key, (), lo, hi + 1)
    logits = jnp.log(jnp.asarray(context_size_probs(
        lo, hi, sampler, cfg.get("context_power", LEGACY["context_power"])), jnp.float32))
    return lambda key: lo + jax.random.categorical(key, logits).astype(jnp.int32)


def make_sampler(cfg: dict, data: PointSetData | None = None):
    """A jit-able ``sample(key) -> TrainBatch``: one context size per batch
    (:func:`draw_context_size`); then the prior's datasets (or the file's tasks) and, for
    the expected NLL, their exact predictive."""
    bs, n_points = cfg["batch_size"], cfg["max_context"] + cfg["n_targets"]
    draw_n = draw_context_size(cfg)
    if data is not None:
        draw = data.sampler(bs, n_points, cfg["min_context"], cfg["max_context"],
                            shared_context=True)
        if cfg.get("context_sampler", LEGACY["context_sampler"]) == "uniform":
            return lambda key: TrainBatch(draw(key))

        def sample_data(key):  # the file's random subsets, split at a weighted context size
            k_ctx, k_data = jax.random.split(key)
            points = draw(k_data)
            return TrainBatch(PointSets.prefix(points.x, points.y, draw_n(k_ctx)))

        return sample_data
    prior = make_prior(cfg["prior"], **cfg["prior_options"])
    expected = cfg.get("loss", "nll") == "expected-nll"

    def sample(key):
        k_ctx, k_data = jax.random.split(key)
        n_ctx = draw_n(k_ctx)
        points = prior(k_data, bs, n_points, n_ctx)
        if not expected:
            return TrainBatch(points)
        return TrainBatch(points, *prior.predictive(k_data, points))

    return sample


def make_batches(cfg: dict, data: PointSetData | None = None):
    """The engine's batch stream: the batch of step ``i`` a pure function of (seed, i)."""
    return stream(make_sampler(cfg, data), cfg["seed"])


def train(out: str, prior: str | None = None, stop_after: int | None = None,
          quiet: bool = False, data: str | None = None, **options) -> dict:
    """Train (or resume, or extend with a larger ``steps``) the PFN run in folder ``out`` on
    ``prior`` or on the point-set file ``data``; returns a summary dict.

    ``stop_after``: return after that global step (simulates an interruption; the run stays
    resumable). Not part of the config, so the resumed run's config still matches.
    """
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(
            stop_after, numbers.Integral) or stop_after < 0):
        raise ValueError(f"stop_after must be a non-negative integer, got {stop_after!r}")
    dataset = load_point_sets(data) if data is not None else None
    cfg = build_config(prior, data=dataset, data_path=data, **options)
    mesh = sharding.data_mesh()
    n_dev = int(mesh.devices.size)
    if cfg["batch_size"] % n_dev:
        raise ValueError(f"--batch-size {cfg['batch_size']} is not divisible by the {n_dev} "
                         "local devices")
    out = Path(out)
    source, stats = None, None
    if cfg.get("init_from"):
        cfg = inherit_architecture(cfg, options)
    if (out / "config.json").exists():  # a run written before the options: keep its meaning
        cfg = legacy_config(cfg, Run.open(out).read_config(), options)
    else:  # a new run: everything checked before any write
        if cfg.get("init_from"):
            source = initial_model(cfg)
        stats = source[1] if source else prior_statistics(cfg, dataset)
    run = Run(out)
    try:
        resumed = run.ensure_config(cfg, extendable=("steps",))
        if resumed and (run.path / f"{STATS}.npz").exists():
            stats = run.load_arrays(STATS)
        else:
            if stats is None:  # config written, killed before the statistics
                if cfg.get("init_from"):
                    source = initial_model(cfg)
                stats = source[1] if source else prior_statistics(cfg, dataset)
            run.save_arrays(STATS, stats)
        start = run.latest_step() or 0
        end = cfg["steps"] if stop_after is None else min(cfg["steps"], stop_after)
        summary = {"run": str(run.path), "step": start, "loss": float("nan"),
                   "resumed_from": start, "stopped": start < cfg["steps"]}
        if start >= end:  # finished (or stopped there): nothing to do
            return summary
        if start == 0 and cfg.get("init_from"):
            model = (source or initial_model(cfg))[0]
        else:
            model = build_model(cfg)
        loop = Loop(total_steps=cfg["steps"], seed=cfg["seed"],
                    checkpoint_every=cfg["checkpoint_every"], log_every=cfg["log_every"],
                    stop_at=stop_after, progress=not quiet,
                    desc=f"pfn {cfg['prior'] or Path(cfg['data']).name}")
        tx, schedule = make_optimizer(cfg)
        _, res = fit(run, model, tx, make_loss(cfg, stats["borders"]),
                     make_batches(cfg, dataset), loop, lr=schedule, mesh=mesh)
        summary.update(step=res.step, loss=res.loss, resumed_from=res.resumed_from,
                       stopped=res.step < cfg["steps"])
        return summary
    finally:
        run.close()


def legacy_config(cfg: dict, stored: dict, options: dict) -> dict:
    """``cfg`` without the :data:`ARCH_DEFAULTS` keys that the ``stored`` config of an earlier
    run lacks and ``options`` do not set: resuming a run made before those options existed
    builds and samples as it did (:data:`LEGACY`), and its config still matches."""
    drop = [k for k in ARCH_DEFAULTS if k not in stored and options.get(k) is None]
    return {k: v for k, v in cfg.items() if k not in drop}


def inherit_architecture(cfg: dict, options: dict) -> dict:
    """``cfg`` with the layer options (``norm``, ``zero_init``, ``x_encoder``) of the model it
    starts from (``init_from``; :data:`LEGACY` for a model made before the options) wherever
    ``options`` do not set them: continuing a checkpoint keeps its architecture whatever the
    new-run defaults are."""
    src_cfg = load_any(cfg["init_from"])[1]
    return {**cfg, **{k: src_cfg.get(k, LEGACY[k]) for k in ("norm", "zero_init", "x_encoder")
                      if options.get(k) is None}}


def initial_model(cfg: dict):
    """(model, prior_stats) of ``cfg["init_from"]`` (a shipped name, export or run folder) to
    continue training from: same architecture and prior, and its bucket borders (the head's
    outputs mean those buckets). Fresh optimiser state and schedule."""
    model, src_cfg, stats = load_any(cfg["init_from"])
    keys = ARCHITECTURE if cfg.get("prior") is not None else [
        k for k in ARCHITECTURE if k not in ("prior", "prior_options")]
    differ = [k for k in keys if src_cfg.get(k, LEGACY.get(k)) != cfg.get(k, LEGACY.get(k))]
    if differ:
        detail = ", ".join(f"{k}: {src_cfg.get(k, LEGACY.get(k))!r} vs "
                           f"{cfg.get(k, LEGACY.get(k))!r}" for k in differ)
        raise ValueError(f"cannot start from {cfg['init_from']!r}: it is another model ({detail})")
    return model, {k: np.asarray(v) for k, v in stats.items()}

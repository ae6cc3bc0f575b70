"""Seeded, jit-compiled batch samplers of synthetic datasets (the priors a PFN is fitted to).

Every prior is a frozen dataclass (hashable, so it can be a static argument of ``jax.jit``)
called as ``prior(key, batch_size, n_points, n_context) -> PointSets``: ``batch_size``
datasets of ``n_points`` i.i.d. points, the first ``n_context`` of them the context. The same
key gives the same batch. ``n_context`` may be traced.

- ``GPPrior``: y = f(x) + eps, f ~ GP(0, k) for any kernel of ``kernels``, fixed
  hyperparameters or the Gamma hyper-prior of ``hyper``; x ~ U[0, 1]^d, d fixed or drawn per
  dataset in [min_features, num_features] (extra columns zero); ``ard=True``: one lengthscale
  per input dimension, each drawn from the lengthscale Gamma (``gp-hyper-ard``).
- ``BNNPrior``: y = MLP(x) + eps with Gaussian weights, random depth, width, weight and
  noise scales (Mueller et al. 2022, section 5.2).
- ``ClassificationPrior``: tabular classification; a latent function (GP or BNN, chosen per
  dataset) cut into 2..max_classes classes at random quantile thresholds, class ids permuted,
  features x ~ N(0, 1) zero-padded to ``num_features``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from pde_data.points import PointSets
from pde_data.priors import gp, hyper, kernels
from pde_data.priors.gp import sample_gp

__all__ = ["PRIORS", "BNNPrior", "ClassificationPrior", "GPPrior", "make_prior", "sample_batch"]


def _feature_counts(key, batch_size, num_features, min_features):
    if min_features is None or min_features >= num_features:
        return jnp.full((batch_size,), num_features, jnp.int32)
    return jax.random.randint(key, (batch_size,), min_features, num_features + 1, jnp.int32)


def _mask_features(x, n_features):
    """Zero the columns beyond each dataset's real feature count."""
    cols = jnp.arange(x.shape[-1])
    return jnp.where(cols[None, None, :] < n_features[:, None, None], x, 0.0)


def _check_values(prior, positive=(), nonnegative=(), ranges=(), at_least_one=()):
    """Refuse option values that would sample garbage silently (NaN, <= 0 scales, low > high).

    ``positive`` / ``nonnegative``: names of number or number-tuple fields; ``ranges``: names
    of ``(low, high)`` fields that need ``0 < low <= high``; ``at_least_one``: integer fields."""
    import math

    name = type(prior).__name__

    def numbers(field):
        value = getattr(prior, field)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: {field} must be finite numbers, got {value!r}")
        return values

    for field in positive:
        if any(v <= 0 for v in numbers(field)):
            raise ValueError(f"{name}: {field} must be > 0, got {getattr(prior, field)!r}")
    for field in nonnegative:
        if any(v < 0 for v in numbers(field)):
            raise ValueError(f"{name}: {field} must be >= 0, got {getattr(prior, field)!r}")
    for field in ranges:
        values = numbers(field)
        if len(values) != 2 or not 0 < values[0] <= values[1]:
            raise ValueError(f"{name}: {field} must be (low, high) with 0 < low <= high, "
                             f"got {getattr(prior, field)!r}")
    for field in at_least_one:
        value = getattr(prior, field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}: {field} must be an integer >= 1, got {value!r}")


def _log_uniform(key, shape, low, high):
    return jnp.exp(jax.random.uniform(key, shape, minval=jnp.log(low), maxval=jnp.log(high)))


@dataclass(frozen=True)
class GPPrior:
    """GP regression datasets on [0, 1]^d (fixed hyperparameters or ``hyper_prior=True``).

    ``ard``: the lengthscale is ``(batch, num_features)``, one per input dimension (each an
    independent draw of ``lengthscale_gamma`` under the hyper-prior: BoTorch's default ARD
    Matern-5/2 the PFN paper's GP hyper-prior uses), else ``(batch,)``, shared."""

    kernel: str = "rbf"
    lengthscale: float = 0.1
    outputscale: float = 1.0
    noise_var: float = 1e-4
    period: float = 0.5
    num_features: int = 1
    min_features: int | None = None
    hyper_prior: bool = False
    lengthscale_gamma: tuple[float, float] = (3.0, 6.0)
    outputscale_gamma: tuple[float, float] = (2.0, 0.15)
    noise_gamma: tuple[float, float] = (1e-4, 1.0)
    noise_floor: float = 1e-4
    jitter: float = 1e-6
    ard: bool = False
    task: str = "regression"

    def __post_init__(self):
        if self.kernel not in kernels.KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; available: {', '.join(kernels.KERNELS)}")
        if not 1 <= self.num_features:
            raise ValueError(f"num_features must be >= 1, got {self.num_features}")
        if not isinstance(self.ard, bool):
            raise ValueError(f"ard must be true or false, got {self.ard!r}")  # noqa: TRY004
        _check_values(self, positive=("lengthscale", "outputscale", "period", "noise_floor",
                                      "lengthscale_gamma", "outputscale_gamma", "noise_gamma"),
                      nonnegative=("noise_var", "jitter"), at_least_one=("min_features",))

    def hyperparameters(self, key, batch_size):
        """Per-dataset (lengthscale, outputscale, noise_var), each (batch_size,); the
        lengthscale (batch_size, num_features) with ``ard``."""
        ls_shape = (batch_size, self.num_features) if self.ard else (batch_size,)
        if not self.hyper_prior:
            full = partial(jnp.full, (batch_size,), dtype=jnp.float32)
            return (jnp.full(ls_shape, self.lengthscale, jnp.float32), full(self.outputscale),
                    full(self.noise_var))
        k1, k2, k3 = jax.random.split(key, 3)
        ls = hyper.sample_gamma(k1, self.lengthscale_gamma, ls_shape, floor=1e-3)
        os_ = hyper.sample_gamma(k2, self.outputscale_gamma, (batch_size,), floor=1e-3)
        nv = hyper.sample_gamma(k3, self.noise_gamma, (batch_size,), floor=self.noise_floor)
        return ls, os_, nv

    def kernel_fn(self, lengthscale, outputscale):
        extra = {"period": self.period} if self.kernel == "periodic" else {}
        return kernels.get_kernel(self.kernel, lengthscale=lengthscale, outputscale=outputscale,
                                  ard=self.ard, **extra)

    def __call__(self, key, batch_size: int, n_points: int, n_context) -> PointSets:
        kd, kx, kh, ky = jax.random.split(key, 4)
        n_feat = _feature_counts(kd, batch_size, self.num_features, self.min_features)
        x = jax.random.uniform(kx, (batch_size, n_points, self.num_features), jnp.float32)
        x = _mask_features(x, n_feat)
        ls, os_, nv = self.hyperparameters(kh, batch_size)
        y = sample_gp(ky, x, self.kernel_fn(ls, os_), nv, self.jitter)
        return PointSets.prefix(x, y[..., None], n_context, n_features=n_feat)

    def predictive(self, key, batch: PointSets):
        """Exact predictive (mean, var), each (batch, n_points), of every point's noisy y given
        the batch's context under the hyperparameters that generated it (the batch must come
        from ``self(key, ...)``). A Rao-Blackwellised training target: averaging a loss over
        this Gaussian instead of the sampled y has the same expectation and less variance."""
        ls, os_, nv = self.hyperparameters(jax.random.split(key, 4)[2], batch.x.shape[0])
        y = batch.y[..., 0]
        mask = batch.mask_context > 0  # (batch, n_points); traced context sizes too
        return gp.gp_posterior(batch.x, y, batch.x, self.kernel_fn(ls, os_), nv,
                               mask=mask, jitter=self.jitter)


def _mlp(key, x, n_feat, max_width, min_width, max_depth, min_depth, weight_std, activation):
    """One random MLP (one dataset) applied to x (n, D): latent f (n,)."""
    keys = jax.random.split(key, 2 * max_depth + 4)
    width = jax.random.randint(keys[0], (), min_width, max_width + 1)
    depth = jax.random.randint(keys[1], (), min_depth, max_depth + 1)
    sigma = _log_uniform(keys[2], (), *weight_std)
    unit_on = (jnp.arange(max_width) < width).astype(x.dtype)
    d_in = x.shape[-1]
    w = jax.random.normal(keys[3], (d_in, max_width)) * sigma / jnp.sqrt(n_feat.astype(x.dtype))
    b = jax.random.normal(keys[4], (max_width,)) * sigma
    h = activation(x @ w + b) * unit_on
    for layer in range(1, max_depth):
        kw, kb = keys[3 + 2 * layer], keys[4 + 2 * layer]
        w = jax.random.normal(kw, (max_width, max_width)) * sigma / jnp.sqrt(width)
        b = jax.random.normal(kb, (max_width,)) * sigma
        h_new = activation(h @ w + b) * unit_on
        h = jnp.where(layer < depth, h_new, h)
    w_out = jax.random.normal(keys[-1], (max_width,)) / jnp.sqrt(width)
    return h @ w_out


@dataclass(frozen=True)
class BNNPrior:
    """Random-MLP regression datasets: Gaussian weights N(0, sigma^2 / fan_in), tanh units,
    depth in [min_depth, max_depth] and width in [min_width, max_width] per dataset (unused
    units masked), sigma and the noise std log-uniform on the given ranges."""

    num_features: int = 1
    min_features: int | None = None
    max_width: int = 32
    min_width: int = 4
    max_depth: int = 3
    min_depth: int = 1
    weight_std: tuple[float, float] = (0.5, 3.0)
    noise_std: tuple[float, float] = (1e-2, 0.3)
    task: str = "regression"

    def __post_init__(self):
        _check_values(self, ranges=("weight_std", "noise_std"),
                      at_least_one=("num_features", "min_features", "max_width", "min_width",
                                    "max_depth", "min_depth"))
        if self.min_width > self.max_width or self.min_depth > self.max_depth:
            raise ValueError(f"BNNPrior: min_width/min_depth must not exceed max_width/max_depth, "
                             f"got {self.min_width}/{self.min_depth} > {self.max_width}/{self.max_depth}")

    def latent(self, key, x, n_feat):
        keys = jax.random.split(key, x.shape[0])
        fn = partial(_mlp, max_width=self.max_width, min_width=self.min_width,
                     max_depth=self.max_depth, min_depth=self.min_depth,
                     weight_std=self.weight_std, activation=jnp.tanh)
        return jax.vmap(fn)(keys, x, n_feat)

    def __call__(self, key, batch_size: int, n_points: int, n_context) -> PointSets:
        kd, kx, kf, kn, ke = jax.random.split(key, 5)
        n_feat = _feature_counts(kd, batch_size, self.num_features, self.min_features)
        x = jax.random.uniform(kx, (batch_size, n_points, self.num_features), jnp.float32)
        x = _mask_features(x, n_feat)
        f = self.latent(kf, x, n_feat)
        noise = _log_uniform(kn, (batch_size, 1), *self.noise_std)
        y = f + noise * jax.random.normal(ke, f.shape)
        return PointSets.prefix(x, y[..., None], n_context, n_features=n_feat)


@dataclass(frozen=True)
class ClassificationPrior:
    """Tabular classification datasets: features x ~ N(0, 1) (d in [min_features,
    num_features], zero-padded), a latent GP (RBF, lengthscale sqrt(d) * LogU(0.3, 3)) or BNN
    function chosen with probability ``p_gp``, cut into C ~ U{min_classes..max_classes}
    classes at the dataset's own f-quantiles of sorted U(0, 1) draws (expected class
    frequencies equal), class ids randomly permuted."""

    num_features: int = 20
    min_features: int | None = 1
    max_classes: int = 10
    min_classes: int = 2
    p_gp: float = 0.5
    task: str = "classification"

    def __post_init__(self):
        _check_values(self, nonnegative=("p_gp",), at_least_one=("num_features", "min_features"))
        if not self.p_gp <= 1:
            raise ValueError(f"ClassificationPrior: p_gp must be in [0, 1], got {self.p_gp!r}")
        if isinstance(self.min_classes, bool) or not 2 <= self.min_classes <= self.max_classes:
            raise ValueError(f"ClassificationPrior: need 2 <= min_classes <= max_classes, "
                             f"got {self.min_classes} and {self.max_classes}")

    def __call__(self, key, batch_size: int, n_points: int, n_context) -> PointSets:
        kd, kx, kc, kg, kl, kb, kchoose, kq, _ = jax.random.split(key, 9)  # 9: fixed stream
        n_feat = _feature_counts(kd, batch_size, self.num_features, self.min_features)
        x = jax.random.normal(kx, (batch_size, n_points, self.num_features), jnp.float32)
        x = _mask_features(x, n_feat)
        n_cls = jax.random.randint(kc, (batch_size,), self.min_classes, self.max_classes + 1,
                                   jnp.int32)
        ls = jnp.sqrt(n_feat.astype(jnp.float32)) * _log_uniform(kl, (batch_size,), 0.3, 3.0)
        f_gp = sample_gp(kg, x, partial(kernels.rbf, lengthscale=ls), 1e-4, 1e-5)
        f_bnn = BNNPrior(num_features=self.num_features).latent(kb, x, n_feat)
        use_gp = jax.random.uniform(kchoose, (batch_size, 1)) < self.p_gp
        f = jnp.where(use_gp, f_gp, f_bnn)
        y = jax.vmap(_threshold_labels, in_axes=(0, 0, 0, None))(
            jax.random.split(kq, batch_size), f, n_cls, self.max_classes)
        return PointSets.prefix(x, y[..., None], n_context, n_features=n_feat, n_classes=n_cls)


def _threshold_labels(key, f, n_classes, max_classes):
    """Labels in [0, n_classes) from thresholds at random quantiles of f, ids permuted."""
    kq, kp = jax.random.split(key)
    u = jnp.sort(jax.random.uniform(kq, (max_classes - 1,)))
    u = jnp.where(jnp.arange(max_classes - 1) < n_classes - 1, u, 2.0)  # unused cuts: never
    thresholds = jnp.where(u <= 1.0, jnp.quantile(f, jnp.clip(u, 0.0, 1.0)), jnp.inf)
    ordinal = jnp.sum(f[:, None] > thresholds[None, :], axis=-1)
    order = jnp.where(jnp.arange(max_classes) < n_classes,
                      jax.random.uniform(kp, (max_classes,)), 2.0)
    perm = jnp.argsort(order)  # first n_classes entries: a permutation of 0..n_classes-1
    return perm[ordinal].astype(jnp.int32)


PRIORS = {
    "gp-rbf": GPPrior(kernel="rbf", lengthscale=0.1, outputscale=1.0, noise_var=1e-4),
    "gp-matern12": GPPrior(kernel="matern12", lengthscale=0.2),
    "gp-matern32": GPPrior(kernel="matern32", lengthscale=0.2),
    "gp-matern52": GPPrior(kernel="matern52", lengthscale=0.2),
    "gp-periodic": GPPrior(kernel="periodic", lengthscale=1.0, period=0.5),
    "gp-hyper": GPPrior(kernel="matern52", hyper_prior=True, num_features=5, min_features=1),
    "gp-hyper-ard": GPPrior(kernel="matern52", hyper_prior=True, ard=True, num_features=5,
                            min_features=1),
    "bnn": BNNPrior(),
    "tabular": ClassificationPrior(),
}


def make_prior(name: str, **overrides):
    """The registered prior ``name`` with fields replaced by ``overrides``."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; available: {', '.join(PRIORS)}")
    prior = PRIORS[name]
    fields = {f.name for f in dataclasses.fields(prior)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"prior {name!r} has no option(s) {bad}; options: {sorted(fields)}")
    # JSON options (a run's config, --prior-option) give lists; a prior is hashable (a static jit
    # argument), so (low, high) pairs become tuples
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(prior, **overrides)


@partial(jax.jit, static_argnums=(0, 2, 3))
def sample_batch(prior, key, batch_size: int, n_points: int, n_context) -> PointSets:
    """Jitted ``prior(key, batch_size, n_points, n_context)``."""
    return prior(key, batch_size, n_points, n_context)

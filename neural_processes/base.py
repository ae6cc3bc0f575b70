"""The shared skeleton of every model: the deterministic context encoder (mean pooling for
CNP-style models, self- and cross-attention for attentive ones, Kim et al. 2019), the Gaussian
decoder, and the public ``predict`` / ``log_likelihood`` interface of docs/design.md."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from neural_processes.inputs import check_point_sets
from neural_processes.layers import MLP, MultiHeadAttention, SelfAttention, masked_mean
from neural_processes.likelihood import (
    gaussian_logpdf,
    logmeanexp,
    masked_point_mean,
    mixture_moments,
    std_from_raw,
)
from pde_data.points import PointSets


class ContextRep(NamedTuple):
    """Per-point context representations: attention keys (None for mean pooling), values and
    the mask of real points. Leading axes may include a sample axis."""

    keys: jax.Array | None
    values: jax.Array
    mask: jax.Array


def concat_reps(a: ContextRep, b: ContextRep) -> ContextRep:
    """Join two representation sets along the point axis (real + pseudo contexts)."""
    shape = jnp.broadcast_shapes(a.values.shape[:-2], b.values.shape[:-2])

    def cat(u, v):
        u = jnp.broadcast_to(u, (*shape, *u.shape[len(u.shape) - 2:]))
        v = jnp.broadcast_to(v, (*shape, *v.shape[len(v.shape) - 2:]))
        return jnp.concatenate([u, v], axis=-2)

    mshape = shape
    ma = jnp.broadcast_to(a.mask, (*mshape, a.mask.shape[-1]))
    mb = jnp.broadcast_to(b.mask, (*mshape, b.mask.shape[-1]))
    keys = None if a.keys is None else cat(a.keys, b.keys)
    return ContextRep(keys, cat(a.values, b.values), jnp.concatenate([ma, mb], axis=-1))


class DeterministicPath(nnx.Module):
    """Encoder ``r_i = MLP([x_i, y_i])`` and aggregation at the targets: the masked mean (CNP,
    Garnelo et al. 2018, Eq. 2) or, with ``attention``, self-attention over the ``r_i`` then
    multi-head cross-attention from the target inputs (ANP, Kim et al. 2019, Sec. 3)."""

    def __init__(self, x_dim: int, y_dim: int, width: int, depth: int, heads: int,
                 attention: bool, *, rngs: nnx.Rngs):
        self.attention = attention
        self.encoder = MLP(x_dim + y_dim, width, width, depth, rngs=rngs)
        if attention:
            self.self_att = SelfAttention(width, heads, rngs=rngs)
            self.qk = MLP(x_dim, width, width, 2, rngs=rngs)
            self.cross = MultiHeadAttention(width, width, width, heads, rngs=rngs)

    def represent(self, xc: jax.Array, yc: jax.Array, mc: jax.Array) -> ContextRep:
        values = self.encoder(jnp.concatenate([xc, yc], axis=-1))
        if not self.attention:
            return ContextRep(None, values, mc)
        return ContextRep(self.qk(xc), self.self_att(values, mc), mc)

    def aggregate(self, rep: ContextRep, xt: jax.Array) -> jax.Array:
        """Target-wise representation ``(*lead, n_target, width)``; ``lead`` follows ``rep``."""
        lead = rep.values.shape[:-2]
        if not self.attention:
            r = masked_mean(rep.values, rep.mask)
            return jnp.broadcast_to(r[..., None, :], (*lead, xt.shape[-2], r.shape[-1]))
        q = self.qk(xt)
        q = jnp.broadcast_to(q, (*lead, *q.shape[-2:]))
        return self.cross(q, rep.keys, rep.values, rep.mask)


class GaussianDecoder(nnx.Module):
    """``(mean, std) = MLP([x_t, r_t, (z)])`` with ``std >= min_std``."""

    def __init__(self, x_dim: int, in_features: int, y_dim: int, width: int, depth: int,
                 min_std: float, *, rngs: nnx.Rngs):
        self.min_std = min_std
        self.mlp = MLP(x_dim + in_features, width, 2 * y_dim, depth, rngs=rngs)

    def __call__(self, xt: jax.Array, r: jax.Array) -> tuple[jax.Array, jax.Array]:
        xt = jnp.broadcast_to(xt, (*r.shape[:-1], xt.shape[-1]))
        out = self.mlp(jnp.concatenate([xt, r], axis=-1))
        mean, raw = jnp.split(out, 2, axis=-1)
        return mean, std_from_raw(raw, self.min_std)


@nnx.jit(static_argnames=("num_samples",))
def _predictive(model, xc, yc, mc, xt, key, num_samples):
    return model.predictive(xc, yc, mc, xt, key, num_samples)


@nnx.jit(static_argnames=("num_samples",))
def _pointwise_loglik(model, xc, yc, mc, xt, yt, key, num_samples):
    mean, std = model.predictive(xc, yc, mc, xt, key, num_samples)
    return logmeanexp(gaussian_logpdf(yt, mean, std), axis=0)  # (batch, n_target)


class NeuralProcess(nnx.Module):
    """Base of every model. Subclasses define ``predictive`` (per-sample Gaussians at the
    targets, shape ``(samples, batch, n_target, y_dim)``) and ``loss`` (the training objective on a
    padded ``PointSets``)."""

    name: ClassVar[str] = "base"
    stochastic: ClassVar[bool] = False  # several predictive samples (latent / bootstrap / MP)
    attention: ClassVar[bool] = False

    def __init__(self, x_dim: int = 1, y_dim: int = 1, *, width: int = 128, enc_depth: int = 5,
                 dec_depth: int = 3, heads: int = 8, min_std: float = 0.1,
                 rngs: nnx.Rngs):
        for k, v in {"x_dim": x_dim, "y_dim": y_dim, "width": width, "enc_depth": enc_depth,
                         "dec_depth": dec_depth, "heads": heads}.items():
            if int(v) != v or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")
        if not 0.0 <= min_std < 1.0:
            raise ValueError(f"min_std must lie in [0, 1), got {min_std}")
        self.x_dim, self.y_dim, self.width = int(x_dim), int(y_dim), int(width)
        self.enc_depth, self.dec_depth, self.heads = int(enc_depth), int(dec_depth), int(heads)
        self.min_std = float(min_std)
        self.det = DeterministicPath(x_dim, y_dim, width, enc_depth, heads, self.attention,
                                     rngs=rngs)

    # -- configuration --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this model (stored in run folders and checkpoints)."""
        return dict(model=self.name, x_dim=self.x_dim, y_dim=self.y_dim, width=self.width,
                    enc_depth=self.enc_depth, dec_depth=self.dec_depth, heads=self.heads,
                    min_std=self.min_std, **self.extra_config())

    def extra_config(self) -> dict[str, Any]:
        return {}

    @property
    def default_samples(self) -> int:
        return 50 if self.stochastic else 1

    # -- to be defined by each model ------------------------------------------------------------
    def predictive(self, xc, yc, mc, xt, key, num_samples: int):
        raise NotImplementedError

    def loss(self, batch: PointSets, key: jax.Array) -> tuple[jax.Array, dict]:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def evaluate_batch(self, batch: PointSets, key: jax.Array, num_samples: int
                       ) -> tuple[jax.Array, jax.Array]:
        """Per-task context and target log-likelihood per point (log-mean-exp over samples at
        each point, then the mean over the task's points), conditioning on the context slots."""
        mean, std = self.predictive(batch.x, batch.y, batch.mask_context, batch.x, key,
                                    num_samples)
        ll = logmeanexp(gaussian_logpdf(batch.y, mean, std), axis=0)
        return masked_point_mean(ll, batch.mask_context), masked_point_mean(ll, batch.mask_target)

    def _key(self, key):
        if key is None:
            return jax.random.key(0)
        if isinstance(key, int):
            return jax.random.key(key)
        return key

    def predict(self, x_context, y_context, x_target, *, num_samples: int | None = None,
                key=None) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and std at ``x_target``, each ``(batch, n_target, y_dim)``. For
        stochastic models these are the moments of the mixture over ``num_samples`` draws
        (default 50; ``key`` or seed, default 0)."""
        xc, yc, xt = check_point_sets(self.x_dim, self.y_dim, x_context, y_context, x_target)
        s = num_samples or self.default_samples
        mc = jnp.ones(xc.shape[:2], jnp.float32)
        mean, std = _predictive(self, xc, yc, mc, xt, self._key(key), s)
        mean, std = mixture_moments(mean, std)
        if np.ndim(x_context) == 2:
            mean, std = mean[0], std[0]
        return np.asarray(mean), np.asarray(std)

    def log_likelihood(self, x_context, y_context, x_target, y_target, *,
                       num_samples: int | None = None, key=None) -> np.ndarray:
        """Per-point predictive log-likelihood of ``y_target``, averaged over the target points:
        shape ``(batch,)`` (log-mean-exp over samples at each point for stochastic models)."""
        xc, yc, xt, yt = check_point_sets(self.x_dim, self.y_dim, x_context, y_context,
                                          x_target, y_target)
        s = num_samples or self.default_samples
        mc = jnp.ones(xc.shape[:2], jnp.float32)
        ll = jnp.mean(_pointwise_loglik(self, xc, yc, mc, xt, yt, self._key(key), s), axis=-1)
        if np.ndim(x_context) == 2:
            ll = ll[0]
        return np.asarray(ll)

    def predict_dataset(self, data, n_context: int, *, num_samples: int | None = None,
                        seed: int = 0, batch_size: int = 256):
        """Predictions on point sets (a ``.nc`` / ``.zarr`` path or an ``xarray.Dataset`` with
        ``x (task, point, feature)``, ``y (task, point)``): each task's first ``n_context``
        points are its context, the mean and std at the rest come back as an
        ``xarray.Dataset`` with the inputs' coordinates (``neural_processes.predict``)."""
        from neural_processes.predict import predict_point_sets

        return predict_point_sets(self, data, n_context, num_samples=num_samples, seed=seed,
                                  batch_size=batch_size)

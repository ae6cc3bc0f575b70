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


MIN_BUCKET = 16  # smallest padded size of a context or a target set


def bucket_size(n: int) -> int:
    """The padded size of ``n`` points: the next power of two, at least :data:`MIN_BUCKET`.
    ``predict`` and ``log_likelihood`` pad to it (with masks), so a new number of points costs
    one compilation per bucket, not one per size."""
    return max(MIN_BUCKET, 1 << (max(int(n), 1) - 1).bit_length())


def _moments(model, xc, yc, mc, xt, key, num_samples):
    """Mean and std of the predictive mixture at the targets."""
    return mixture_moments(*model.predictive(xc, yc, mc, xt, key, num_samples))


def _target_loglik(model, xc, yc, mc, xt, yt, mt, key, num_samples):
    """Per-task mean over the real targets (``mt``) of the per-point log-mean-exp."""
    mean, std = model.predictive(xc, yc, mc, xt, key, num_samples)
    return masked_point_mean(logmeanexp(gaussian_logpdf(yt, mean, std), axis=0), mt)


_moments_jit = nnx.jit(_moments, static_argnames=("num_samples",))
_target_loglik_jit = nnx.jit(_target_loglik, static_argnames=("num_samples",))


def _check_finite_prediction(mean, std, *inputs) -> None:
    """A named error instead of NaN / inf: inputs so large that the float32 model overflows."""
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        biggest = max(float(np.abs(np.asarray(a)).max()) for a in inputs)
        raise FloatingPointError(
            f"the prediction is not finite: inputs of magnitude up to {biggest:.3g} overflow "
            "this float32 model; rescale x and y (e.g. to unit scale) first")


def _is_jax(*arrays) -> bool:
    return any(isinstance(a, jax.Array) for a in arrays)


def _is_traced(*arrays) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def _check_shapes(x_dim: int, y_dim: int, names, arrays) -> bool:
    """Shape checks of JAX inputs (traced ones included: no value checks); returns whether
    they are unbatched ``(n, features)``. The messages are those of ``check_point_sets``."""
    ranks = {a.ndim for a in arrays}
    for name, a in zip(names, arrays):
        if a.ndim not in (2, 3):
            raise ValueError(f"{name} must have shape (batch, n_points, features) or (n_points, "
                             f"features), got shape {tuple(a.shape)}")
        want = x_dim if name.startswith("x") else y_dim
        if a.shape[-1] != want:
            raise ValueError(f"{name} has {a.shape[-1]} features per point; this model expects "
                             f"{want} ({'x_dim' if name.startswith('x') else 'y_dim'})")
    if len(ranks) != 1:
        raise ValueError("inputs mix batched (3-D) and unbatched (2-D) arrays: "
                         + ", ".join(f"{n} {tuple(a.shape)}" for n, a in zip(names, arrays)))
    if ranks == {3} and len({a.shape[0] for a in arrays}) != 1:
        raise ValueError("inputs disagree on the batch size: "
                         + ", ".join(f"{n} {a.shape[0]}" for n, a in zip(names, arrays)))
    xc, yc, xt = arrays[:3]
    if xc.shape[-2] != yc.shape[-2]:
        raise ValueError(f"x_context has {xc.shape[-2]} points but y_context has "
                         f"{yc.shape[-2]}")
    if xc.shape[-2] == 0:
        raise ValueError("the context is empty: a neural process needs at least one context point")
    if xt.shape[-2] == 0:
        raise ValueError("x_target is empty: give at least one target point")
    if len(arrays) > 3 and arrays[3].shape[-2] != xt.shape[-2]:
        raise ValueError(f"x_target has {xt.shape[-2]} points but y_target has "
                         f"{arrays[3].shape[-2]}")
    return ranks == {2}


def _pad_points(a: np.ndarray, size: int) -> np.ndarray:
    """``a (batch, n, f)`` zero-padded to ``size`` points."""
    return np.pad(a, ((0, 0), (0, size - a.shape[1]), (0, 0)))


def _point_mask(batch: int, n: int, size: int) -> np.ndarray:
    m = np.zeros((batch, size), np.float32)
    m[:, :n] = 1.0
    return m


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

    def _inputs(self, names, values):
        """``(arrays (batch, n, f), unbatched, as_jax, traced)`` of the public inputs: concrete
        ones (NumPy, lists, JAX arrays) checked and converted by ``check_point_sets`` (values
        too), traced ones by shape only."""
        as_jax = _is_jax(*values)
        if not _is_traced(*values):
            arrays = check_point_sets(self.x_dim, self.y_dim,
                                      *(np.asarray(v) if as_jax else v for v in values))
            return arrays, np.ndim(values[0]) == 2, as_jax, False
        values = [jnp.asarray(v, jnp.float32) for v in values]
        unbatched = _check_shapes(self.x_dim, self.y_dim, names, values)
        if unbatched:
            values = [v[None] for v in values]
        return values, unbatched, True, True

    def predict(self, x_context, y_context, x_target, *, num_samples: int | None = None,
                key=None):
        """Predictive mean and std at ``x_target``, each ``(batch, n_target, y_dim)`` (or
        ``(n_target, y_dim)`` for unbatched ``(n, features)`` inputs). For stochastic models
        these are the moments of the mixture over ``num_samples`` draws (default 50; ``key``
        or seed, default 0).

        NumPy (or list) inputs give NumPy outputs; JAX inputs give JAX outputs, and the call
        can be traced: ``jax.jit(lambda xc, yc, xt: model(xc, yc, xt))`` and ``jax.vmap`` work.
        Outside a trace the context and the targets are padded (with masks) to size buckets
        (:func:`bucket_size`), so a new number of points compiles only for a new bucket; the
        padding does not change the predictions."""
        (xc, yc, xt), unbatched, as_jax, traced = self._inputs(
            ("x_context", "y_context", "x_target"), (x_context, y_context, x_target))
        s = num_samples or self.default_samples
        key = self._key(key)
        if _is_traced(key) and not traced:  # a traced key alone: trace the whole call too
            traced = as_jax = True
        if traced:  # inside the caller's jit / vmap: shapes are static there already
            mean, std = _moments(self, xc, yc, jnp.ones(xc.shape[:2], jnp.float32), xt, key, s)
        else:
            b, nc, nt = xc.shape[0], xc.shape[1], xt.shape[1]
            pc, pt = bucket_size(nc), bucket_size(nt)
            mean, std = _moments_jit(self, _pad_points(xc, pc), _pad_points(yc, pc),
                                     _point_mask(b, nc, pc), _pad_points(xt, pt), key, s)
            # sliced on the host: an eager slice of a device array would compile per size
            mean, std = np.asarray(mean)[:, :nt], np.asarray(std)[:, :nt]
            _check_finite_prediction(mean, std, xc, yc, xt)
        if unbatched:
            mean, std = mean[0], std[0]
        if as_jax:
            return jnp.asarray(mean), jnp.asarray(std)
        return mean, std

    def __call__(self, x_context, y_context, x_target, *, num_samples: int | None = None,
                 key=None):
        """``predict``: ``model(xc, yc, xt) -> (mean, std)``."""
        return self.predict(x_context, y_context, x_target, num_samples=num_samples, key=key)

    def log_likelihood(self, x_context, y_context, x_target, y_target, *,
                       num_samples: int | None = None, key=None):
        """Per-point predictive log-likelihood of ``y_target``, averaged over the target points:
        shape ``(batch,)`` (log-mean-exp over samples at each point for stochastic models).
        NumPy in, NumPy out; JAX in, JAX out (traceable); size buckets as in ``predict``."""
        (xc, yc, xt, yt), unbatched, as_jax, traced = self._inputs(
            ("x_context", "y_context", "x_target", "y_target"),
            (x_context, y_context, x_target, y_target))
        s = num_samples or self.default_samples
        key = self._key(key)
        if _is_traced(key) and not traced:  # a traced key alone: trace the whole call too
            traced = as_jax = True
        if traced:
            ll = _target_loglik(self, xc, yc, jnp.ones(xc.shape[:2], jnp.float32), xt, yt,
                                jnp.ones(xt.shape[:2], jnp.float32), key, s)
        else:
            b, nc, nt = xc.shape[0], xc.shape[1], xt.shape[1]
            pc, pt = bucket_size(nc), bucket_size(nt)
            ll = _target_loglik_jit(self, _pad_points(xc, pc), _pad_points(yc, pc),
                                    _point_mask(b, nc, pc), _pad_points(xt, pt),
                                    _pad_points(yt, pt), _point_mask(b, nt, pt), key, s)
            ll = np.asarray(ll)
        if unbatched:
            ll = ll[0]
        return jnp.asarray(ll) if as_jax else ll

    def predict_dataset(self, data, n_context: int, *, num_samples: int | None = None,
                        seed: int = 0, batch_size: int = 256):
        """Predictions on point sets (a ``.nc`` / ``.zarr`` path or an ``xarray.Dataset`` with
        ``x (task, point, feature)``, ``y (task, point)``): each task's first ``n_context``
        points are its context, the mean and std at the rest come back as an
        ``xarray.Dataset`` with the inputs' coordinates (``neural_processes.predict``)."""
        from neural_processes.predict import predict_point_sets

        return predict_point_sets(self, data, n_context, num_samples=num_samples, seed=seed,
                                  batch_size=batch_size)

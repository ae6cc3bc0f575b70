"""The Riemann ("bar") distribution head of the PFN (Mueller et al. 2022, section 4.1).

The real line is cut at ``borders`` b_0 < ... < b_K into K buckets (equal-probability
quantiles of a large prior sample of y). The network outputs K logits; bucket k has
probability p_k = softmax(logits)_k. Inner buckets carry a uniform density p_k / w_k; the two
end buckets become half-normals so the support is the whole line: bucket 0 is
b_1 - |z|, bucket K-1 is b_{K-1} + |z|, z ~ N(0, s^2), with the scale s chosen so that the
half-normal's median is the end bucket's width (half of its mass stays where the bucket was).

Every quantity below (log-density, cdf, mean, std, quantile) is exact for that mixture,
tails included. Arrays: ``logits`` (..., K), ``borders`` (K + 1,).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri

HALF_NORMAL_MEDIAN = 0.6744897501960817  # Phi^{-1}(3/4): median of |z| for z ~ N(0, 1)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
LOG_2_OVER_SQRT_2PI = math.log(2.0) - 0.5 * math.log(2.0 * math.pi)


def borders_from_samples(y, n_buckets: int):
    """K + 1 borders at the equal-probability quantiles of a sample of y (numpy / jax array);
    duplicated quantiles (a discrete-looking sample) are an error, not a silent merge."""
    import numpy as np

    y = np.sort(np.asarray(y, dtype=np.float64).ravel())
    y = y[np.isfinite(y)]
    if y.size < 2 * n_buckets:
        raise ValueError(f"need at least {2 * n_buckets} finite samples for {n_buckets} buckets, "
                         f"got {y.size}")
    borders = np.quantile(y, np.linspace(0.0, 1.0, n_buckets + 1))
    if np.any(np.diff(borders) <= 0):
        raise ValueError("prior sample has repeated values: bucket borders are not increasing; "
                         "use fewer buckets")
    return borders.astype(np.float32)


def _gaussian_cdf(borders, mean, var):
    """Phi((b - mean) / sd) at every border: (..., K + 1) for mean, var (...)."""
    mean = jnp.asarray(mean, borders.dtype)[..., None]
    sd = jnp.sqrt(jnp.asarray(var, borders.dtype))[..., None]
    return ndtr((borders - mean) / sd)


class RiemannDistribution:
    """The predictive distribution given by logits (..., K) over fixed borders (K + 1,)."""

    def __init__(self, logits, borders):
        self.borders = jnp.asarray(borders)
        self.logits = jnp.asarray(logits)
        if self.logits.shape[-1] + 1 != self.borders.shape[0]:
            raise ValueError(f"{self.logits.shape[-1]} logits need {self.logits.shape[-1] + 1} "
                             f"borders, got {self.borders.shape[0]}")

    @classmethod
    def from_gaussian(cls, mean, var, borders):
        """The bar distribution closest to N(mean, var) on these borders (each bucket gets the
        Gaussian's mass): the best a head with these buckets can do for a Gaussian target."""
        borders = jnp.asarray(borders)
        cdf = _gaussian_cdf(borders, mean, var)  # (..., K + 1)
        cdf = cdf.at[..., 0].set(0.0).at[..., -1].set(1.0)  # end buckets take the tails
        return cls(jnp.log(jnp.maximum(jnp.diff(cdf, axis=-1), 1e-30)), borders)

    # -- pieces ---------------------------------------------------------------------------
    @property
    def widths(self):
        return jnp.diff(self.borders)

    @property
    def log_probs(self):
        return jax.nn.log_softmax(self.logits, axis=-1)

    @property
    def probs(self):
        return jax.nn.softmax(self.logits, axis=-1)

    @property
    def tail_scales(self):
        """(left, right) half-normal scales s with median s * 0.674 = end bucket width."""
        w = self.widths
        return w[0] / HALF_NORMAL_MEDIAN, w[-1] / HALF_NORMAL_MEDIAN

    def _broadcast(self, y, per_bucket):
        """y and a (..., K) array broadcast to a common batch shape."""
        y = jnp.asarray(y, self.logits.dtype)
        batch = jnp.broadcast_shapes(y.shape, per_bucket.shape[:-1])
        return (jnp.broadcast_to(y, batch),
                jnp.broadcast_to(per_bucket, batch + per_bucket.shape[-1:]))

    # -- density ----------------------------------------------------------------------------
    def logpdf(self, y):
        """log p(y), y broadcastable to the batch shape (...)."""
        y, log_p = self._broadcast(y, self.log_probs)
        b, w = self.borders, self.widths
        k = self.logits.shape[-1]
        idx = jnp.clip(jnp.searchsorted(b, y, side="right") - 1, 0, k - 1)
        log_pk = jnp.take_along_axis(log_p, idx[..., None], axis=-1)[..., 0]
        inner = log_pk - jnp.log(w[idx])
        sl, sr = self.tail_scales
        zl = (b[1] - y) / sl
        zr = (y - b[-2]) / sr
        left = log_p[..., 0] + LOG_2_OVER_SQRT_2PI - jnp.log(sl) - 0.5 * zl**2
        right = log_p[..., -1] + LOG_2_OVER_SQRT_2PI - jnp.log(sr) - 0.5 * zr**2
        return jnp.where(y < b[1], left, jnp.where(y >= b[-2], right, inner))

    def expected_nll_gaussian(self, mean, var):
        """E[-log p(Y)] for Y ~ N(mean, var), exact (tails included): the cross-entropy of the
        bar distribution against a Gaussian, e.g. the exact GP predictive of a target.

        Inner bucket k contributes -P_k log(p_k / w_k), P_k the Gaussian mass of the bucket;
        a tail bucket adds the half-normal's quadratic term, with
        E[(t - Z)^2 ; Z < t] = (t^2 + 1) Phi(t) + t phi(t) for Z ~ N(0, 1)."""
        log_p = self.log_probs
        mean = jnp.asarray(mean, log_p.dtype)
        sd = jnp.sqrt(jnp.asarray(var, log_p.dtype))
        b, w = self.borders, self.widths
        mass = jnp.diff(_gaussian_cdf(b, mean, var), axis=-1)  # (..., K)
        inner = -jnp.sum(mass[..., 1:-1] * (log_p[..., 1:-1] - jnp.log(w[1:-1])), axis=-1)
        sl, sr = self.tail_scales
        tl = (b[1] - mean) / sd  # left tail: Y < b_1, distance b_1 - Y
        tr = (mean - b[-2]) / sd  # right tail: Y > b_{K-1}, distance Y - b_{K-1}
        phi = lambda t: jnp.exp(-0.5 * t**2) / math.sqrt(2.0 * math.pi)
        sq = lambda t: (t**2 + 1.0) * ndtr(t) + t * phi(t)
        left = (-(log_p[..., 0] + LOG_2_OVER_SQRT_2PI - jnp.log(sl)) * ndtr(tl)
                + 0.5 * (sd / sl) ** 2 * sq(tl))
        right = (-(log_p[..., -1] + LOG_2_OVER_SQRT_2PI - jnp.log(sr)) * ndtr(tr)
                 + 0.5 * (sd / sr) ** 2 * sq(tr))
        return inner + left + right

    def pdf(self, y):
        return jnp.exp(self.logpdf(y))

    def cdf(self, y):
        """P(Y <= y)."""
        y, p = self._broadcast(y, self.probs)
        b, w = self.borders, self.widths
        k = self.logits.shape[-1]
        below = jnp.cumsum(p, axis=-1) - p  # mass of buckets before k
        idx = jnp.clip(jnp.searchsorted(b, y, side="right") - 1, 0, k - 1)
        take = lambda a: jnp.take_along_axis(a, idx[..., None], axis=-1)[..., 0]
        inner = take(below) + take(p) * (y - b[idx]) / w[idx]
        sl, sr = self.tail_scales
        left = p[..., 0] * 2.0 * ndtr((y - b[1]) / sl)
        right = (1.0 - p[..., -1]) + p[..., -1] * (2.0 * ndtr((y - b[-2]) / sr) - 1.0)
        return jnp.where(y < b[1], left, jnp.where(y >= b[-2], right, inner))

    # -- moments ------------------------------------------------------------------------------
    def _piece_means_vars(self):
        """Mean and variance of each mixture component: (K,), (K,)."""
        b, w = self.borders, self.widths
        sl, sr = self.tail_scales
        means = 0.5 * (b[:-1] + b[1:])
        varis = w**2 / 12.0
        hn_var = 1.0 - 2.0 / math.pi
        means = means.at[0].set(b[1] - sl * SQRT_2_OVER_PI).at[-1].set(b[-2] + sr * SQRT_2_OVER_PI)
        varis = varis.at[0].set(sl**2 * hn_var).at[-1].set(sr**2 * hn_var)
        return means, varis

    @property
    def mean(self):
        means, _ = self._piece_means_vars()
        return jnp.sum(self.probs * means, axis=-1)

    @property
    def variance(self):
        """Law of total variance over the components (stable: no E[y^2] - E[y]^2)."""
        means, varis = self._piece_means_vars()
        m = self.mean
        return jnp.sum(self.probs * (varis + (means - m[..., None]) ** 2), axis=-1)

    @property
    def std(self):
        return jnp.sqrt(self.variance)

    # -- quantiles -----------------------------------------------------------------------------
    def quantile(self, q):
        """Inverse cdf at q in (0, 1) (q broadcastable to the batch shape, or a trailing axis of
        several levels: pass q with shape (..., 1) against batch (...) for several at once)."""
        q = jnp.asarray(q, self.logits.dtype)
        b, w = self.borders, self.widths
        k = self.logits.shape[-1]
        p = self.probs
        cum = jnp.cumsum(p, axis=-1)
        batch = jnp.broadcast_shapes(q.shape, p.shape[:-1])
        cum_b = jnp.broadcast_to(cum, batch + (k,))
        p_b = jnp.broadcast_to(p, batch + (k,))
        qb = jnp.broadcast_to(q, batch)
        idx = jnp.clip(jnp.sum(cum_b < qb[..., None], axis=-1), 0, k - 1)
        take = lambda a: jnp.take_along_axis(a, idx[..., None], axis=-1)[..., 0]
        pk = take(p_b)
        before = take(cum_b) - pk
        frac = jnp.clip((qb - before) / jnp.maximum(pk, 1e-30), 0.0, 1.0)
        inner = b[idx] + frac * w[idx]
        sl, sr = self.tail_scales
        p0, plast = p_b[..., 0], p_b[..., -1]
        left = b[1] + sl * ndtri(jnp.clip(qb / (2.0 * p0), 1e-30, 0.5))
        r = jnp.clip((qb - (1.0 - plast)) / plast, 0.0, 1.0 - 1e-7)
        right = b[-2] + sr * ndtri(0.5 + 0.5 * r)
        return jnp.where(qb < p0, left, jnp.where(qb > 1.0 - plast, right, inner))

    def sample(self, key, shape=()):
        """Draws by inverse-cdf sampling (the tails included): shape + batch shape."""
        u = jax.random.uniform(key, tuple(shape) + self.logits.shape[:-1],
                               minval=1e-7, maxval=1.0 - 1e-7)
        return self.quantile(u)


def riemann_nll(logits, borders, y):
    """Mean-free per-point negative log-likelihood (..., ) of y under the bar distribution."""
    return -RiemannDistribution(logits, borders).logpdf(y)

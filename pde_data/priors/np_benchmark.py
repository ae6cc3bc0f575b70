"""The neural-process GP benchmark of BNP / TNP / MPNP (Lee et al. 2020; Nguyen & Grover 2022;
Lee et al. 2023): padded batches of 1-D regression tasks drawn from GP priors.

Each task: at most ``max_points`` (50) inputs ``x ~ U[-2, 2]``; the first ``n_context ~
U{3..46}`` are the context, the next ``n_target ~ U{3..max_points - n_context}`` the target; the
rest is padding. Per task, lengthscale ``U(0.1, 0.6)`` and amplitude ``U(0.1, 1.0)`` (output
variance = amplitude^2), Gaussian noise of std 0.02. Kinds:

* ``rbf``, ``matern`` (Matern-5/2), ``periodic`` (period ``U(0.1, 0.5)``, same lengthscale and
  amplitude ranges);
* ``t_noise``: the RBF prior plus Student-t noise (2.1 degrees of freedom), scaled by
  ``U(0, 0.15)`` drawn per point as in the reference BNP / NPF samplers.

Everything is jit-compiled and a pure function of the key; ``test_tasks`` gives the fixed, seeded
evaluation set.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from pde_data.points import PointSets
from pde_data.priors import kernels
from pde_data.priors.gp import sample_gp

KINDS = ("rbf", "matern", "periodic", "t_noise")
NOISE_STD = 0.02


def _check(kind: str, batch_size: int, max_points: int, min_context: int, max_context: int,
           min_target: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown GP benchmark kind {kind!r}; available: {', '.join(KINDS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 1 <= min_context <= max_context:
        raise ValueError(f"need 1 <= min_context <= max_context, got {min_context}, {max_context}")
    if max_context + min_target > max_points:
        raise ValueError(f"max_context + min_target = {max_context + min_target} exceeds "
                         f"max_points = {max_points}")


@partial(jax.jit, static_argnames=("kind", "batch_size", "max_points", "min_context",
                                   "max_context", "min_target"))
def _sample(key, kind, batch_size, max_points, min_context, max_context, min_target):
    ks = jax.random.split(key, 8)
    b, n = batch_size, max_points
    n_ctx = jax.random.randint(ks[0], (b,), min_context, max_context + 1)
    # n_target ~ U{min_target .. max_points - n_ctx}
    u = jax.random.uniform(ks[1], (b,))
    n_tar = min_target + jnp.floor(u * (max_points - n_ctx - min_target + 1)).astype(jnp.int32)
    idx = jnp.arange(n)[None, :]
    mask_ctx = (idx < n_ctx[:, None]).astype(jnp.float32)
    mask_tar = ((idx >= n_ctx[:, None]) & (idx < (n_ctx + n_tar)[:, None])).astype(jnp.float32)

    x = jax.random.uniform(ks[2], (b, n, 1), minval=-2.0, maxval=2.0)
    length = jax.random.uniform(ks[3], (b,), minval=0.1, maxval=0.6)
    amp = jax.random.uniform(ks[4], (b,), minval=0.1, maxval=1.0)
    if kind in ("rbf", "t_noise"):
        kfn = partial(kernels.rbf, lengthscale=length, outputscale=amp**2)
    elif kind == "matern":
        kfn = partial(kernels.matern52, lengthscale=length, outputscale=amp**2)
    else:
        period = jax.random.uniform(ks[5], (b,), minval=0.1, maxval=0.5)
        kfn = partial(kernels.periodic, lengthscale=length, outputscale=amp**2, period=period)
    y = sample_gp(ks[6], x, kfn, noise_var=NOISE_STD**2)[..., None]
    if kind == "t_noise":
        k1, k2 = jax.random.split(ks[7])
        scale = 0.15 * jax.random.uniform(k1, y.shape)
        y = y + scale * jax.random.t(k2, 2.1, y.shape)
    return PointSets(x, y, mask_ctx, mask_tar)


def sample_tasks(key: jax.Array, kind: str = "rbf", batch_size: int = 16, *,
                 max_points: int = 50, min_context: int = 3, max_context: int = 46,
                 min_target: int = 3) -> PointSets:
    """One padded batch of benchmark tasks drawn from ``key`` (jit-compiled; callable inside
    another jitted function, e.g. a training step)."""
    _check(kind, batch_size, max_points, min_context, max_context, min_target)
    return _sample(key, kind, batch_size, max_points, min_context, max_context, min_target)


def test_tasks(kind: str = "rbf", n_tasks: int = 3000, seed: int = 0, batch_size: int = 100
               ) -> list[PointSets]:
    """The fixed evaluation set: ``ceil(n_tasks / batch_size)`` batches drawn from
    ``fold_in(key(seed), i)``, the same on every call and machine (up to float rounding)."""
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    base = jax.random.fold_in(jax.random.key(seed), 0x7E57)
    out = []
    for i in range(int(np.ceil(n_tasks / batch_size))):
        size = min(batch_size, n_tasks - i * batch_size)
        out.append(sample_tasks(jax.random.fold_in(base, i), kind, size))
    return out

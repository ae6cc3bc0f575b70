"""Padded, fixed-size neural-process tasks: every task of a batch lives in ``n_max`` slots with a
context mask and a target mask, so one compiled step serves every context size.

``x: (batch, n_max, x_dim)``, ``y: (batch, n_max, y_dim)``, ``mask_context`` and
``mask_target``: ``(batch, n_max)`` floats in {0, 1}; the two masks are disjoint and slots in
neither are padding. Training losses use every real point (context and target, the usual NP
convention); evaluation reports context and target log-likelihood separately.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class NPBatch(NamedTuple):
    x: jax.Array
    y: jax.Array
    mask_context: jax.Array
    mask_target: jax.Array

    @property
    def mask_all(self) -> jax.Array:
        return jnp.maximum(self.mask_context, self.mask_target)


def prefix_masks(n_context: jax.Array, n_target: jax.Array, n_max: int) -> tuple[jax.Array, jax.Array]:
    """Masks putting each task's ``n_context`` context points first, then ``n_target`` targets."""
    idx = jnp.arange(n_max)
    ctx = idx[None, :] < n_context[:, None]
    tar = (idx[None, :] >= n_context[:, None]) & (idx[None, :] < (n_context + n_target)[:, None])
    return ctx.astype(jnp.float32), tar.astype(jnp.float32)


def check_point_sets(x_dim: int, y_dim: int, x_context, y_context, x_target,
                     y_target=None) -> tuple[np.ndarray, ...]:
    """Validate the public ``predict`` / ``log_likelihood`` inputs and return float32 arrays of
    shape ``(batch, n, features)``. Unbatched ``(n, features)`` inputs get a batch axis of 1.

    Raises ``ValueError`` naming the problem: wrong rank, a feature count other than the model's,
    mismatched point counts or batch sizes, an empty context, NaN or infinite values.
    """
    names = ["x_context", "y_context", "x_target"] + (["y_target"] if y_target is not None else [])
    values = [x_context, y_context, x_target] + ([y_target] if y_target is not None else [])
    arrays = []
    for name, v in zip(names, values):
        a = np.asarray(v)
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{name} must hold numbers, got dtype {a.dtype}")
        a = a.astype(np.float32)
        if a.ndim not in (2, 3):
            raise ValueError(
                f"{name} must have shape (batch, n_points, features) or (n_points, features), "
                f"got shape {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values")
        arrays.append(a)
    ranks = {a.ndim for a in arrays}
    if len(ranks) != 1:
        raise ValueError("inputs mix batched (3-D) and unbatched (2-D) arrays: "
                         + ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays)))
    if ranks == {2}:
        arrays = [a[None] for a in arrays]
    for name, a in zip(names, arrays):
        want = x_dim if name.startswith("x") else y_dim
        if a.shape[-1] != want:
            raise ValueError(f"{name} has {a.shape[-1]} features per point; this model expects "
                             f"{want} ({'x_dim' if name.startswith('x') else 'y_dim'})")
    batch = {a.shape[0] for a in arrays}
    if len(batch) != 1:
        raise ValueError("inputs disagree on the batch size: "
                         + ", ".join(f"{n} {a.shape[0]}" for n, a in zip(names, arrays)))
    xc, yc, xt = arrays[:3]
    if xc.shape[1] != yc.shape[1]:
        raise ValueError(f"x_context has {xc.shape[1]} points but y_context has {yc.shape[1]}")
    if xc.shape[1] == 0:
        raise ValueError("the context is empty: a neural process needs at least one context point")
    if xt.shape[1] == 0:
        raise ValueError("x_target is empty: give at least one target point")
    if y_target is not None and arrays[3].shape[1] != xt.shape[1]:
        raise ValueError(f"x_target has {xt.shape[1]} points but y_target has {arrays[3].shape[1]}")
    return tuple(arrays)

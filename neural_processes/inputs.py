"""Checks of the public ``predict`` / ``log_likelihood`` inputs: point sets given as arrays
``(batch, n_points, features)`` (or unbatched ``(n_points, features)``).

Training and evaluation batches are ``pde_data.points.PointSets`` (padded tasks with context and
target masks); this module is only about what a user hands to a model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_point_sets"]


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
    if batch == {0}:
        raise ValueError("the inputs hold 0 tasks (batch size 0): give at least one task")
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

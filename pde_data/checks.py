"""Input checks shared by the PDE solvers: a clear error that names the argument and the problem
(dtype, shape, grid size, NaN / inf, times), never a silent wrong answer."""

from __future__ import annotations

import numpy as np

__all__ = ["batched_field", "increasing_times"]


def batched_field(x, name: str, dim: int, *, even: bool = False, min_size: int = 4
                  ) -> tuple[np.ndarray, bool]:
    """``x`` of shape ``(batch, s, ..., s)`` (``dim`` equal spatial axes) or one unbatched field
    ``(s, ..., s)`` -> ``(float64 array with a batch axis, whether it was unbatched)``.
    ``even``: the grid size must be even (spectral solvers); ``min_size``: the smallest ``s``."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    single = x.ndim == dim
    if single:
        x = x[None]
    if x.ndim != dim + 1 or len(set(x.shape[1:])) != 1:
        spatial = ", ".join(["s"] * dim)
        raise ValueError(f"{name} must have shape (batch, {spatial}) (or ({spatial})), got {x.shape}")
    s = x.shape[1]
    if even and (s < min_size or s % 2):
        raise ValueError(f"the grid size s must be even and >= {min_size}, got s={s}")
    if s < min_size:
        raise ValueError(f"grid too small: s={s}, need s >= {min_size}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x, single


def increasing_times(t) -> tuple[np.ndarray, bool]:
    """Output times: a scalar or a strictly increasing sequence of finite times >= 0 ->
    ``(1-D float64 array, whether a scalar was given)``."""
    scalar = np.ndim(t) == 0
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0) \
            or np.any(np.diff(t) <= 0):
        raise ValueError(f"times must be finite, >= 0 and strictly increasing, got {t.tolist()}")
    return t, scalar

"""Input checks shared by the PDE solvers: a clear error that names the argument and the problem
(dtype, shape, grid size, NaN / inf, times), never a silent wrong answer."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_STEPS", "NonFiniteSolution", "batched_field", "finite_solution",
           "increasing_times", "step_count"]

#: most time steps one solve may take between two output times (the count is a jit argument)
MAX_STEPS = 10**8


class NonFiniteSolution(FloatingPointError, ValueError):
    """A solver produced NaN or inf (a blow-up: a time step too large for the initial
    condition, inputs too extreme for float64): the run stops instead of storing it."""


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


def step_count(span: float, dt: float) -> int:
    """Time steps of at most ``dt`` over ``span`` (at least one); more than :data:`MAX_STEPS`
    is a ``ValueError`` naming the span and the step."""
    steps = math.ceil(span / dt - 1e-9)
    if not steps <= MAX_STEPS:
        raise ValueError(f"integrating over a time span of {span:.6g} with dt={dt:.6g} takes "
                         f"{steps:.3g} steps (at most {MAX_STEPS:.0e}); use fewer or shorter "
                         "times or a larger dt")
    return max(1, int(steps))


def finite_solution(out: np.ndarray, name: str, hint: str) -> np.ndarray:
    """``out`` (batch first) if it is finite, else :class:`NonFiniteSolution` naming the first
    sample that blew up and ``hint`` (what to change)."""
    ok = np.isfinite(out).reshape(out.shape[0], -1).all(axis=1)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise NonFiniteSolution(f"{name}: the solution of {bad.size} sample(s) (first: {bad[0]}) "
                                f"is NaN or inf; {hint}")
    return out

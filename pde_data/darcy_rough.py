"""Darcy flow with the MgNO paper's "rough" coefficients (its ``darcy20c6`` data).

Same equation and solver as :mod:`pde_data.darcy` (-div(a grad u) = 1, u = 0 on the boundary,
harmonic-mean finite volumes); only the coefficient distribution differs. The reference's files
``darcy_alpha2_tau5_512_{train,test}.mat`` were made with the FNO generator ("Zongyi Li's code")
on a 512-node grid with GRF alpha = 2, tau = 5 (cosine series, Neumann covariance): a field with
shorter correlation length than the FNO smooth set's tau = 3, so the thresholded coefficient
has about 5/3 as many interfaces per unit length. The FNO generator thresholds to 12 where the
GRF is >= 0 and 4 elsewhere (contrast 3); those are the defaults here (the FNO ``piececonst``
files use 12 / 3, see ``darcy``). ``a_high`` / ``a_low`` / ``grf_tau`` are options of
:func:`params` for the other contrasts of that family (``darcy15c10``: tau = 15, ...).

Grid: MgNO reads the 512-node solution at every second node (``[::2]``), 256 points that drop the
x = 1 edge. We keep the design's node grid with both ends: solve on 2 (s - 1) + 1 nodes (511 for
s = 256, the reference's spacing to within 0.2%) and subsample with stride 2.
"""

from __future__ import annotations

import sys

import numpy as np

from . import darcy

PDE = "darcy-rough"
VERSION = "1"
VARIABLES = {
    "a": {"long_name": "rough diffusion coefficient a(x, y) (thresholded GRF, tau = 5)",
          "units": "1"},
    "u": {"long_name": "solution u(x, y) of -div(a grad u) = 1, u = 0 on the boundary",
          "units": "1"},
}
GRF_ALPHA, GRF_TAU = 2.0, 5.0
A_HIGH, A_LOW = 12.0, 4.0


def params(resolution: int, solve_resolution: int | None = None, a_high: float = A_HIGH,
           a_low: float = A_LOW, grf_tau: float = GRF_TAU) -> dict:
    """Every parameter of a generated dataset (stored as attrs), validated and with defaults.

    Default ``solve_resolution``: 2 (resolution - 1) + 1 (256 -> 511, the reference's 512 -> 256)."""
    resolution = int(resolution)
    solve_resolution = 2 * (resolution - 1) + 1 if solve_resolution is None else int(solve_resolution)
    darcy.subsample_stride(resolution, solve_resolution)
    if not (np.isfinite(a_high) and np.isfinite(a_low) and a_high > 0 and a_low > 0):
        raise ValueError(f"a_high and a_low must be finite and > 0, got {a_high!r}, {a_low!r}")
    if not (np.isfinite(grf_tau) and grf_tau > 0):
        raise ValueError(f"grf_tau must be finite and > 0, got {grf_tau!r}")
    return {"resolution": resolution, "solve_resolution": solve_resolution, "f": 1.0,
            "grf_alpha": GRF_ALPHA, "grf_tau": float(grf_tau), "grf_boundary": "neumann",
            "a_high": float(a_high), "a_low": float(a_low),
            "scheme": "finite volume, harmonic-mean faces"}


def generate_arrays(keys, resolution: int, solve_resolution: int, a_high: float, a_low: float,
                    grf_tau: float, **_) -> dict:
    """float32 ``a``, ``u`` (n, s, s) for per-sample keys (n,): the chunk worker of ``generate``."""
    a = darcy.coefficient(keys, len(keys), solve_resolution, alpha=GRF_ALPHA, tau=grf_tau,
                          high=a_high, low=a_low)
    return darcy.solved_pairs(a, resolution, solve_resolution)


def memory_bytes(chunk: int, resolution: int, solve_resolution: int, **_) -> int:
    """Peak working memory of ``generate_arrays`` for ``chunk`` samples: the shared solver's."""
    return darcy.memory_bytes(chunk, resolution, solve_resolution)


def to_dataset(arrays: dict, attrs: dict):
    """xarray Dataset (``a``, ``u`` over (sample, x, y), node grid) in the docs/design.md schema."""
    return darcy.dataset(arrays, attrs, PDE, VERSION, VARIABLES)


def generate(key_or_seed, n: int, resolution: int = 256, solve_resolution: int | None = None,
             chunk_size: int = 32, progress: bool = False, **options):
    """Dataset of ``n`` rough-Darcy samples at ``resolution`` (reference: 256 from 512)."""
    from pde_data import chunked

    return chunked.generate(sys.modules[__name__], key_or_seed, n, resolution=resolution,
                            solve_resolution=solve_resolution, chunk_size=chunk_size,
                            progress=progress, **options)

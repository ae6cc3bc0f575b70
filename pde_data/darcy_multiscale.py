"""Darcy flow with the multiscale trigonometric coefficient of the MgNO / HANO papers (``a4f1``).

Same equation and solver as :mod:`pde_data.darcy` (-div(a grad u) = 1, u = 0 on the boundary,
harmonic-mean finite volumes); the coefficient is the random version of Owhadi's multiscale
example (gamblets, 2017) used by HANO, DCNO and MgNO:

    a(x, y) = prod_{k=1}^{K} (1 + cos(a_k pi (x + y)) / 2) (1 + sin(a_k pi (y - 3x)) / 2),
    a_k ~ U[2^(k-1), 2^k] independent,  K = 6,

so scale k oscillates a_k / 2 times per unit length along (1, 1) / sqrt 2 -- one octave per
factor, the finest with wavelength 2 / a_K >= 1/32 -- and a lies in [(1/2)^(2K), (3/2)^(2K)]
(contrast up to 5e5). Every factor pair carries the same variance of log a, whatever its scale:
log a has equal power in each octave (tests/pde_data/test_darcy_multiscale.py checks the
frequencies and the analytic mean of log a).

Grid: the reference data sit on 1023 nodes and MgNO reads every fourth (``[::4]``, 256 points);
we keep the design's node grid with both ends, solving on 4 (s - 1) + 1 nodes (1021 for s = 256)
and subsampling with stride 4. At the default size one sample is a 1.04 M-unknown sparse LU
(the first sample took 73 s, with the one-off ordering, on a loaded 2-core VM);
``solve_resolution`` trades that for accuracy.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
from jaxtyping import Float

from . import darcy

PDE = "darcy-multiscale"
VERSION = "1"
VARIABLES = {
    "a": {"long_name": "multiscale trigonometric coefficient a(x, y)", "units": "1"},
    "u": {"long_name": "solution u(x, y) of -div(a grad u) = 1, u = 0 on the boundary",
          "units": "1"},
}
SCALES = 6


@jax.jit
def _draw(keys, octaves):
    lo = 2.0 ** (octaves - 1.0)
    return jax.vmap(lambda k: lo + lo * jax.random.uniform(k, lo.shape))(keys)


def frequencies(keys, scales: int = SCALES) -> Float[np.ndarray, "n {scales}"]:
    """a_k ~ U[2^(k-1), 2^k], k = 1..scales, one row per key; (n, scales) float64."""
    return np.asarray(_draw(keys, np.arange(1, scales + 1, dtype=np.float32)), dtype=np.float64)


def coefficient_from_frequencies(freq: np.ndarray, resolution: int
                                 ) -> Float[np.ndarray, "n {resolution} {resolution}"]:
    """a on the node grid for frequencies ``freq`` (n, K): the product of the 2K factors."""
    x = np.linspace(0.0, 1.0, int(resolution))
    diag = (x[:, None] + x[None, :])[None]  # x + y
    skew = (x[None, :] - 3.0 * x[:, None])[None]  # y - 3x
    a = np.ones((freq.shape[0], resolution, resolution))
    for k in range(freq.shape[1]):
        w = np.pi * freq[:, k, None, None]
        a *= (1.0 + 0.5 * np.cos(w * diag)) * (1.0 + 0.5 * np.sin(w * skew))
    return a


def coefficient(keys, resolution: int, scales: int = SCALES
                ) -> Float[np.ndarray, "n {resolution} {resolution}"]:
    """Multiscale coefficients on the node grid, one per key; (n, s, s) float64."""
    return coefficient_from_frequencies(frequencies(keys, scales), resolution)


def params(resolution: int, solve_resolution: int | None = None, scales: int = SCALES) -> dict:
    """Every parameter of a generated dataset (stored as attrs), validated and with defaults.

    Default ``solve_resolution``: 4 (resolution - 1) + 1 (256 -> 1021, the reference's 1023 -> 256)."""
    resolution = int(resolution)
    solve_resolution = 4 * (resolution - 1) + 1 if solve_resolution is None else int(solve_resolution)
    darcy.subsample_stride(resolution, solve_resolution)
    if int(scales) != scales or not 1 <= scales <= 12:
        raise ValueError(f"scales must be an integer in 1..12, got {scales!r}")
    return {"resolution": resolution, "solve_resolution": solve_resolution, "f": 1.0,
            "scales": int(scales), "coefficient": "prod_k (1 + cos(a_k pi (x+y))/2) "
            "(1 + sin(a_k pi (y-3x))/2), a_k ~ U[2^(k-1), 2^k]",
            "scheme": "finite volume, harmonic-mean faces"}


def generate_arrays(keys, resolution: int, solve_resolution: int, scales: int, **_) -> dict:
    """float32 ``a``, ``u`` (n, s, s) for per-sample keys (n,): the chunk worker of ``generate``."""
    return darcy.solved_pairs(coefficient(keys, solve_resolution, scales), resolution,
                              solve_resolution)


def memory_bytes(chunk: int, resolution: int, solve_resolution: int, **_) -> int:
    """Peak working memory of ``generate_arrays`` for ``chunk`` samples: the shared solver's."""
    return darcy.memory_bytes(chunk, resolution, solve_resolution)


def to_dataset(arrays: dict, attrs: dict):
    """xarray Dataset (``a``, ``u`` over (sample, x, y), node grid) in the docs/design.md schema."""
    return darcy.dataset(arrays, attrs, PDE, VERSION, VARIABLES)


def generate(key_or_seed, n: int, resolution: int = 256, solve_resolution: int | None = None,
             chunk_size: int = 32, progress: bool = False, **options):
    """Dataset of ``n`` multiscale-Darcy samples at ``resolution`` (reference: 256 from 1023)."""
    from pde_data import chunked

    return chunked.generate(sys.modules[__name__], key_or_seed, n, resolution=resolution,
                            solve_resolution=solve_resolution, chunk_size=chunk_size,
                            progress=progress, **options)

"""Darcy flow -div(a grad u) = f on the unit square, u = 0 on the boundary (FNO benchmark data).

Discretisation: the node grid of docs/design.md (``s`` points per axis, spacing h = 1/(s-1), both
ends included), conservative 5-point finite volumes around every interior node with
harmonic-mean face coefficients a_{i+1/2,j} = 2 a_ij a_{i+1,j} / (a_ij + a_{i+1,j}) (second
order for smooth a, and the flux stays continuous across the jumps of a thresholded a):

    sum_faces a_face (u_P - u_neighbour) / h^2 = f_P.

The sparse pattern and its fill-reducing ordering (minimum degree on A^T + A) are built once per
grid size (vectorised numpy) and reused; each sample gets its own SuperLU factorisation in
symmetric mode without pivoting (the matrix is symmetric positive definite). Solved in float64, returned as float64; ``generate`` stores
float32. The coefficient of the FNO data: a GRF (alpha=2, tau=3, cosine series on the node grid,
see ``grf``) thresholded to 12 where positive and 3 elsewhere, f = 1, computed on a fine grid and
subsampled (421 -> 211, 141, 106, 85, ...).
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from einops import rearrange
from jaxtyping import Float, Float64, Real

from .checks import NonFiniteSolution, batched_field
from .schema import with_cf_metadata

PDE = "darcy"
VERSION = "1"
#: CF-style metadata of the stored variables (non-dimensional, hence units "1").
VARIABLES = {
    "a": {"long_name": "diffusion coefficient a(x, y)", "units": "1"},
    "u": {"long_name": "solution u(x, y) of -div(a grad u) = f, u = 0 on the boundary",
          "units": "1"},
}
GRF_ALPHA, GRF_TAU = 2.0, 3.0
A_HIGH, A_LOW = 12.0, 3.0


#: largest max(a) / min(a) of one sample the float64 solve is trusted with: beyond it the
#: system's condition number (about contrast * s^2) leaves no correct digits.
MAX_CONTRAST = 1e10


def _as_coefficient(a) -> tuple[np.ndarray, bool]:
    a, single = batched_field(a, "a", 2, min_size=3)  # s >= 3: one interior node
    if not np.all(a > 0):
        raise ValueError(f"a must be positive everywhere (min {a.min():.3g})")
    contrast = a.max(axis=(1, 2)) / a.min(axis=(1, 2))
    if np.any(contrast > MAX_CONTRAST):
        i = int(np.argmax(contrast))
        raise ValueError(
            f"a varies by a factor {contrast[i]:.3g} within sample {i} (min {a[i].min():.3g}, "
            f"max {a[i].max():.3g}); the solver is accurate up to a contrast of "
            f"{MAX_CONTRAST:.0e}")
    return a, single


def _power_of_two_scale(a: np.ndarray) -> np.ndarray:
    """Per sample, the power of two nearest to max(a): dividing by it is exact, so solving with
    ``a / scale`` and dividing ``u`` by ``scale`` changes no bit for ordinary coefficients and
    keeps the face coefficients of huge or tiny ones (1e300, 1e-300) from overflowing."""
    return np.exp2(np.round(np.log2(a.max(axis=(1, 2)))))[:, None, None]


@functools.lru_cache(maxsize=8)
def _pattern(s: int):
    """CSC pattern of the reordered interior operator, reused by every sample of grid size ``s``.

    Stencil entries are ordered [diag (m*m), x-links (m-1)*m, y-links m*(m-1)] with every link
    used twice (both triangles), m = s - 2; ``slot[e]`` is the position of entry e in the CSC data.
    Unknowns are renumbered once by the minimum-degree ordering of A^T + A (it depends on the
    pattern only), so each factorisation skips the ordering step: returns (indices, indptr, slot,
    order) with new unknown i = old unknown order[i].
    """
    m = s - 2
    idx = np.arange(m * m).reshape(m, m)
    rows = np.concatenate([idx.ravel(), idx[:-1, :].ravel(), idx[1:, :].ravel(),
                           idx[:, :-1].ravel(), idx[:, 1:].ravel()])
    cols = np.concatenate([idx.ravel(), idx[1:, :].ravel(), idx[:-1, :].ravel(),
                           idx[:, 1:].ravel(), idx[:, :-1].ravel()])
    laplacian = sp.csc_matrix((np.where(rows == cols, 4.0, -1.0), (rows, cols)),
                              shape=(m * m, m * m))
    position = spla.splu(laplacian, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                         options={"SymmetricMode": True}).perm_c
    order = np.argsort(position)
    entry = np.arange(rows.size, dtype=np.float64)
    csc = sp.csc_matrix((entry, (position[rows], position[cols])), shape=(m * m, m * m))
    csc.sort_indices()
    slot = np.empty(rows.size, dtype=np.int64)
    slot[csc.data.astype(np.int64)] = np.arange(rows.size)
    return csc.indices.copy(), csc.indptr.copy(), slot, order


def _face_coefficients(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic means on the x-faces (b, s-1, s) and y-faces (b, s, s-1)."""
    ax = 2.0 * a[:, 1:, :] * a[:, :-1, :] / (a[:, 1:, :] + a[:, :-1, :])
    ay = 2.0 * a[:, :, 1:] * a[:, :, :-1] / (a[:, :, 1:] + a[:, :, :-1])
    return ax, ay


def stencil_data(a: Float64[np.ndarray, "b s s"]) -> Float64[np.ndarray, "b nnz"]:
    """Values of the stencil entries (b, nnz) in ``_pattern`` order, scaled by 1/h^2."""
    s = a.shape[1]
    h2 = (1.0 / (s - 1)) ** 2
    ax, ay = _face_coefficients(a)
    # interior nodes (and the faces between them) flattened row-major, as the unknowns are
    diag = rearrange(ax[:, :-1, 1:-1] + ax[:, 1:, 1:-1] + ay[:, 1:-1, :-1] + ay[:, 1:-1, 1:],
                     "b i j -> b (i j)")
    lx = -rearrange(ax[:, 1:-1, 1:-1], "b i j -> b (i j)")  # faces between nodes i and i+1
    ly = -rearrange(ay[:, 1:-1, 1:-1], "b i j -> b (i j)")
    return np.concatenate([diag, lx, lx, ly, ly], axis=1) / h2


def _assemble_ordered(a: np.ndarray) -> tuple[list[sp.csc_matrix], np.ndarray]:
    s = a.shape[1]
    indices, indptr, slot, order = _pattern(s)
    data = np.empty((a.shape[0], slot.size))
    data[:, slot] = stencil_data(a)
    n = (s - 2) ** 2
    return [sp.csc_matrix((d, indices, indptr), shape=(n, n)) for d in data], order


def assemble(a) -> list[sp.csr_matrix]:
    """The finite-volume matrices of the interior unknowns (row-major numbering), one per sample."""
    a, _ = _as_coefficient(a)
    mats, order = _assemble_ordered(a)
    position = np.argsort(order)
    return [m[position][:, position].tocsr() for m in mats]


def _rhs(f, batch: int, s: int) -> np.ndarray:
    try:
        f = np.asarray(f, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"f must be a number or a real array, got {type(f).__name__}") from None
    if f.ndim == 0:
        if not np.isfinite(f):
            raise ValueError(f"f must be finite, got {float(f)}")
        return np.full((batch, (s - 2) ** 2), float(f))
    if f.ndim == 2:
        f = f[None]
    if f.ndim != 3 or f.shape[1:] != (s, s) or f.shape[0] not in (1, batch):
        raise ValueError(f"f must be a scalar, (s, s) or (batch, s, s) = ({batch}, {s}, {s}); "
                         f"got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("f contains NaN or inf")
    return np.broadcast_to(f[:, 1:-1, 1:-1], (batch, s - 2, s - 2)).reshape(batch, -1)


def solve(a: Real[np.ndarray, "*batch s s"], f: float | Real[np.ndarray, "... s s"] = 1.0
          ) -> Float64[np.ndarray, "*batch s s"]:
    """u of -div(a grad u) = f, u = 0 on the boundary; a: (batch, s, s) > 0 -> u (batch, s, s) float64.

    ``f`` is a scalar or an array on the same node grid ((s, s) or (batch, s, s)). A 2-D ``a``
    gives a 2-D ``u``.
    """
    a, single = _as_coefficient(a)
    b, s = a.shape[0], a.shape[1]
    rhs = _rhs(f, b, s)
    scale = _power_of_two_scale(a)
    u = np.zeros((b, s, s))
    mats, order = _assemble_ordered(a / scale)
    x = np.empty((s - 2) ** 2)
    for i, mat in enumerate(mats):
        try:
            lu = spla.splu(mat, permc_spec="NATURAL", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
        except RuntimeError as err:  # SuperLU: "Factor is exactly singular"
            raise ValueError(f"the Darcy system of sample {i} is singular ({err}); a spans "
                             f"[{a[i].min():.3g}, {a[i].max():.3g}]") from None
        x[order] = lu.solve(rhs[i][order])
        u[i, 1:-1, 1:-1] = rearrange(x, "(i j) -> i j", i=s - 2)
    with np.errstate(over="ignore", invalid="ignore"):
        u /= scale
    if not np.all(np.isfinite(u)):
        bad = int(np.flatnonzero(~np.isfinite(u).reshape(b, -1).all(axis=1))[0])
        raise NonFiniteSolution(
            f"the Darcy solution of sample {bad} overflows float64 (a in "
            f"[{a[bad].min():.3g}, {a[bad].max():.3g}], |f| up to {np.abs(rhs[bad]).max():.3g}): "
            "rescale f / a")
    return u[0] if single else u


def coefficient(key, n: int, resolution: int, alpha: float = GRF_ALPHA, tau: float = GRF_TAU,
                high: float = A_HIGH, low: float = A_LOW
                ) -> Float[np.ndarray, "{n} {resolution} {resolution}"]:
    """Thresholded GRF coefficients: GRF(alpha, tau, cosine series) -> ``high`` where > 0 else
    ``low``; (n, s, s). Defaults: the FNO Darcy data (alpha=2, tau=3, 12 / 3).

    ``key``: seed, one jax key or ``n`` per-sample keys (see ``grf.sample``).
    """
    from pde_data import grf

    g = np.asarray(grf.sample(key, n, resolution, dim=2, alpha=alpha, tau=tau,
                              boundary="neumann"))
    return np.where(g > 0, float(high), float(low))


def subsample_stride(resolution: int, solve_resolution: int) -> int:
    """Stride that takes the node grid of ``solve_resolution`` to ``resolution`` (both ends kept)."""
    if resolution < 3 or solve_resolution < resolution or (solve_resolution - 1) % (resolution - 1):
        raise ValueError(
            f"resolution {resolution} is not a subsampling of solve_resolution {solve_resolution}: "
            f"need (solve_resolution - 1) divisible by (resolution - 1), e.g. 421 -> 211, 141, 106, 85")
    return (solve_resolution - 1) // (resolution - 1)


def params(resolution: int, solve_resolution: int | None = None) -> dict:
    """Every parameter of a generated dataset (stored as attrs), validated and with defaults."""
    resolution = int(resolution)
    solve_resolution = resolution if solve_resolution is None else int(solve_resolution)
    subsample_stride(resolution, solve_resolution)
    return {"resolution": resolution, "solve_resolution": solve_resolution, "f": 1.0,
            "grf_alpha": GRF_ALPHA, "grf_tau": GRF_TAU, "grf_boundary": "neumann",
            "a_high": A_HIGH, "a_low": A_LOW, "scheme": "finite volume, harmonic-mean faces"}


def solved_pairs(a, resolution: int, solve_resolution: int) -> dict:
    """float32 ``a``, ``u`` (n, s, s): solve ``-div(a grad u) = 1`` for coefficients ``a`` on the
    solve grid and keep every ``stride``-th node (the stored grid); every Darcy generator's output."""
    stride = subsample_stride(resolution, solve_resolution)
    u = solve(a, 1.0)
    return {"a": a[:, ::stride, ::stride].astype(np.float32),
            "u": u[:, ::stride, ::stride].astype(np.float32)}


def generate_arrays(keys, resolution: int, solve_resolution: int, **_) -> dict:
    """float32 ``a``, ``u`` (n, s, s) for per-sample keys (n,): the chunk worker of ``generate``."""
    return solved_pairs(coefficient(keys, len(keys), solve_resolution), resolution,
                        solve_resolution)


def memory_bytes(chunk: int, resolution: int, solve_resolution: int, **_) -> int:
    """Estimated peak working memory of ``generate_arrays`` for ``chunk`` samples (the memory
    bound of ``generate``): about 170 bytes per solve-grid node and sample (float64 coefficient,
    face coefficients, stencil values of every sample's matrix, u) plus one sparse LU factor
    (nnz about 3.5 N log2 N for N unknowns, ~16 bytes each). Measured at 421: 429 MiB for 8
    samples against 430 MiB estimated."""
    nodes = solve_resolution ** 2
    return int(chunk * (170 * nodes + 8 * resolution ** 2) + 64 * nodes * math.log2(nodes))


def to_dataset(arrays: dict, attrs: dict):
    """xarray Dataset in the docs/design.md schema from the arrays of ``generate_arrays``."""
    return dataset(arrays, attrs, PDE, VERSION, VARIABLES)


def dataset(arrays: dict, attrs: dict, pde: str, version: str, variables: dict):
    """``a``, ``u`` (n, s, s) on the node grid as an xarray Dataset of ``pde`` (input ``a``, output
    ``u``): shared by every generator that solves with this module (darcy_rough, darcy_multiscale)."""
    import xarray as xr

    n, s = arrays["a"].shape[0], arrays["a"].shape[-1]
    x = np.linspace(0.0, 1.0, s)
    ds = xr.Dataset(
        {"a": (("sample", "x", "y"), arrays["a"]), "u": (("sample", "x", "y"), arrays["u"])},
        coords={"sample": np.arange(n), "x": x, "y": x},
        attrs={"pde": pde, "generator_version": version, "input_vars": ["a"],
               "output_vars": ["u"], **attrs})
    return with_cf_metadata(ds, variables)


def generate(key_or_seed, n: int, resolution: int, solve_resolution: int | None = None,
             chunk_size: int = 32, progress: bool = False):
    """Dataset of ``n`` Darcy samples (vars ``a``, ``u``) at ``resolution``, solved at
    ``solve_resolution`` (default: the same) and subsampled, e.g. 421 -> 85."""
    from pde_data import chunked

    return chunked.generate(sys.modules[__name__], key_or_seed, n, resolution=resolution,
                            solve_resolution=solve_resolution, chunk_size=chunk_size,
                            progress=progress)

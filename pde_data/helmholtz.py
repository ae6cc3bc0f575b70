"""Helmholtz -Laplacian u - (omega / c(x))^2 u = f on the unit square with Neumann data (MgNO data).

The MgNO paper's Helmholtz set (from de Hoop, Huang, Qian, Stuart, "The cost-accuracy trade-off in
operator learning with neural networks", 2022) maps the wave speed c to the wave field u of

    -Laplacian u - (omega^2 / c(x)^2) u = 0  in (0, 1)^2,      omega = 1000,
    du/dn = 1 on the top edge y = 1 where |x - 1/2| <= 0.15,    du/dn = 0 elsewhere on the boundary,

with c = 20 + tanh(a), a = sum_{m < 100} theta_m sqrt(lambda_m) phi_m(x), theta_m ~ N(0, 1): the
first 100 cosine modes phi_l = c_{l1} c_{l2} cos(pi l1 x) cos(pi l2 y) (c_0 = 1, c_l = sqrt(2),
l != (0, 0)) in the order of |l|^2, lambda_l = (pi^2 |l|^2 + tau^2)^(-2), tau = 3. The wavenumber
omega / c is about 50 (eight wavelengths across the square); the reference stored 101 x 101
nodes (bilinear finite elements, 100 x 100 cells).

Discretisation: the reference's own, written here from its description: bilinear (Q1) finite
elements on the node grid of docs/design.md (``s`` points per axis, spacing h = 1/(s-1), both
ends), (omega / c)^2 integrated with 3 x 3 Gauss points per cell (c evaluated there from its
series), the Neumann data as the edge load int g N_a (linear interpolation of the nodal g),
the source as int f N_a. Second order (tests/pde_data/test_helmholtz.py measures it on a
manufactured solution). The matrix is real, symmetric and indefinite; each sample is factorised
by SuperLU.

The data are the reference's *discrete* problem: at kh = 0.5 (101 nodes, k = 50) the phase
error of a second-order scheme, about k^3 h^2 / 24 ~ 0.5 rad across the square, is large against
the spacing of the closed cavity's resonances, so the 101-node solution differs from the
continuous one by O(1) (and a finer ``solve_resolution`` gives a different data set, not a more
faithful copy of the paper's). The default solves on the stored grid, as the reference did.
"""

from __future__ import annotations

import functools
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jaxtyping import Float64, Real

from .checks import NonFiniteSolution, batched_field
from .schema import with_cf_metadata

PDE = "helmholtz"
VERSION = "1"
VARIABLES = {
    "c": {"long_name": "wave speed c(x, y)", "units": "1"},
    "u": {"long_name": "wave field u(x, y) of -Laplacian u - (omega / c)^2 u = 0 with Neumann "
                       "data on the top edge", "units": "1"},
}
OMEGA = 1000.0
C_MEAN, C_SCALE = 20.0, 1.0
KL_MODES, KL_TAU, KL_ALPHA = 100, 3.0, 2.0
SOURCE_CENTRE, SOURCE_WIDTH = 0.5, 0.3
#: edges of the ``neumann`` argument: x = 0, x = 1, y = 0, y = 1
EDGES = ("x=0", "x=1", "y=0", "y=1")


GAUSS_POINTS = np.array([-math.sqrt(0.6), 0.0, math.sqrt(0.6)])  # 3-point Gauss on [-1, 1]
GAUSS_WEIGHTS = np.array([5.0, 8.0, 5.0]) / 9.0


def quadrature_points(s: int) -> Float64[np.ndarray, "{s}-1 3"]:
    """x of the 3 Gauss points in each of the s - 1 cells of the node grid, (s - 1, 3)."""
    h = 1.0 / (s - 1)
    return (np.arange(s - 1)[:, None] + 0.5 * (1.0 + GAUSS_POINTS)[None, :]) * h


def _shape_values() -> np.ndarray:
    """1-D linear shape functions at the Gauss points: L[a, q], a = left / right node."""
    return np.stack([0.5 * (1.0 - GAUSS_POINTS), 0.5 * (1.0 + GAUSS_POINTS)])


@functools.lru_cache(maxsize=8)
def _operators(s: int) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """Q1 stiffness K (of -Laplacian, natural Neumann), mass M and 1-D edge mass m (s, s).

    Tensor products of the 1-D matrices k1 = tridiag(-1, 2, -1) / h (1 / h in the corners) and
    m1 = h / 6 tridiag(1, 4, 1) (h / 3 in the corners): K = k1 (x) m1 + m1 (x) k1, M = m1 (x) m1,
    row-major unknowns u[i, j] = u(x_i, y_j)."""
    h = 1.0 / (s - 1)
    ends = np.ones(s)
    ends[0] = ends[-1] = 0.5
    k1 = sp.diags([-np.ones(s - 1), 2.0 * ends, -np.ones(s - 1)], [-1, 0, 1]) / h
    m1 = sp.diags([np.ones(s - 1), 4.0 * ends, np.ones(s - 1)], [-1, 0, 1]) * (h / 6.0)
    return (sp.kron(k1, m1) + sp.kron(m1, k1)).tocsr(), sp.kron(m1, m1).tocsr(), m1.tocsr()


@functools.lru_cache(maxsize=8)
def _element_pattern(s: int) -> tuple[np.ndarray, np.ndarray]:
    """Global (row, col) of every local entry of every cell: (s-1, s-1, 2, 2, 2, 2) each, local
    index order (row ax, row ay, col bx, col by)."""
    e = np.arange(s - 1)
    ix = e[:, None, None, None, None, None] + np.arange(2)[None, None, :, None, None, None]
    iy = e[None, :, None, None, None, None] + np.arange(2)[None, None, None, :, None, None]
    jx = e[:, None, None, None, None, None] + np.arange(2)[None, None, None, None, :, None]
    jy = e[None, :, None, None, None, None] + np.arange(2)[None, None, None, None, None, :]
    shape = (s - 1, s - 1, 2, 2, 2, 2)
    return np.broadcast_to(ix * s + iy, shape).ravel(), np.broadcast_to(jx * s + jy, shape).ravel()


def _weighted_mass(kappa_q: np.ndarray, s: int) -> sp.csc_matrix:
    """Mass matrix of kappa, sum_cells int kappa N_a N_b, from kappa at the 3 x 3 Gauss points of
    each cell, ``kappa_q`` (s-1, 3, s-1, 3) (the reference's quadrature)."""
    h = 1.0 / (s - 1)
    lq = _shape_values()
    w = GAUSS_WEIGHTS
    local = np.einsum("ipjq,p,q,ap,bp,cq,dq->ijacbd", kappa_q, w, w, lq, lq, lq, lq) * (h / 2) ** 2
    rows, cols = _element_pattern(s)
    return sp.csc_matrix((local.ravel(), (rows, cols)), shape=(s * s, s * s))


def _interpolate_to_quadrature(c: np.ndarray) -> np.ndarray:
    """Bilinear (Q1) interpolation of nodal values (s, s) to the Gauss points (s-1, 3, s-1, 3)."""
    lq = _shape_values()
    corners = np.stack([np.stack([c[:-1, :-1], c[:-1, 1:]]), np.stack([c[1:, :-1], c[1:, 1:]])])
    return np.einsum("abij,ap,bq->ipjq", corners, lq, lq)


def reference_neumann(s: int) -> Float64[np.ndarray, "4 {s}"]:
    """The reference's boundary data: du/dn = 1 on y = 1 where |x - 1/2| <= 0.15, else 0."""
    x = np.linspace(0.0, 1.0, s)
    g = np.zeros((4, s))
    g[3] = (np.abs(x - SOURCE_CENTRE) <= SOURCE_WIDTH / 2 + 1e-12).astype(np.float64)
    return g


def _as_speed(c, name: str = "c") -> np.ndarray:
    if not np.all(c > 0):
        raise ValueError(f"the wave speed {name} must be positive everywhere (min {c.min():.3g})")
    return c


def _source(f, batch: int, s: int) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 0:
        return np.full((batch, s, s), float(f))
    f = f[None] if f.ndim == 2 else f
    if f.ndim != 3 or f.shape[1:] != (s, s) or f.shape[0] not in (1, batch):
        raise ValueError(f"f must be a scalar, (s, s) or (batch, s, s) = ({batch}, {s}, {s}); "
                         f"got shape {f.shape}")
    return np.broadcast_to(f, (batch, s, s))


def solve(c: Real[np.ndarray, "*batch s s"], omega: float = OMEGA,
          f: float | Real[np.ndarray, "... s s"] = 0.0,
          neumann: Real[np.ndarray, "4 s"] | None = None,
          c_quadrature: Real[np.ndarray, "*batch s-1 3 s-1 3"] | None = None
          ) -> Float64[np.ndarray, "*batch s s"]:
    """u of -Laplacian u - (omega / c)^2 u = f, du/dn = g on the boundary; float64, (batch, s, s).

    Bilinear (Q1) finite elements on the node grid, 3 x 3 Gauss points per cell (the reference's
    discretisation). ``c``: wave speed at the nodes (batch, s, s) > 0, interpolated bilinearly
    to the Gauss points unless ``c_quadrature`` gives it there ((batch, s-1, 3, s-1, 3), e.g.
    from :func:`wave_speed_at`); a 2-D ``c`` gives a 2-D ``u``. ``f``: source at the nodes
    (interpolated). ``neumann``: g on the edges x=0, x=1, y=0, y=1 as (4, s) (default: the
    reference's source on y = 1, :func:`reference_neumann`). Raises ``ValueError`` when the
    discrete operator is singular (omega^2 / c^2 at a Neumann eigenvalue of the grid).
    """
    c, single = batched_field(c, "c", 2, min_size=3)
    _as_speed(c)
    b, s = c.shape[0], c.shape[1]
    if c_quadrature is None:
        cq = np.stack([_interpolate_to_quadrature(ci) for ci in c])
    else:
        cq = np.asarray(c_quadrature, dtype=np.float64).reshape(-1, s - 1, 3, s - 1, 3)
        if cq.shape[0] != b or not np.all(np.isfinite(cq)):
            raise ValueError(f"c_quadrature must be finite, ({b}, {s - 1}, 3, {s - 1}, 3); "
                             f"got shape {np.shape(c_quadrature)}")
        _as_speed(cq, "c_quadrature")
    if not (math.isfinite(omega) and omega >= 0):
        raise ValueError(f"omega must be finite and >= 0, got {omega!r}")
    g = reference_neumann(s) if neumann is None else np.asarray(neumann, dtype=np.float64)
    if g.shape != (4, s) or not np.all(np.isfinite(g)):
        raise ValueError(f"neumann must be finite values on the 4 edges {EDGES}, shape (4, {s}); "
                         f"got shape {g.shape}")
    rhs_f = _source(f, b, s)
    if not np.all(np.isfinite(rhs_f)):
        raise ValueError("f contains NaN or inf")
    stiff, mass, edge = _operators(s)
    load = np.zeros((s, s))
    load[0, :] += edge @ g[0]
    load[-1, :] += edge @ g[1]
    load[:, 0] += edge @ g[2]
    load[:, -1] += edge @ g[3]
    u = np.empty((b, s, s))
    for i in range(b):
        system = (stiff - _weighted_mass((omega / cq[i]) ** 2, s)).tocsc()
        rhs = mass @ rhs_f[i].ravel() + load.ravel()
        try:
            u[i] = spla.splu(system, permc_spec="MMD_AT_PLUS_A").solve(rhs).reshape(s, s)
        except RuntimeError as err:  # SuperLU: "Factor is exactly singular"
            raise ValueError(f"the Helmholtz system of sample {i} is singular ({err}): "
                             f"omega / c hits a Neumann eigenvalue of the grid") from None
    if not np.all(np.isfinite(u)):
        raise NonFiniteSolution("the Helmholtz solution is not finite: omega / c is at a "
                                "resonance of the grid; change omega or the grid")
    return u[0] if single else u


@functools.lru_cache(maxsize=4)
def kl_modes(count: int = KL_MODES) -> np.ndarray:
    """The reference's KL index pairs (l1, l2) != (0, 0), ordered by l1^2 + l2^2 (ties: l1, then
    l2 ascending), first ``count``; (count, 2) ints."""
    n = math.isqrt(2 * count) + 2
    pairs = [(i, j) for i in range(n + 1) for j in range(n + 1) if (i, j) != (0, 0)]
    pairs.sort(key=lambda p: p[0] ** 2 + p[1] ** 2)  # stable: keeps (i, j) order on ties
    return np.asarray(pairs[:count], dtype=np.int64)


def kl_basis(x: np.ndarray, count: int = KL_MODES, tau: float = KL_TAU, alpha: float = KL_ALPHA
             ) -> tuple[np.ndarray, np.ndarray]:
    """(phi (len(x), m, 2), sqrt(lambda) (m,)) of the first ``count`` KL modes at the 1-D points
    ``x``: phi[:, m, d] = c_l cos(pi l x) for l = the m-th mode's index on axis d (c_0 = 1,
    c_l = sqrt(2)); the field on the tensor grid x (x) y is ``(phi_x * theta sqrt_lam) @ phi_y.T``."""
    modes = kl_modes(count)
    x = np.asarray(x, dtype=np.float64)
    phi = np.where(modes[None] == 0, 1.0, np.sqrt(2.0)) * np.cos(np.pi * x[:, None, None] * modes[None])
    sqrt_lam = (np.pi**2 * (modes**2).sum(axis=1) + tau**2) ** (-alpha / 2)
    return phi, sqrt_lam


def _kl_fields(keys, phi_x, phi_y, sqrt_lam):
    """Fields (n, p, p) for keys (n,): theta ~ N(0, 1) from each key, the sum in numpy."""
    theta = np.asarray(_normals(keys, sqrt_lam.shape[0]), dtype=np.float64)
    return np.einsum("im,nm,jm->nij", phi_x, theta * sqrt_lam, phi_y)


@functools.partial(jax.jit, static_argnums=1)
def _normals(keys, m):
    return jax.vmap(lambda k: jax.random.normal(k, (m,), dtype=jnp.float64))(keys)


def wave_speed_at(keys, x: np.ndarray) -> Float64[np.ndarray, "n p p"]:
    """The reference's wave speed c = 20 + tanh(a) on the tensor grid x (x) x, one field per key
    (the same key gives the same field at any points); (n, len(x), len(x))."""
    phi, sqrt_lam = kl_basis(x)
    with jax.enable_x64(True):
        a = _kl_fields(keys, phi[..., 0], phi[..., 1], sqrt_lam)
    return C_MEAN + C_SCALE**2 * np.tanh(a)


def wave_speed(keys, resolution: int) -> Float64[np.ndarray, "n {resolution} {resolution}"]:
    """The reference's wave speeds at the nodes of the ``resolution`` grid; (n, s, s)."""
    return wave_speed_at(keys, np.linspace(0.0, 1.0, int(resolution)))


def params(resolution: int, solve_resolution: int | None = None, omega: float = OMEGA) -> dict:
    """Every parameter of a generated dataset (stored as attrs), validated and with defaults.

    Default ``solve_resolution``: ``resolution`` (the reference solved on its 101-node grid)."""
    from .darcy import subsample_stride

    resolution = int(resolution)
    solve_resolution = resolution if solve_resolution is None else int(solve_resolution)
    subsample_stride(resolution, solve_resolution)
    if not (math.isfinite(omega) and omega > 0):
        raise ValueError(f"omega must be finite and > 0, got {omega!r}")
    return {"resolution": resolution, "solve_resolution": solve_resolution, "omega": float(omega),
            "c_mean": C_MEAN, "c_scale": C_SCALE, "kl_modes": KL_MODES, "kl_tau": KL_TAU,
            "kl_alpha": KL_ALPHA, "source": "du/dn = 1 on y = 1, |x - 0.5| <= 0.15; 0 elsewhere",
            "scheme": "bilinear finite elements, 3 x 3 Gauss points per cell"}


def generate_arrays(keys, resolution: int, solve_resolution: int, omega: float, **_) -> dict:
    """float32 ``c``, ``u`` (n, s, s) for per-sample keys (n,): the chunk worker of ``generate``.

    c enters the solve at the Gauss points, evaluated from its series (as the reference did)."""
    from .darcy import subsample_stride

    stride = subsample_stride(resolution, solve_resolution)
    s = solve_resolution
    c = wave_speed(keys, s)
    cq = wave_speed_at(keys, quadrature_points(s).ravel()).reshape(len(c), s - 1, 3, s - 1, 3)
    u = solve(c, omega, c_quadrature=cq)
    return {"c": c[:, ::stride, ::stride].astype(np.float32),
            "u": u[:, ::stride, ::stride].astype(np.float32)}


def memory_bytes(chunk: int, resolution: int, solve_resolution: int, **_) -> int:
    """Estimated peak working memory of ``generate_arrays`` for ``chunk`` samples: c at the nodes
    and the 9 Gauss points of each cell and u in float64 (~90 bytes per node and sample), one
    system's element matrices, matrix and LU factor (~300 bytes per node + 16 bytes per factor
    entry, nnz about 4 N log2 N)."""
    nodes = solve_resolution**2
    return int(chunk * (90 * nodes + 8 * resolution**2) + 300 * nodes
               + 64 * nodes * math.log2(nodes))


def to_dataset(arrays: dict, attrs: dict):
    """xarray Dataset (``c``, ``u`` over (sample, x, y), node grid) in the docs/design.md schema."""
    import xarray as xr

    n, s = arrays["c"].shape[0], arrays["c"].shape[-1]
    x = np.linspace(0.0, 1.0, s)
    ds = xr.Dataset(
        {"c": (("sample", "x", "y"), arrays["c"]), "u": (("sample", "x", "y"), arrays["u"])},
        coords={"sample": np.arange(n), "x": x, "y": x},
        attrs={"pde": PDE, "generator_version": VERSION, "input_vars": ["c"],
               "output_vars": ["u"], **attrs})
    return with_cf_metadata(ds, VARIABLES)


def generate(key_or_seed, n: int, resolution: int = 101, solve_resolution: int | None = None,
             chunk_size: int = 32, progress: bool = False):
    """Dataset of ``n`` Helmholtz samples (vars ``c``, ``u``) at ``resolution`` (reference: 101)."""
    from pde_data import chunked

    return chunked.generate(sys.modules[__name__], key_or_seed, n, resolution=resolution,
                            solve_resolution=solve_resolution, chunk_size=chunk_size,
                            progress=progress)

"""Gaussian random fields N(0, C), C = sigma^2 (-Laplacian + tau^2 I)^(-alpha), sampled spectrally.

The Karhunen-Loeve expansion u = sum_k sqrt(lambda_k) xi_k phi_k with xi_k ~ N(0, 1) i.i.d. and
(lambda_k, phi_k) the eigenpairs of C, truncated to the modes a grid of ``s`` points per axis
carries. Three boundary conditions fix the eigenfunctions (docs/design.md grids):

- ``"periodic"``: unit torus, ``s`` points spacing ``1/s``; phi_k = exp(2 pi i k.x) with the
  grid's FFT frequencies, lambda_k = sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha). Sampled by
  colouring white noise in Fourier space (exact covariance on the grid's frequency set).
- ``"neumann"``: node grid ``x_j = j/(s-1)`` with both ends, cosine series phi_k = prod_d
  c_k cos(pi k_d x_d), c_0 = 1, c_k = sqrt(2), k_d = 0..s-1, lambda_k = sigma^2 (pi^2 |k|^2 +
  tau^2)^(-alpha), the covariance with Neumann boundary conditions. This is the field of the FNO
  Darcy data (their MATLAB ``GRF`` sums the same cosine series by an inverse DCT-II, i.e. at the
  cell centres (2j+1)/(2s); here it is evaluated at the nodes j/(s-1), by an s x s matrix per
  axis) and the default for Dirichlet-problem coefficients: it is not forced to vanish on the
  boundary.
- ``"dirichlet"``: node grid, sine series phi_k = prod_d sqrt(2) sin(pi k_d x_d), k_d = 1..s-2;
  the field is zero on the boundary (for priors of functions that satisfy u = 0 there).

``sigma`` defaults to tau^(alpha - d/2) (the FNO convention, ``sigma = tau**(0.5*(2*alpha -
dim))``) and ``zero_mean=True`` drops the constant mode as the FNO generators do.
``to_dataarray`` wraps samples as an ``xarray.DataArray`` on their grid, with CF-style
``long_name`` / ``units`` and the field's parameters as attributes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Float64

BOUNDARIES = ("periodic", "neumann", "dirichlet")
#: CF-style metadata of a sampled field (non-dimensional, hence units "1").
FIELD_ATTRS = {"long_name": "Gaussian random field sample", "units": "1"}


def default_sigma(alpha: float, tau: float, dim: int) -> float:
    """FNO's amplitude convention sigma = tau^(alpha - dim/2)."""
    try:
        return float(tau) ** (float(alpha) - 0.5 * dim)
    except OverflowError:
        raise ValueError(f"sigma = tau^(alpha - dim/2) overflows for alpha={alpha!r}, "
                         f"tau={tau!r}; give sigma explicitly or smaller alpha / tau") from None


def _check(resolution: int, dim: int, alpha: float, tau: float, sigma: float | None,
           boundary: str) -> float:
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; expected one of {BOUNDARIES}")
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim!r}")
    if int(resolution) != resolution or resolution < (4 if boundary == "dirichlet" else 2):
        raise ValueError(f"resolution must be an integer >= 2 (>= 4 for dirichlet), "
                         f"got {resolution!r}")
    for name, v in (("alpha", alpha), ("tau", tau)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be finite and > 0, got {v!r}")
    sigma = default_sigma(alpha, tau, dim) if sigma is None else float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    return sigma


def wavenumbers(resolution: int, boundary: str) -> np.ndarray:
    """Integer mode indices of one axis: FFT frequencies (periodic), 0..s-1 (cosine), 1..s-2 (sine)."""
    if boundary == "periodic":
        return np.fft.fftfreq(resolution, 1.0 / resolution)
    if boundary == "neumann":
        return np.arange(resolution, dtype=np.float64)
    return np.arange(1, resolution - 1, dtype=np.float64)


def eigenvalues(resolution: int, dim: int = 2, alpha: float = 2.0, tau: float = 3.0,
                sigma: float | None = None, boundary: str = "periodic",
                zero_mean: bool = True) -> np.ndarray:
    """Covariance eigenvalues lambda_k on the grid's mode set, shape (m,)*dim (float64).

    Periodic: indexed like ``np.fft.fftn`` output; node grids: by (k_1, ..., k_d) of the series.
    """
    sigma = _check(resolution, dim, alpha, tau, sigma, boundary)
    k = wavenumbers(resolution, boundary)
    scale = 2.0 * np.pi if boundary == "periodic" else np.pi
    k2 = sum(np.meshgrid(*([k**2] * dim), indexing="ij"))
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        lam = np.float64(sigma) ** 2 * (scale**2 * k2 + tau**2) ** (-alpha)
        if not (np.all(np.isfinite(lam)) and np.all(lam > 0)):
            # in logs: sigma^2 and (.)^(-alpha) alone over- or underflow for large alpha / sigma
            lam = np.exp(2.0 * math.log(sigma) - alpha * np.log(scale**2 * k2 + tau**2))
    if zero_mean and boundary != "dirichlet":
        lam[(0,) * dim] = 0.0
    if not np.all(np.isfinite(lam)) or lam.max() * resolution**dim > np.finfo(np.float32).max:
        raise ValueError(f"the GRF variance overflows (alpha={alpha!r}, tau={tau!r}, "
                         f"sigma={sigma!r}): use a smaller sigma or tau")
    if not lam.max() > 0:
        raise ValueError(f"the GRF variance underflows to 0 for every mode (alpha={alpha!r}, "
                         f"tau={tau!r}, sigma={sigma!r}): the fields would be identically zero; "
                         "use a smaller alpha or a larger sigma")
    return lam


def basis(resolution: int, boundary: str) -> Float64[np.ndarray, "{resolution} modes"]:
    """One axis of the node-grid series: phi[j, k] = phi_k(x_j), x_j = j/(s-1) (float64)."""
    if boundary not in ("neumann", "dirichlet"):
        raise ValueError(f"basis is defined for node grids (neumann, dirichlet), not {boundary!r}")
    x = np.linspace(0.0, 1.0, resolution)
    k = wavenumbers(resolution, boundary)
    if boundary == "neumann":
        phi = np.sqrt(2.0) * np.cos(np.pi * np.outer(x, k))
        phi[:, 0] = 1.0
    else:
        phi = np.sqrt(2.0) * np.sin(np.pi * np.outer(x, k))
        phi[0] = phi[-1] = 0.0  # exact zeros (sin(pi k) is only ~1e-16)
    return phi


def _one_periodic(key, sqrt_lam):
    s, dim = sqrt_lam.shape[0], sqrt_lam.ndim
    z = jax.random.normal(key, (s,) * dim, dtype=sqrt_lam.dtype)
    # White noise has E|fft(z)_k|^2 = s^d, so this colouring gives Cov = sum_k lambda_k e^{ik(x-y)}.
    zh = jnp.fft.rfftn(z)
    return jnp.fft.irfftn(zh * sqrt_lam[..., : s // 2 + 1], s=(s,) * dim) * math.sqrt(s**dim)


def _one_series(key, sqrt_lam, phi):
    xi = jax.random.normal(key, sqrt_lam.shape, dtype=sqrt_lam.dtype) * sqrt_lam
    return phi @ xi if xi.ndim == 1 else phi @ xi @ phi.T


@jax.jit
def _sample_periodic(keys, sqrt_lam):
    return jax.vmap(_one_periodic, in_axes=(0, None))(keys, sqrt_lam)


@jax.jit
def _sample_series(keys, sqrt_lam, phi):
    return jax.vmap(_one_series, in_axes=(0, None, None))(keys, sqrt_lam, phi)


def sample_keys(seed_or_key, start: int, stop: int) -> jax.Array:
    """Per-sample keys fold_in(key, i), i in [start, stop): sample i never depends on chunking."""
    key = jax.random.key(int(seed_or_key)) if isinstance(seed_or_key, (int, np.integer)) \
        else seed_or_key
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(start, stop))


def sample(key, n: int, resolution: int, dim: int = 2, alpha: float = 2.0, tau: float = 3.0,
           sigma: float | None = None, boundary: str = "periodic", zero_mean: bool = True,
           dtype=jnp.float32
           ) -> Float[Array, "{n} {resolution}"] | Float[Array, "{n} {resolution} {resolution}"]:
    """``n`` fields on the grid of ``boundary``, shape (n, s) or (n, s, s).

    ``key``: an int seed, one jax key (split into ``n``) or a batch of ``n`` keys (one per sample,
    e.g. from ``sample_keys``). ``dtype=np.float64`` computes in double precision.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(key, (int, np.integer)):
        key = jax.random.key(int(key))
    keys = key if key.ndim == 1 else jax.random.split(key, int(n))
    if keys.shape != (n,):
        raise ValueError(f"expected one key or {n} keys, got keys of shape {keys.shape}")
    lam = eigenvalues(resolution, dim, alpha, tau, sigma, boundary, zero_mean)
    with jax.enable_x64(np.dtype(dtype) == np.float64):
        sqrt_lam = jnp.asarray(np.sqrt(lam), dtype=dtype)
        if boundary == "periodic":
            return _sample_periodic(keys, sqrt_lam)
        phi = jnp.asarray(basis(resolution, boundary), dtype=dtype)
        return _sample_series(keys, sqrt_lam, phi)


def to_dataarray(fields: Float[Array | np.ndarray, "n s *more"], boundary: str = "periodic",
                 name: str = "f", **params):
    """``fields`` (n, s) or (n, s, s) from :func:`sample` as an ``xarray.DataArray`` over
    ``(sample, x[, y])`` with the coordinates of ``boundary``'s grid (periodic ``j/s``, node
    ``j/(s-1)``), CF ``long_name`` / ``units`` on it and its coordinates, and ``boundary`` plus
    ``params`` (e.g. ``alpha``, ``tau``, ``sigma``) as attributes."""
    import xarray as xr

    from pde_data.coordinates import grid_axis
    from pde_data.schema import COORDINATE_ATTRS, SAMPLE, SPATIAL_DIMS

    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; expected one of {BOUNDARIES}")
    values = np.asarray(fields)
    if values.ndim not in (2, 3) or len(set(values.shape[1:])) != 1:
        raise ValueError(f"fields must be (n, s) or (n, s, s), got shape {values.shape}")
    dims = (SAMPLE, *SPATIAL_DIMS[: values.ndim - 1])
    axis = grid_axis(values.shape[1], periodic=boundary == "periodic")
    coords = {SAMPLE: (SAMPLE, np.arange(values.shape[0]), COORDINATE_ATTRS[SAMPLE])}
    coords.update({d: (d, axis, COORDINATE_ATTRS[d]) for d in dims[1:]})
    return xr.DataArray(values, dims=dims, coords=coords, name=name,
                        attrs={**FIELD_ATTRS, "boundary": boundary, **params})

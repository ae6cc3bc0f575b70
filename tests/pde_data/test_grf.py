"""GRF samples against their covariance: per-mode variances and closed-form Green's functions."""

import jax
import numpy as np
import pytest

from pde_data import grf


def _ratio_bound(n, real=False):
    # Relative spread of an n-sample variance estimate: chi^2 with n (real) or 2n (complex) dof.
    return 5.0 * np.sqrt((2.0 if real else 1.0) / n)


def test_periodic_2d_per_mode_variance_matches_covariance():
    n, s, alpha, tau, sigma = 4000, 16, 2.5, 7.0, 3.0
    u = np.asarray(grf.sample(0, n, s, dim=2, alpha=alpha, tau=tau, sigma=sigma,
                              boundary="periodic", zero_mean=False, dtype=np.float64))
    power = np.mean(np.abs(np.fft.fft2(u)) ** 2, axis=0) / s**4  # E|c_k|^2 of the Fourier series
    k = np.fft.fftfreq(s, 1.0 / s)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    lam = sigma**2 * (4 * np.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha)
    ratio = power / lam
    real = (np.abs(kx) % (s // 2) == 0) & (np.abs(ky) % (s // 2) == 0)  # k == -k modes are real
    assert np.all(np.abs(ratio[~real] - 1) < _ratio_bound(n))
    assert np.all(np.abs(ratio[real] - 1) < _ratio_bound(n, real=True))
    assert abs(ratio.mean() - 1) < 0.01  # 256 nearly independent estimates


def test_neumann_2d_per_mode_variance_and_zero_mean():
    n, s, alpha, tau = 3000, 9, 2.0, 3.0
    u = np.asarray(grf.sample(1, n, s, dim=2, alpha=alpha, tau=tau, boundary="neumann",
                              dtype=np.float64))
    # Cosine coefficients by least squares on the node grid (the basis is written out here).
    x = np.linspace(0, 1, s)
    k = np.arange(s)
    phi = np.cos(np.pi * np.outer(x, k)) * np.where(k == 0, 1.0, np.sqrt(2.0))
    pinv = np.linalg.inv(phi)
    coef = np.einsum("ki,nij,lj->nkl", pinv, u, pinv)
    var = coef.var(axis=0) + coef.mean(axis=0) ** 2
    kx, ky = np.meshgrid(k, k, indexing="ij")
    lam = tau ** (2 * alpha - 2) * (np.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha)
    assert var[0, 0] < 1e-20  # FNO convention: constant mode removed
    ratio = var.ravel()[1:] / lam.ravel()[1:]
    assert np.all(np.abs(ratio - 1) < _ratio_bound(n, real=True))


def _empirical_cov(u):
    return u.T @ u / u.shape[0]


@pytest.mark.parametrize("boundary", ["periodic", "neumann", "dirichlet"])
def test_1d_covariance_is_the_greens_function(boundary):
    # alpha = 1: C = (-d^2/dx^2 + tau^2)^-1 has a closed-form kernel for each boundary condition.
    n, s, tau = 20000, 64, 4.0
    u = np.asarray(grf.sample(2, n, s, dim=1, alpha=1.0, tau=tau, sigma=1.0, boundary=boundary,
                              zero_mean=False, dtype=np.float64))
    cov = _empirical_cov(u)
    if boundary == "periodic":
        x = np.arange(s) / s
        r = np.abs(x[:, None] - x[None, :])
        green = np.cosh(tau * (r - 0.5)) / (2 * tau * np.sinh(tau / 2))
    else:
        x = np.linspace(0, 1, s)
        lo, hi = np.minimum.outer(x, x), np.maximum.outer(x, x)
        if boundary == "neumann":
            green = np.cosh(tau * lo) * np.cosh(tau * (1 - hi)) / (tau * np.sinh(tau))
        else:
            green = np.sinh(tau * lo) * np.sinh(tau * (1 - hi)) / (tau * np.sinh(tau))
            assert np.all(u[:, [0, -1]] == 0)
    scale = green.max()
    # Sampling error ~ scale * sqrt(2/n) ~ 1%; series truncation at s modes ~ 2/(pi^2 s) ~ 0.3%.
    assert np.abs(cov - green).max() < 0.05 * scale
    assert np.abs(np.diag(cov) - np.diag(green)).mean() < 0.02 * scale


def test_reproducible_and_independent_of_batching():
    keys = grf.sample_keys(7, 0, 6)
    a = np.asarray(grf.sample(keys, 6, 32, boundary="neumann"))
    b = np.asarray(grf.sample(keys[2:5], 3, 32, boundary="neumann"))
    np.testing.assert_array_equal(a[2:5], b)
    np.testing.assert_array_equal(a, np.asarray(grf.sample(grf.sample_keys(7, 0, 6), 6, 32,
                                                           boundary="neumann")))
    assert not np.allclose(a, np.asarray(grf.sample(grf.sample_keys(8, 0, 6), 6, 32,
                                                    boundary="neumann")))
    u = grf.sample(jax.random.key(0), 3, 16, dim=1)
    assert u.shape == (3, 16) and u.dtype == np.float32


def test_default_sigma_is_the_fno_convention():
    assert grf.default_sigma(2.5, 7.0, 2) == pytest.approx(7.0**1.5)
    assert grf.default_sigma(2.0, 3.0, 2) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"boundary": "robin"}, "unknown boundary"), ({"dim": 3}, "dim"),
     ({"alpha": -1.0}, "alpha"), ({"tau": float("nan")}, "tau"), ({"sigma": 0.0}, "sigma"),
     ({"n": 0}, "n must")])
def test_bad_arguments_are_named(kwargs, match):
    args = {"key": 0, "n": 2, "resolution": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        grf.sample(**args)

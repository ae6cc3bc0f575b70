"""GP sampling, exact posterior and marginal likelihood against independent references."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from pde_data.priors import gp, kernels


@pytest.mark.parametrize("name", list(kernels.KERNELS))
def test_empirical_covariance_of_samples_matches_kernel(name):
    x = jnp.linspace(0, 1, 6)[:, None]
    kern = kernels.get_kernel(name, lengthscale=0.3, outputscale=1.5)
    n_draws = 20000
    xb = jnp.broadcast_to(x, (n_draws, 6, 1))
    y = np.asarray(jax.jit(lambda k: gp.sample_gp(k, xb, kern, noise_var=0.1))(jax.random.key(0)))
    emp = np.cov(y.T)
    target = np.asarray(kern(x, x)) + 0.1 * np.eye(6)
    # standard error of a covariance estimate ~ sqrt((s_ii s_jj + s_ij^2) / n) <= 1.6 * 1.4 / 141
    np.testing.assert_allclose(emp, target, atol=0.06)
    np.testing.assert_allclose(y.mean(0), 0.0, atol=0.05)


def test_same_key_same_sample():
    x = jax.random.uniform(jax.random.key(1), (3, 10, 2))
    kern = partial(kernels.rbf, lengthscale=0.2)
    a = gp.sample_gp(jax.random.key(5), x, kern, 1e-4)
    b = gp.sample_gp(jax.random.key(5), x, kern, 1e-4)
    c = gp.sample_gp(jax.random.key(6), x, kern, 1e-4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def _numpy_posterior(xc, yc, xt, l, s, noise):
    def k(a, b):
        return s * np.exp(-0.5 * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / l**2)

    kcc = k(xc, xc) + noise * np.eye(len(xc))
    kct = k(xc, xt)
    mean = kct.T @ np.linalg.solve(kcc, yc)
    var = s - np.einsum("ij,ij->j", kct, np.linalg.solve(kcc, kct)) + noise
    return mean, var


def test_posterior_matches_direct_solve_batched():
    rng = np.random.default_rng(0)
    xc = rng.uniform(0, 1, (3, 8, 2))
    yc = rng.normal(size=(3, 8))
    xt = rng.uniform(0, 1, (3, 5, 2))
    ls = np.array([0.2, 0.4, 0.7])
    noise = np.array([1e-2, 1e-3, 0.1])
    mean, var = gp.gp_posterior(
        xc.astype(np.float32), yc.astype(np.float32), xt.astype(np.float32),
        partial(kernels.rbf, lengthscale=ls, outputscale=1.3), noise,
    )
    for b in range(3):
        m, v = _numpy_posterior(xc[b], yc[b], xt[b], ls[b], 1.3, noise[b])
        np.testing.assert_allclose(mean[b], m, rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(var[b], v, rtol=2e-3, atol=1e-4)


def test_masked_context_equals_unpadded():
    rng = np.random.default_rng(1)
    xc = rng.uniform(0, 1, (10, 1)).astype(np.float32)
    yc = rng.normal(size=10).astype(np.float32)
    xt = rng.uniform(0, 1, (4, 1)).astype(np.float32)
    kern = partial(kernels.matern32, lengthscale=0.3)
    mask = np.arange(10) < 6
    m_pad, v_pad = gp.gp_posterior(xc, np.where(mask, yc, 99.0), xt, kern, 0.01, mask=mask)
    m, v = gp.gp_posterior(xc[:6], yc[:6], xt, kern, 0.01)
    np.testing.assert_allclose(m_pad, m, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(v_pad, v, rtol=1e-4, atol=1e-6)
    lml_pad = gp.gp_log_marginal_likelihood(xc, yc, kern, 0.01, mask=mask)
    lml = gp.gp_log_marginal_likelihood(xc[:6], yc[:6], kern, 0.01)
    np.testing.assert_allclose(lml_pad, lml, rtol=1e-5)


def test_log_marginal_likelihood_matches_scipy():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (2, 12, 3)).astype(np.float32)
    y = rng.normal(size=(2, 12)).astype(np.float32)
    kern = partial(kernels.matern52, lengthscale=jnp.array([0.3, 0.9]), outputscale=2.0)
    lml = gp.gp_log_marginal_likelihood(x, y, kern, jnp.array([0.05, 0.2]))
    for b, noise in enumerate([0.05, 0.2]):
        cov = np.asarray(kernels.matern52(x[b], x[b], [0.3, 0.9][b], 2.0), np.float64)
        ref = stats.multivariate_normal(np.zeros(12), cov + (noise + 1e-6) * np.eye(12)).logpdf(y[b])
        np.testing.assert_allclose(lml[b], ref, rtol=1e-4)


def test_posterior_interpolates_noise_free_context():
    x = jnp.linspace(0, 1, 5)[:, None]
    y = jnp.sin(6 * x[:, 0])
    mean, var = gp.gp_posterior(x, y, x, partial(kernels.rbf, lengthscale=0.3), 1e-6,
                                include_noise=False)
    np.testing.assert_allclose(mean, y, atol=1e-3)
    assert float(var.max()) < 1e-3


DRAW_AND_PREDICT = """
import jax
from pde_data.priors.samplers import make_prior
prior = make_prior("gp-hyper")
draw = jax.jit(lambda key: prior.predictive(key, prior(key, 32, 128, 50)))
for i in range(40):
    jax.block_until_ready(draw(jax.random.key(i)))
"""


def test_sample_and_predictive_in_one_program_finish():
    """A GP draw and its exact predictive in one jitted program: four batched LAPACK calls.
    Unordered, two of them ran at once on a 2-thread CPU pool and deadlocked (40 draws hung
    in 8 of 12 runs on the 2-core VM); ``gp._after`` orders them."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", DRAW_AND_PREDICT], timeout=90,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]

"""ARD lengthscales (one per input dimension): every kernel against a direct numpy formula,
the isotropic case as a special case, the ARD hyper-prior's draws and its exact predictive."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pde_data.priors import gp
from pde_data.priors import kernels as K
from pde_data.priors.samplers import make_prior


def _numpy_kernel(name, x1, x2, ls, s, period=0.5):
    """Direct formulas (R&W ch. 4, eq. 5.2 for ARD), float64, loops over nothing but numpy."""
    diff = x1[:, None, :] - x2[None, :, :]  # (n, m, d)
    if name == "periodic":
        return s * np.exp(-2.0 * np.sum(np.sin(np.pi * np.abs(diff) / period) ** 2 / ls**2, -1))
    r = np.sqrt(np.sum((diff / ls) ** 2, axis=-1))
    if name == "rbf":
        return s * np.exp(-0.5 * r**2)
    if name == "matern12":
        return s * np.exp(-r)
    if name == "matern32":
        return s * (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)
    return s * (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)


@pytest.mark.parametrize("name", sorted(K.KERNELS))
def test_every_ard_kernel_is_the_direct_formula(name):
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(0, 1, (7, 3)), rng.uniform(0, 1, (5, 3))
    ls, s = np.array([0.2, 1.5, 0.6]), 1.7
    extra = {"period": 0.5} if name == "periodic" else {}
    got = K.KERNELS[name](jnp.asarray(x1, jnp.float32), jnp.asarray(x2, jnp.float32),
                          lengthscale=ls, outputscale=s, ard=True, **extra)
    np.testing.assert_allclose(np.asarray(got), _numpy_kernel(name, x1, x2, ls, s), rtol=2e-5,
                               atol=1e-6)
    # batched: one ARD lengthscale vector and outputscale per dataset
    xb1 = jnp.asarray(np.stack([x1, x1[::-1]]), jnp.float32)
    lsb = np.stack([ls, ls[::-1]])
    got_b = K.KERNELS[name](xb1, xb1, lengthscale=lsb, outputscale=np.array([1.0, 2.0]),
                            ard=True, **extra)
    for i, scale in enumerate((1.0, 2.0)):
        want = _numpy_kernel(name, np.asarray(xb1[i], np.float64), np.asarray(xb1[i], np.float64),
                             lsb[i], scale)
        np.testing.assert_allclose(np.asarray(got_b[i]), want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(K.KERNELS))
def test_equal_ard_lengthscales_are_the_isotropic_kernel(name):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.uniform(0, 1, (2, 6, 2)), jnp.float32)
    iso = K.KERNELS[name](x, x, lengthscale=jnp.array([0.3, 0.8]), outputscale=1.2)
    ard = K.KERNELS[name](x, x, lengthscale=jnp.array([[0.3, 0.3], [0.8, 0.8]]),
                          outputscale=1.2, ard=True)
    np.testing.assert_allclose(np.asarray(ard), np.asarray(iso), rtol=1e-5, atol=1e-7)


def test_an_ard_lengthscale_of_the_wrong_width_is_named():
    x = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match="one value per input dimension"):
        K.rbf(x, x, lengthscale=jnp.ones(2), ard=True)


def test_the_ard_hyper_prior_draws_one_gamma_lengthscale_per_dimension():
    prior = make_prior("gp-hyper-ard")
    assert prior.ard and prior.hyper_prior
    ls, os_, nv = prior.hyperparameters(jax.random.key(0), 4000)
    assert ls.shape == (4000, prior.num_features) and os_.shape == nv.shape == (4000,)
    ls = np.asarray(ls)
    # Gamma(3, rate 6): mean 0.5, variance 3 / 36; dimensions independent
    assert abs(ls.mean() - 0.5) < 0.01 and abs(ls.var() - 3 / 36) < 0.01
    assert abs(np.corrcoef(ls[:, 0], ls[:, 1])[0, 1]) < 0.05
    fixed = make_prior("gp-matern52", ard=True, num_features=2).hyperparameters(None, 3)[0]
    np.testing.assert_array_equal(np.asarray(fixed), np.full((3, 2), 0.2, np.float32))


@pytest.mark.slow
def test_ard_draws_vary_along_the_short_lengthscale_and_the_predictive_is_exact():
    """Datasets drawn with a short lengthscale on dimension 0 and a long one on dimension 1
    change more along dimension 0; the prior's predictive equals the exact GP posterior under
    the drawn ARD hyperparameters (computed here in float64 numpy)."""
    prior = make_prior("gp-matern52", ard=True, num_features=2, lengthscale=1.0)
    key = jax.random.key(3)
    batch = prior(key, 8, 12, 9)
    ls = np.asarray(prior.hyperparameters(jax.random.split(key, 4)[2], 8)[0])
    mean, var = prior.predictive(key, batch)
    x, y = np.asarray(batch.x, np.float64), np.asarray(batch.y[..., 0], np.float64)
    for i in range(2):
        kc = _numpy_kernel("matern52", x[i, :9], x[i, :9], ls[i], 1.0) + (1e-4 + 1e-6) * np.eye(9)
        ks = _numpy_kernel("matern52", x[i, :9], x[i, 9:], ls[i], 1.0)
        want_mean = ks.T @ np.linalg.solve(kc, y[i, :9])
        want_var = 1.0 - np.sum(ks * np.linalg.solve(kc, ks), 0) + 1e-4
        np.testing.assert_allclose(np.asarray(mean[i, 9:]), want_mean, atol=2e-3)
        np.testing.assert_allclose(np.asarray(var[i, 9:]), want_var, rtol=2e-2, atol=2e-4)
    short = make_prior("gp-rbf", ard=True, num_features=2, lengthscale=1.0)
    kfn = short.kernel_fn(jnp.array([0.05, 5.0]), 1.0)
    grid = jnp.stack([jnp.linspace(0, 1, 30), jnp.full(30, 0.5)], -1)
    along0 = gp.sample_gp(jax.random.key(4), grid, kfn, 1e-4)
    along1 = gp.sample_gp(jax.random.key(4), grid[:, ::-1], kfn, 1e-4)
    assert np.std(np.diff(np.asarray(along0))) > 10 * np.std(np.diff(np.asarray(along1)))

"""Covariance functions: known values, agreement with scikit-learn's kernels, PSD, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.gaussian_process import kernels as skk

from pde_data.priors import kernels as K

jax.config.update("jax_enable_x64", False)


def _points(seed, n, d):
    return np.random.default_rng(seed).uniform(0, 1, (n, d)).astype(np.float32)


def test_known_values_at_one_lengthscale():
    x1 = jnp.zeros((1, 1))
    x2 = jnp.full((1, 1), 0.3)
    l, s = 0.3, 2.0
    assert np.isclose(K.rbf(x1, x2, l, s)[0, 0], s * np.exp(-0.5), rtol=1e-6)
    assert np.isclose(K.matern12(x1, x2, l, s)[0, 0], s * np.exp(-1.0), rtol=1e-6)
    r3 = np.sqrt(3.0)
    assert np.isclose(K.matern32(x1, x2, l, s)[0, 0], s * (1 + r3) * np.exp(-r3), rtol=1e-6)
    r5 = np.sqrt(5.0)
    assert np.isclose(K.matern52(x1, x2, l, s)[0, 0], s * (1 + r5 + 5 / 3) * np.exp(-r5),
                      rtol=1e-6)
    # periodic: one full period apart -> the variance; half a period -> s exp(-2 / l^2)
    assert np.isclose(K.periodic(x1, jnp.full((1, 1), 0.5), 0.7, s, period=0.5)[0, 0], s,
                      rtol=1e-5)
    assert np.isclose(K.periodic(x1, jnp.full((1, 1), 0.25), 0.7, s, period=0.5)[0, 0],
                      s * np.exp(-2 / 0.49), rtol=1e-5)


@pytest.mark.parametrize(
    "name,reference",
    [
        ("rbf", lambda l: skk.RBF(l)),
        ("matern12", lambda l: skk.Matern(l, nu=0.5)),
        ("matern32", lambda l: skk.Matern(l, nu=1.5)),
        ("matern52", lambda l: skk.Matern(l, nu=2.5)),
    ],
)
def test_matches_scikit_learn(name, reference):
    x1, x2 = _points(0, 7, 3), _points(1, 5, 3)
    ours = K.KERNELS[name](x1, x2, 0.4, 1.7)
    ref = 1.7 * reference(0.4)(x1.astype(np.float64), x2.astype(np.float64))
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=1e-6)


def test_periodic_matches_scikit_learn_in_1d():
    x1, x2 = _points(2, 6, 1), _points(3, 4, 1)
    ours = K.periodic(x1, x2, 0.8, 1.3, period=0.35)
    ref = 1.3 * skk.ExpSineSquared(0.8, 0.35)(x1.astype(np.float64), x2.astype(np.float64))
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(K.KERNELS))
def test_positive_semidefinite_and_symmetric(name):
    x = _points(4, 40, 2)
    k = np.asarray(K.KERNELS[name](x, x, 0.3, 1.0), dtype=np.float64)
    np.testing.assert_allclose(k, k.T, atol=1e-6)
    assert np.linalg.eigvalsh(k).min() > -1e-4
    np.testing.assert_allclose(np.diag(k), 1.0, atol=1e-6)


def test_batched_hyperparameters_broadcast():
    x = jnp.asarray(np.stack([_points(5, 6, 2), _points(6, 6, 2)]))
    ls = jnp.array([0.2, 0.5])
    os_ = jnp.array([1.0, 3.0])
    k = K.matern52(x, x, ls, os_)
    assert k.shape == (2, 6, 6)
    for b in range(2):
        np.testing.assert_allclose(k[b], K.matern52(x[b], x[b], ls[b], os_[b]), rtol=1e-6)


@pytest.mark.parametrize("name", ["matern12", "matern32", "matern52", "rbf"])
def test_gradient_finite_at_zero_distance(name):
    x = jnp.asarray(_points(7, 4, 2))
    g = jax.grad(lambda z, l: jnp.sum(K.KERNELS[name](z, z, l, 1.0)), argnums=(0, 1))(x, 0.3)
    assert all(bool(jnp.all(jnp.isfinite(t))) for t in g)


def test_unknown_kernel_lists_available():
    with pytest.raises(ValueError, match="matern52"):
        K.get_kernel("matern72")

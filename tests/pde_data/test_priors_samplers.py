"""Prior samplers: shapes, seeding, context split, GP variance, hyper-prior, class balance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pde_data.points import PointSets
from pde_data.priors import hyper
from pde_data.priors.samplers import PRIORS, ClassificationPrior, GPPrior, make_prior, sample_batch


@pytest.mark.parametrize("name", ["gp-rbf", pytest.param("gp-hyper", marks=pytest.mark.slow), "bnn", pytest.param("tabular", marks=pytest.mark.slow)])
def test_shapes_and_same_key_same_batch(name):
    prior = PRIORS[name]
    a = sample_batch(prior, jax.random.key(3), 4, 30, 10)
    b = sample_batch(prior, jax.random.key(3), 4, 30, 10)
    c = sample_batch(prior, jax.random.key(4), 4, 30, 10)
    assert isinstance(a, PointSets)
    assert a.x.shape == (4, 30, prior.num_features) and a.y.shape == (4, 30, 1)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    assert np.all(np.isfinite(a.x)) and np.all(np.isfinite(np.asarray(a.y, np.float32)))
    (xc, _), (xt, yt) = a.split()
    assert xc.shape[1] == 10 and xt.shape[1] == 20 and yt.shape == (4, 20, 1)
    np.testing.assert_array_equal(a.mask_context.sum(axis=1), 10)
    np.testing.assert_array_equal(a.mask_context + a.mask_target, 1.0)


def test_traced_context_size_does_not_recompile():
    prior = PRIORS["gp-rbf"]
    f = jax.jit(lambda k, n: prior(k, 2, 16, n).mask_context[0])
    m1, m2 = f(jax.random.key(0), 3), f(jax.random.key(0), 7)
    assert int(m1.sum()) == 3 and int(m2.sum()) == 7
    assert f._cache_size() == 1


def test_gp_prior_marginal_variance():
    prior = GPPrior(kernel="matern32", lengthscale=0.2, outputscale=2.0, noise_var=0.1)
    y = np.asarray(sample_batch(prior, jax.random.key(0), 2000, 8, 4).y)
    assert np.mean(y**2) == pytest.approx(2.1, rel=0.05)


def test_gp_prior_neighbouring_points_correlate_as_the_kernel_says():
    # two points at distance 0.1 under an RBF with lengthscale 0.1: corr = exp(-1/2)
    prior = GPPrior(kernel="rbf", lengthscale=0.1, noise_var=1e-4)
    x = jnp.broadcast_to(jnp.array([[0.3], [0.4]]), (20000, 2, 1))
    from pde_data.priors.gp import sample_gp

    y = np.asarray(sample_gp(jax.random.key(1), x, prior.kernel_fn(0.1, 1.0), 1e-4))
    assert np.corrcoef(y.T)[0, 1] == pytest.approx(np.exp(-0.5), abs=0.02)


@pytest.mark.slow
def test_hyper_prior_moments_and_feature_counts():
    prior = PRIORS["gp-hyper"]
    ls, os_, nv = prior.hyperparameters(jax.random.key(0), 20000)
    assert float(ls.mean()) == pytest.approx(3 / 6, rel=0.03)  # Gamma(3, rate 6)
    assert float(os_.mean()) == pytest.approx(2 / 0.15, rel=0.03)  # Gamma(2, rate 0.15)
    assert float(nv.min()) >= np.float32(1e-4)
    batch = sample_batch(prior, jax.random.key(1), 500, 12, 6)
    d = np.asarray(batch.n_features)
    assert set(np.unique(d)) == {1, 2, 3, 4, 5}
    x = np.asarray(batch.x)
    for b in range(20):
        assert np.all(x[b, :, d[b]:] == 0) and np.all(x[b, :, : d[b]] > 0)
    y = np.asarray(batch.y)[..., 0]
    assert np.mean(y**2) == pytest.approx(2 / 0.15, rel=0.25)


def test_gamma_density_normalised():
    xs = np.linspace(1e-4, 5, 200001)
    dens = np.exp(np.asarray(hyper.gamma_log_density(jnp.asarray(xs), (3.0, 6.0))))
    assert np.trapezoid(dens, xs) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_classification_prior_labels_and_balance():
    prior = ClassificationPrior()
    batch = sample_batch(prior, jax.random.key(0), 400, 200, 100)
    y, c, d = np.asarray(batch.y)[..., 0], np.asarray(batch.n_classes), np.asarray(batch.n_features)
    assert y.dtype == np.int32 and batch.x.shape == (400, 200, 20)
    assert c.min() >= 2 and c.max() <= 10 and len(np.unique(c)) == 9
    assert np.all(y >= 0) and np.all(y < c[:, None])
    x = np.asarray(batch.x)
    for b in range(10):
        assert np.all(x[b, :, d[b]:] == 0)
    # expected class frequency 1/C for every class id (thresholds at uniform quantiles,
    # ids permuted): average the per-dataset frequencies over datasets with C classes
    for n_cls in (2, 5, 10):
        rows = y[c == n_cls]
        freq = np.stack([(rows == k).mean(1) for k in range(n_cls)], 1).mean(0)
        np.testing.assert_allclose(freq, 1 / n_cls, atol=0.35 / n_cls + 0.03)
    # most datasets use several classes (not degenerate)
    used = np.array([len(np.unique(y[b])) for b in range(400)])
    assert np.mean(used >= np.minimum(c, 2)) == 1.0 and np.mean(used) > 0.7 * np.mean(c)


def test_make_prior_errors_name_the_problem():
    with pytest.raises(ValueError, match="gp-rbf"):
        make_prior("gp-nope")
    with pytest.raises(ValueError, match="lenghtscale"):
        make_prior("gp-rbf", lenghtscale=0.3)
    assert make_prior("gp-rbf", lengthscale=0.3).lengthscale == 0.3
    with pytest.raises(ValueError, match="unknown kernel"):
        GPPrior(kernel="laplace")


@pytest.mark.parametrize("name", [pytest.param("gp-hyper", marks=pytest.mark.slow), "gp-matern52"])
def test_predictive_is_the_distribution_the_targets_were_drawn_from(name):
    """Standardised targets (y - mean) / sd under ``predictive`` are N(0, 1) across datasets
    drawn with per-dataset hyperparameters: wrong hyperparameters (or a wrong context mask)
    would give another spread. Traced context size, as in training."""
    from scipy import stats

    prior = make_prior(name)
    key = jax.random.key(11)

    @jax.jit
    def z_scores(key, n_ctx):
        batch = prior(key, 400, 30, n_ctx)
        mean, var = prior.predictive(key, batch)
        return (batch.y[..., 0] - mean) / jnp.sqrt(var), jnp.arange(30) >= n_ctx

    z, is_tgt = z_scores(key, jnp.int32(12))
    z = np.asarray(z)[:, np.asarray(is_tgt)][:, 0]  # one target per dataset: independent
    z = z[np.isfinite(z)]
    assert len(z) > 390
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.std(z) - 1.0) < 0.1


@pytest.mark.parametrize("name, option, value", [
    ("gp-rbf", "lengthscale", -1.0), ("gp-rbf", "lengthscale", float("nan")),
    ("gp-rbf", "outputscale", 0.0), ("gp-rbf", "noise_var", -1e-3),
    ("gp-hyper", "lengthscale_gamma", (3.0, -6.0)), ("gp-rbf", "num_features", 0),
    ("bnn", "noise_std", (0.3, 0.01)), ("bnn", "max_depth", 0),
    ("tabular", "p_gp", 1.5), ("tabular", "min_classes", 1), ("tabular", "max_classes", 1),
])
def test_make_prior_refuses_values_that_would_sample_garbage(name, option, value):
    from pde_data.priors.samplers import make_prior

    with pytest.raises(ValueError, match=option):
        make_prior(name, **{option: value})


def test_make_prior_takes_json_lists_as_pairs():
    from pde_data.priors.samplers import make_prior

    prior = make_prior("gp-hyper", lengthscale_gamma=[2.0, 4.0])
    assert prior.lengthscale_gamma == (2.0, 4.0)
    hash(prior)  # a static jit argument

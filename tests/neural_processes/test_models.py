"""Shapes, masks (padding never changes a prediction), the likelihood against scipy, the
martingale generator and the errors of the public interface, for every model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from neural_processes.likelihood import gaussian_logpdf, logmeanexp, mixture_moments
from neural_processes.models import MODELS, build_model
from pde_data.points import PointSets

SMALL = {"width": 16, "enc_depth": 2, "dec_depth": 2, "heads": 2}


def small(name, x_dim=1, y_dim=1, seed=0):
    return build_model({"model": name, "x_dim": x_dim, "y_dim": y_dim, **SMALL}, seed=seed)


def data(b=3, nc=7, nt=5, dx=1, dy=1, seed=0):
    r = np.random.default_rng(seed)
    return (r.uniform(-2, 2, (b, nc, dx)).astype(np.float32), r.normal(size=(b, nc, dy)).astype(np.float32),
            r.uniform(-2, 2, (b, nt, dx)).astype(np.float32), r.normal(size=(b, nt, dy)).astype(np.float32))


FAMILY = ["cnp", "np", "neubnp"]  # one of each family (+ attention); all under -m slow
ALL = [n if n in FAMILY else pytest.param(n, marks=pytest.mark.slow) for n in sorted(MODELS)]


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_padding_invariance(name):
    model = small(name, x_dim=2, y_dim=2)
    xc, yc, xt, yt = data(dx=2, dy=2)
    mean, std = model.predict(xc, yc, xt, num_samples=4)
    assert mean.shape == std.shape == (3, 5, 2)
    assert np.all(std >= model.min_std - 1e-6) and np.all(np.isfinite(mean))
    ll = model.log_likelihood(xc, yc, xt, yt, num_samples=4)
    assert ll.shape == (3,) and np.all(np.isfinite(ll))
    # unbatched input gives the first task's answer (same random draws only for deterministic
    # models: the draws of stochastic ones depend on the batch size)
    m0, _s0 = model.predict(xc[0], yc[0], xt[0], num_samples=4)
    assert m0.shape == (5, 2)
    if not model.stochastic:
        np.testing.assert_allclose(m0, mean[0], rtol=1e-5, atol=1e-5)
    # padding: garbage points after the real context, masked out, change nothing
    key = jax.random.key(3)
    pad_x = np.concatenate([xc, 100 + np.zeros((3, 4, 2), np.float32)], 1)
    pad_y = np.concatenate([yc, -50 + np.zeros((3, 4, 2), np.float32)], 1)
    mask = np.concatenate([np.ones((3, 7)), np.zeros((3, 4))], 1).astype(np.float32)
    a = model.predictive(xc, yc, jnp.ones((3, 7)), xt, key, 4)
    b = model.predictive(pad_x, pad_y, mask, xt, key, 4)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)
    # and padded tasks of different context sizes in one batch match one-by-one predictions
    mask2 = mask.copy()
    mask2[1, 5:] = 0
    full = model.predictive(pad_x, pad_y, mask2, xt, key, 4)
    alone = model.predictive(xc[:, :5], yc[:, :5], jnp.ones((3, 5)), xt, key, 4)
    np.testing.assert_allclose(full[0][:, 1], alone[0][:, 1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(full[1][:, 1], alone[1][:, 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["cnp", pytest.param("mpnp", marks=pytest.mark.slow), pytest.param("mpanp", marks=pytest.mark.slow)])
def test_loss_ignores_padding(name):
    model = small(name)
    xc, yc, xt, yt = data(nc=6, nt=6)
    x, y = np.concatenate([xc, xt], 1), np.concatenate([yc, yt], 1)
    mc = np.concatenate([np.ones((3, 6)), np.zeros((3, 6))], 1).astype(np.float32)
    b1 = PointSets(x, y, mc, 1 - mc)
    pad = lambda a, v: np.concatenate([a, np.full((3, 3, a.shape[-1]), v, np.float32)], 1)
    zeros = np.zeros((3, 3), np.float32)
    b2 = PointSets(pad(x, 7.0), pad(y, -9.0), np.concatenate([mc, zeros], 1),
                 np.concatenate([1 - mc, zeros], 1))
    key = jax.random.key(0)
    np.testing.assert_allclose(model.loss(b1, key)[0], model.loss(b2, key)[0], rtol=1e-5)


def test_gaussian_logpdf_matches_scipy():
    r = np.random.default_rng(0)
    y, m, s = r.normal(size=(4, 6, 2)), r.normal(size=(4, 6, 2)), r.uniform(0.1, 2, (4, 6, 2))
    want = stats.norm.logpdf(y, m, s).sum(-1)
    np.testing.assert_allclose(gaussian_logpdf(jnp.asarray(y), jnp.asarray(m), jnp.asarray(s)),
                               want, rtol=1e-5)
    a = r.normal(size=(5, 3)) * 30
    np.testing.assert_allclose(logmeanexp(jnp.asarray(a), 0),
                               np.log(np.mean(np.exp(a - a.max(0)), 0)) + a.max(0), rtol=1e-5)


def test_log_likelihood_of_known_gaussian():
    """CNP: log_likelihood equals the scipy log density under its own predicted Gaussian."""
    model = small("cnp")
    xc, yc, xt, yt = data()
    mean, std = model.predict(xc, yc, xt)
    want = stats.norm.logpdf(yt, mean, std).sum(-1).mean(-1)
    np.testing.assert_allclose(model.log_likelihood(xc, yc, xt, yt), want, rtol=1e-4)


@pytest.mark.slow
def test_stochastic_log_likelihood_is_pointwise_mixture():
    """MPNP: per-point log of the equal mixture of its sampled Gaussians, averaged over points;
    predict returns that mixture's mean and std."""
    model = small("mpnp")
    xc, yc, xt, yt = data()
    key = jax.random.key(5)
    m, s = model.predictive(xc, yc, jnp.ones((3, 7)), xt, key, 6)
    dens = stats.norm.pdf(yt[None], np.asarray(m), np.asarray(s))[..., 0]  # (S, B, N)
    want = np.log(dens.mean(0)).mean(-1)
    np.testing.assert_allclose(model.log_likelihood(xc, yc, xt, yt, num_samples=6, key=key),
                               want, rtol=1e-4)
    mm, ms = mixture_moments(m, s)
    got_m, got_s = model.predict(xc, yc, xt, num_samples=6, key=key)
    np.testing.assert_allclose(got_m, mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_s, ms, rtol=1e-5, atol=1e-6)
    samples_spread = np.asarray(m).std(0)
    assert samples_spread.mean() > 0  # the generated pseudo contexts change the prediction


@pytest.mark.parametrize("name", [pytest.param("mpnp", marks=pytest.mark.slow), "mpanp"])
def test_generator_pseudo_context_shapes(name):
    model = small(name)
    xc, yc, _, _ = data(b=2, nc=9)
    mask = np.ones((2, 9), np.float32)
    mask[1, 4:] = 0
    rep = model.det.represent(xc, yc, mask)
    pseudo = model.pseudo_contexts(rep, jax.random.key(0), 5)
    assert pseudo.values.shape == (5, 2, 9, 16)
    assert (pseudo.keys is None) == (name == "mpnp")
    if name == "mpanp":
        assert pseudo.keys.shape == (5, 2, 9, 16)
    np.testing.assert_array_equal(pseudo.mask, mask)
    # different noise -> different pseudo contexts; same key -> same
    again = model.pseudo_contexts(rep, jax.random.key(0), 5)
    np.testing.assert_array_equal(pseudo.values, again.values)
    assert not np.allclose(pseudo.values[0], pseudo.values[1])


def test_bad_input_errors():
    model = small("anp")
    xc, yc, xt, yt = data()
    with pytest.raises(ValueError, match="0 tasks"):
        model.predict(xc[:0], yc[:0], xt[:0])
    with pytest.raises(ValueError, match="x_context has 7 points but y_context has 6"):
        model.predict(xc, yc[:, :6], xt)
    with pytest.raises(ValueError, match="context is empty"):
        model.predict(xc[:, :0], yc[:, :0], xt)
    bad = yc.copy()
    bad[0, 1, 0] = np.nan
    with pytest.raises(ValueError, match="y_context contains NaN"):
        model.predict(xc, bad, xt)
    with pytest.raises(ValueError, match="x_target has 2 features.*expects 1"):
        model.predict(xc, yc, np.zeros((3, 5, 2), np.float32))
    with pytest.raises(ValueError, match="batch size"):
        model.predict(xc, yc, xt[:2])
    with pytest.raises(ValueError, match="shape"):
        model.predict(xc[..., 0, 0], yc, xt)
    with pytest.raises(ValueError, match="y_target has 4"):
        model.log_likelihood(xc, yc, xt, yt[:, :4])
    with pytest.raises(ValueError, match="unknown model 'foo'; available: anp"):
        build_model({"model": "foo"})
    with pytest.raises(ValueError, match="min_std"):
        build_model({"model": "cnp", "min_std": 1.5})


def test_overflowing_inputs_are_a_named_error_not_nan():
    model = small("anp")
    xc, yc, xt, _ = data()
    with pytest.raises(FloatingPointError, match="rescale"):
        model.predict(xc * 1e30, yc * 1e30, xt * 1e30)

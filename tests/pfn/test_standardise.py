"""Per-dataset standardisation inside the PFN (``standardise``): the predictive in the units of
y is equivariant to y -> a y + b and invariant to x_j -> c_j x_j + d_j of the whole dataset;
the loss is the NLL in the units of y; the option is stored only when on (earlier configs,
shipped checkpoints and their resume are untouched); ARD priors reach the trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pde_data.priors.samplers import make_prior
from pfn.checkpoint import build_model
from pfn.estimators import LoadedPFN, PFNRegressor
from pfn.model import PFN, context_affine
from pfn.riemann import RiemannDistribution
from pfn.train import build_config, loss_fn, prior_statistics

BORDERS = jnp.linspace(-4.0, 4.0, 33)


def _model(**kw):
    return PFN(3, 32, d_model=16, n_heads=2, n_layers=2, d_ff=32, standardise=True,
               rngs=nnx.Rngs(0), **kw)


def _logpdf_in_y(model, x, y, n, y_eval, static=True):
    """log p(y_eval | context) at the targets, in the units of y, and the predictive mean."""
    call = model if static else jax.jit(lambda a, b, c: model(a, b, c))
    n_arg = n if static else jnp.int32(n)
    out = call(x, y, n_arg)[:, n:]
    shift, scale = (a[:, None] for a in model.y_affine(x, y, n_arg))
    dist = RiemannDistribution(out, BORDERS)
    return (dist.logpdf((y_eval - shift) / scale) - jnp.log(scale),
            shift + scale * dist.mean)


@pytest.mark.slow
@pytest.mark.parametrize("static", [True, False])
def test_the_predictive_follows_an_affine_map_of_the_whole_dataset(static):
    model = _model()
    x = jax.random.uniform(jax.random.key(0), (2, 14, 3))
    y = jax.random.normal(jax.random.key(1), (2, 14))
    n = 9
    logp, mean = _logpdf_in_y(model, x, y, n, y[:, n:], static)
    a, b = 250.0, -40.0
    c, d = jnp.array([0.01, 30.0, 2.0]), jnp.array([5.0, -100.0, 0.3])
    logp2, mean2 = _logpdf_in_y(model, c * x + d, a * y + b, n, a * y[:, n:] + b, static)
    # density of a y + b: the density of y divided by a
    np.testing.assert_allclose(np.asarray(logp2), np.asarray(logp - np.log(a)), atol=2e-3)
    np.testing.assert_allclose(np.asarray(mean2), np.asarray(a * mean + b),
                               rtol=1e-4, atol=1e-3 * a)
    # without the option the same network is not invariant (the test can fail)
    model.standardise = False
    logp3, _ = _logpdf_in_y(model, c * x + d, a * y + b, n, a * y[:, n:] + b, static)
    assert np.max(np.abs(np.asarray(logp3 - (logp - np.log(a))))) > 0.1


@pytest.mark.slow
def test_padded_context_slots_do_not_enter_the_statistics():
    model = _model()
    x = jax.random.uniform(jax.random.key(2), (1, 6, 3))
    y = 5.0 + 3.0 * jax.random.normal(jax.random.key(3), (1, 6))
    xt = jax.random.uniform(jax.random.key(4), (1, 4, 3))
    plain = model.predict(x, y, xt)
    pad_x = jnp.concatenate([x, 1e3 * jnp.ones((1, 10, 3))], 1)
    pad_y = jnp.concatenate([y, -1e3 * jnp.ones((1, 10))], 1)
    mask = (jnp.arange(16) < 6)[None].astype(jnp.float32)
    np.testing.assert_allclose(np.asarray(model.predict(pad_x, pad_y, xt, mask)),
                               np.asarray(plain), atol=2e-4)
    full = jnp.concatenate([pad_x, xt], 1)
    m1, s1 = model.y_affine(full, jnp.concatenate([pad_y, jnp.zeros((1, 4))], 1), 16, mask)
    assert np.isclose(float(m1[0]), float(y.mean()), rtol=1e-5)
    assert np.isclose(float(s1[0]), float(y.std()), rtol=1e-4)


def test_context_statistics_and_their_fallbacks():
    v = jnp.array([[[1.0, 7.0, 0.0], [3.0, 7.0, 0.0], [100.0, -5.0, 9.0]]])
    mask = jnp.array([[1.0, 1.0, 0.0]])
    shift, scale = context_affine(v, mask)
    np.testing.assert_allclose(np.asarray(shift[0, 0]), [2.0, 7.0, 0.0])
    # a std: 1; a constant column and a zero-padded one: no scale (1), shift kept
    np.testing.assert_allclose(np.asarray(scale[0, 0]), [1.0, 1.0, 1.0])
    shift1, scale1 = context_affine(v * 10, jnp.array([[1.0, 0.0, 0.0]]))  # one point
    np.testing.assert_allclose(np.asarray(shift1[0, 0]), [10.0, 70.0, 0.0])
    np.testing.assert_allclose(np.asarray(scale1[0, 0]), [1.0, 1.0, 1.0])


@pytest.mark.slow
def test_the_loss_is_the_nll_in_the_units_of_y():
    cfg = build_config("gp-rbf", standardise=True, d_model=16, n_heads=2, n_layers=1, d_ff=16,
                       n_buckets=32)
    model = build_model(cfg)
    assert model.standardise
    batch = make_prior("gp-rbf", outputscale=9.0)(jax.random.key(5), 3, 14, 6)
    got = loss_fn(model, batch, BORDERS, "regression")
    x, y = batch.x, batch.y[..., 0]
    logp, _ = _logpdf_in_y(model, x, y, 6, y[:, 6:])
    np.testing.assert_allclose(float(got), float(-logp.mean()), rtol=1e-5)
    # the expected NLL maps the Gaussian target the same way (a point mass limit: tiny var)
    mean = y
    tiny = jnp.full_like(y, 1e-10)
    exp_nll = loss_fn(model, batch, BORDERS, "regression", (mean, tiny))
    np.testing.assert_allclose(float(exp_nll), float(got), rtol=1e-3)


def test_the_option_is_stored_only_when_on_and_borders_are_of_standardised_targets():
    off = build_config("gp-rbf")
    assert "standardise" not in off and "standardise" not in build_config(
        "gp-rbf", standardise=False)
    with pytest.raises(ValueError, match="standardise"):
        build_config("gp-rbf", standardise="yes")
    on = build_config("gp-hyper", standardise=True, n_buckets=50, border_samples=5000,
                      prior_options={"num_features": 1, "min_features": None})
    assert on["standardise"] is True
    raw = prior_statistics({**on, "standardise": False})["borders"]
    std = prior_statistics(on)["borders"]
    # gp-hyper's y reach |y| ~ 10 and more (outputscale ~ Gamma(2, 0.15)); standardised
    # targets are of unit scale: the central borders shrink
    assert np.median(np.abs(std)) < 0.5 * np.median(np.abs(raw))


def test_the_estimator_of_a_standardising_model_is_equivariant():
    cfg = build_config("gp-rbf", standardise=True, d_model=16, n_heads=2, n_layers=1, d_ff=16,
                       n_buckets=32)
    loaded = LoadedPFN(build_model(cfg), cfg, {"borders": np.asarray(BORDERS),
                                               "y_std": np.float32(1.0)})
    rng = np.random.default_rng(0)
    X, y, Xt = rng.uniform(0, 1, (12, 1)), rng.normal(size=12), rng.uniform(0, 1, (5, 1))
    yt = rng.normal(size=5)
    base = PFNRegressor(model=loaded).fit(X, y).predict_distribution(Xt)
    moved = PFNRegressor(model=loaded).fit(3 * X + 1, 40 * y - 7).predict_distribution(3 * Xt + 1)
    np.testing.assert_allclose(moved.mean, 40 * base.mean - 7, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(moved.logpdf(40 * yt - 7), base.logpdf(yt) - np.log(40), atol=2e-3)


def test_the_ard_prior_is_a_training_prior():
    cfg = build_config("gp-hyper-ard")
    assert cfg["num_features"] == 5 and cfg["x_transform"] == "minmax"
    assert make_prior(cfg["prior"]).ard


def test_the_command_line_switches_it_on(tmp_path, monkeypatch):
    """``python -m pfn train --standardise`` hands ``standardise=True`` to the trainer; without
    the flag it hands None (unset: the config gets no such key, as before the option)."""
    import pfn.train
    from pfn.__main__ import main

    seen = []
    monkeypatch.setattr(pfn.train, "train", lambda out, prior, **kw: seen.append(kw) or {})
    for flag in (["--standardise"], []):
        assert main(["train", "--prior", "gp-hyper-ard", "--out", str(tmp_path / "r"),
                     "--quiet", *flag]) in (0, None)
    assert seen[0]["standardise"] is True and seen[1]["standardise"] is None

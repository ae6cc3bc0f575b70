"""MPNP options of issue 14: the loss weights of L_marg / L_amort / L_pseudo (default equal),
checked, stored in the config only when not the default, and weighting the terms as said."""

import jax
import numpy as np
import pytest

from neural_processes.models import build_model
from neural_processes.train import make_config

from .test_martingale import SMALL, ragged_batch, small


@pytest.mark.slow
def test_loss_weights_weight_the_three_terms():
    batch, key = ragged_batch(1), jax.random.key(3)
    base = small("mpanp")
    _, aux = base.loss(batch, key)
    for weights in [(1.0, 0.0, 0.0), (0.5, 2.0, 0.1)]:
        model = build_model({**base.config(), "loss_weights": weights})
        from flax import nnx

        nnx.update(model, nnx.state(base, nnx.Param))  # same parameters, other weights
        loss, aux_w = model.loss(batch, key)
        want = weights[0] * aux["marg"] + weights[1] * aux["amort"] + weights[2] * aux["pseudo"]
        np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)
        np.testing.assert_allclose(float(aux_w["marg"]), float(aux["marg"]), rtol=1e-6)
        assert model.config()["loss_weights"] == list(weights)
    assert "loss_weights" not in base.config()  # the default is not written (old configs match)


@pytest.mark.parametrize("bad", [(1.0, 1.0), (1.0, -1.0, 1.0), (0.0, 0.0, 0.0),
                                 (1.0, float("nan"), 1.0)])
def test_bad_loss_weights_are_named(bad):
    with pytest.raises(ValueError, match="loss_weights"):
        build_model({"model": "mpnp", "x_dim": 1, "y_dim": 1, "loss_weights": bad, **SMALL})


def test_loss_weights_reach_the_run_config_of_martingale_models_only():
    cfg = make_config("mpanp", "rbf", loss_weights=[1.0, 1.0, 0.1], **SMALL)
    assert cfg["model"]["loss_weights"] == [1.0, 1.0, 0.1]
    assert "loss_weights" not in make_config("anp", "rbf", loss_weights=[1, 1, 0.1])["model"]


@pytest.mark.slow
def test_pseudo_per_point_sets_the_size_of_each_generated_set():
    batch, key = ragged_batch(2), jax.random.key(4)
    model = build_model({"model": "mpnp", "x_dim": 1, "y_dim": 1, "train_samples": 3,
                         "pseudo_per_point": 3, **SMALL})
    rep = model.det.represent(batch.x, batch.y, batch.mask_context)
    pseudo = model.pseudo_contexts(rep, key, 3)
    assert pseudo.values.shape[:3] == (3, 3, 36)
    # three pseudo points for every real context point, none for padding
    np.testing.assert_array_equal(np.asarray(pseudo.mask).sum(-1),
                                  3 * np.asarray(batch.mask_context).sum(-1))
    assert model.config()["pseudo_per_point"] == 3
    assert "pseudo_per_point" not in small("mpnp").config()


@pytest.mark.slow  # ~45 s: eager MPNP passes
def test_larger_pseudo_sets_train_and_ignore_padding():
    import jax.numpy as jnp

    batch, key = ragged_batch(2), jax.random.key(4)
    model = build_model({"model": "mpnp", "x_dim": 1, "y_dim": 1, "train_samples": 3,
                         "pseudo_per_point": 3, **SMALL})
    assert np.isfinite(float(model.loss(batch, key)[0]))
    # padding the context with empty slots changes no prediction (the noise of slot j * 3 + c
    # does not depend on how many slots follow)
    xc, yc = batch.x[:1, :5], batch.y[:1, :5]
    xt = batch.x[:1, 5:9]
    mc = jnp.ones((1, 5))
    pad = lambda a: jnp.concatenate([a, 9.0 * jnp.ones((1, 4, 1))], 1)
    m1, s1 = model.predictive(xc, yc, mc, xt, key, 4)
    m2, s2 = model.predictive(pad(xc), pad(yc), jnp.concatenate([mc, jnp.zeros((1, 4))], 1),
                              xt, key, 4)
    np.testing.assert_allclose(np.asarray(m2), np.asarray(m1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(s2), np.asarray(s1), atol=1e-5)

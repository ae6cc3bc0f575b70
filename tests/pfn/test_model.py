"""The PFN transformer's information flow: what each output may and may not depend on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pfn.model import PFN


def _model(**kw):
    return PFN(2, 7, d_model=16, n_heads=2, n_layers=2, d_ff=32, rngs=nnx.Rngs(0), **kw)


@pytest.mark.parametrize("static", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_targets_see_context_only_and_not_each_other(static):
    """``static``: a Python-int context size (attention to the context slice, prediction);
    else a traced one (masked attention, training)."""
    model = _model()
    call = jax.jit(lambda x_, y_, n_: model(x_, y_, n_))
    def m(x_, y_, n_):
        return model(x_, y_, n_) if static else call(x_, y_, jnp.int32(n_))
    x = jax.random.normal(jax.random.key(0), (2, 9, 2))
    y = jax.random.normal(jax.random.key(1), (2, 9))
    out = m(x, y, 4)
    assert out.shape == (2, 9, 7)
    # a target's y never enters; moving another target changes nothing for this one
    np.testing.assert_array_equal(m(x, y.at[:, 6].set(5.0), 4), out)
    moved = m(x.at[:, 6].set(3.0), y, 4)
    np.testing.assert_array_equal(np.delete(np.asarray(moved), 6, axis=1),
                                  np.delete(np.asarray(out), 6, axis=1))
    # a context point's y and x change every output
    changed = m(x, y.at[:, 1].set(5.0), 4)
    assert np.all(np.abs(np.asarray(changed - out)).max(-1) > 0)


def test_permutation_invariance_of_the_context():
    m = _model()
    x = jax.random.normal(jax.random.key(2), (1, 8, 2))
    y = jax.random.normal(jax.random.key(3), (1, 8))
    perm = jnp.array([3, 1, 0, 2, 4, 5, 6, 7])  # shuffle the 4 context points
    np.testing.assert_allclose(m(x[:, perm], y[:, perm], 4)[:, 4:], m(x, y, 4)[:, 4:], atol=1e-5)


def test_predict_equals_concatenated_call_and_classes_embed():
    m = _model(n_classes=7)
    x = jax.random.normal(jax.random.key(4), (3, 10, 2))
    y = jax.random.randint(jax.random.key(5), (3, 10), 0, 7)
    np.testing.assert_allclose(m.predict(x[:, :6], y[:, :6], x[:, 6:]), m(x, y, 6)[:, 6:],
                               atol=1e-6)


@pytest.mark.slow
def test_static_context_slice_equals_masked_attention():
    """Keys and values from the context slice (static size) give the masked computation's
    outputs at every position."""
    m = _model()
    x = jax.random.normal(jax.random.key(6), (2, 12, 2))
    y = jax.random.normal(jax.random.key(7), (2, 12))
    traced = jax.jit(lambda x_, y_, n_: m(x_, y_, n_))
    for n in (1, 5, 12):
        np.testing.assert_allclose(m(x, y, n), traced(x, y, jnp.int32(n)), atol=2e-5)

"""The public call interface of every neural process (issue 14): ``model(xc, yc, xt)`` and
``predict`` stay in JAX for JAX inputs (``jax.jit``- and ``jax.vmap``-able), NumPy in -> NumPy
out otherwise; predictions are padded to size buckets (one compilation per bucket, the same
numbers as unpadded); and the shipped models use their context."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_processes.base import _moments, bucket_size
from neural_processes.models import MODELS

from .conftest import small_model


def models(*fast):
    """Every model; those not in ``fast`` under ``-m slow`` (a compilation of a model with
    attention takes seconds on a CPU: the fast run keeps the cheap CNP and the martingale
    MPANP, the shipped kind with the most machinery)."""
    return [n if n in fast else pytest.param(n, marks=pytest.mark.slow) for n in sorted(MODELS)]


def _data(b=None, nc=7, nt=5, seed=0):
    r = np.random.default_rng(seed)
    lead = () if b is None else (b,)
    f = lambda *s: r.uniform(-2, 2, (*lead, *s)).astype(np.float32)
    return f(nc, 1), f(nc, 1), f(nt, 1), f(nt, 1)


def test_bucket_sizes():
    assert [bucket_size(n) for n in (1, 15, 16, 17, 32, 33, 100)] == [16, 16, 16, 32, 32, 64, 128]


@pytest.mark.parametrize("name", models("cnp"))
def test_numpy_in_numpy_out_and_jax_in_jax_out(name):
    model = small_model(name)
    xc, yc, xt, yt = _data(b=2)
    mean, std = model(xc, yc, xt, num_samples=3)
    assert isinstance(mean, np.ndarray) and isinstance(std, np.ndarray)
    assert mean.shape == std.shape == (2, 5, 1)
    m2, _s2 = model.predict(xc.tolist(), yc.tolist(), xt.tolist(), num_samples=3)  # lists too
    np.testing.assert_array_equal(m2, mean)
    jm, js = model(jnp.asarray(xc), jnp.asarray(yc), jnp.asarray(xt), num_samples=3)
    assert isinstance(jm, jax.Array) and isinstance(js, jax.Array)
    np.testing.assert_allclose(np.asarray(jm), mean, rtol=1e-6, atol=1e-6)
    ll = model.log_likelihood(xc, yc, xt, yt, num_samples=3)
    jll = model.log_likelihood(*(jnp.asarray(a) for a in (xc, yc, xt, yt)), num_samples=3)
    assert isinstance(ll, np.ndarray) and isinstance(jll, jax.Array) and ll.shape == (2,)
    np.testing.assert_allclose(np.asarray(jll), ll, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="NaN"):  # concrete JAX arrays are checked too
        model(jnp.asarray(xc), jnp.asarray(yc).at[0, 0, 0].set(jnp.nan), jnp.asarray(xt))


@pytest.mark.parametrize("name", models("cnp"))
def test_jit_and_vmap(name):
    model = small_model(name)
    xc, yc, xt, _yt = _data(b=3, nc=9, nt=6)
    jitted = jax.jit(lambda a, b, c: model(a, b, c, num_samples=3))
    jm, js = jitted(*(jnp.asarray(a) for a in (xc, yc, xt)))
    mean, std = model(xc, yc, xt, num_samples=3)
    np.testing.assert_allclose(np.asarray(jm), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(js), std, rtol=1e-5, atol=1e-5)
    # vmap over tasks of unbatched calls: each row is that task's own unbatched prediction
    vm, _ = jax.vmap(lambda a, b, c: model(a, b, c, num_samples=3))(xc, yc, xt)
    assert vm.shape == (3, 6, 1)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(vm[i]), model(xc[i], yc[i], xt[i], num_samples=3)[0],
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="x_dim"):
        jax.jit(lambda a: model(a, yc, xt))(jnp.zeros((3, 9, 2)))


def test_traced_key_and_traced_log_likelihood():
    model = small_model("np")
    xc, yc, xt, yt = _data(b=2)
    mean, _ = model(xc, yc, xt, num_samples=3)
    keyed = jax.jit(lambda k: model(xc, yc, xt, num_samples=3, key=k)[0])(jax.random.key(0))
    np.testing.assert_allclose(np.asarray(keyed), mean, rtol=1e-5, atol=1e-5)
    jll = jax.jit(lambda *a: model.log_likelihood(*a, num_samples=3))(xc, yc, xt, yt)
    np.testing.assert_allclose(np.asarray(jll), model.log_likelihood(xc, yc, xt, yt, num_samples=3),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", models("cnp"))
def test_padded_buckets_give_the_unpadded_predictions(name):
    """``predict`` pads the context (masked) and the targets to their buckets; the result is
    the unpadded predictive's, draws included (per-point draws do not see the padding)."""
    model = small_model(name)
    key = jax.random.key(5)
    unpadded = jax.jit(lambda *a: _moments(model, *a, key, 4))
    for nc, nt in [(1, 1), (17, 40)]:
        xc, yc, xt, _ = _data(b=2, nc=nc, nt=nt, seed=nc)
        got = model.predict(xc, yc, xt, num_samples=4, key=key)
        want = unpadded(xc, yc, jnp.ones((2, nc)), xt)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)


def test_one_compilation_per_bucket(monkeypatch):
    model = small_model("anp")
    traces = []
    original = type(model).predictive

    def counting(self, *a, **k):  # runs only while jax traces (compiles) the prediction
        traces.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(type(model), "predictive", counting)
    xc, yc, xt, _ = _data(nc=30, nt=60)
    model.predict(xc[:20], yc[:20], xt[:40])  # buckets 32 / 64
    first = len(traces)
    for nc, nt in [(17, 33), (25, 50), (32, 64), (30, 41)]:
        model.predict(xc[:nc], yc[:nc], xt[:nt])
    assert len(traces) == first
    model.predict(xc[:5], yc[:5], xt[:40])  # a new context bucket: one more trace
    assert len(traces) == first + 1


@pytest.mark.parametrize("name", ["anp-rbf", pytest.param("mpanp-rbf", marks=pytest.mark.slow)])
def test_shipped_models_use_their_context(name):
    """Deliverable 3 of issue 14: a model that ignored its context would predict alike for the
    contexts y and -y. At targets next to the context points the predictions must differ by
    most of the context's difference and follow the context's values."""
    from neural_processes import from_pretrained

    model = from_pretrained(name)
    x = np.linspace(-1.8, 1.8, 10, dtype=np.float32)[:, None]
    y = 0.8 * np.sin(2 * x) + 0.3
    xt = x + 0.05
    up, _ = model(x, y, xt)
    down, _ = model(x, -y, xt)
    assert np.mean(np.abs(up - down)) > 0.7 * np.mean(np.abs(2 * y))
    assert np.corrcoef(up[:, 0], y[:, 0])[0, 1] > 0.9
    assert np.corrcoef(down[:, 0], -y[:, 0])[0, 1] > 0.9
    assert np.mean(np.abs(up - y)) < 0.3 * np.mean(np.abs(y))
    assert np.mean(np.abs(down + y)) < 0.3 * np.mean(np.abs(y))

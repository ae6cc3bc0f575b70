"""Relative L2 / H1 errors against analytic norms of sine and cosine fields."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from operators import losses


def grid(n, periodic):
    x = np.arange(n) / n if periodic else np.linspace(0, 1, n)
    return np.meshgrid(x, x, indexing="ij")


def f32(a):
    return jnp.asarray(np.asarray(a)[None, ..., None] if np.ndim(a) == 2 else a, jnp.float32)


def test_l2_norm_periodic_exact():
    X, Y = grid(32, True)
    u = np.sin(2 * np.pi * X) * np.sin(4 * np.pi * Y)  # ||u||^2 = 1/4
    np.testing.assert_allclose(losses.l2_norm_sq(f32(u), True), [0.25], rtol=1e-5)


def test_rel_l2_analytic():
    X, Y = grid(64, True)
    true = np.sin(2 * np.pi * X) * np.sin(2 * np.pi * Y)  # norm^2 1/4
    err = 0.1 * np.cos(4 * np.pi * X)  # norm^2 0.01 / 2
    got = losses.rel_l2_per_sample(f32(true + err), f32(true), periodic=True)
    np.testing.assert_allclose(got, [np.sqrt(0.005 / 0.25)], rtol=1e-4)


def test_trapezoid_on_node_grid():
    X, Y = grid(129, False)
    u = X * Y**2  # integral of u^2 = 1/3 * 1/5
    np.testing.assert_allclose(losses.l2_norm_sq(f32(u), False), [1 / 15], rtol=5e-4)  # O(h^2)


def test_h1_spectral_analytic():
    X, Y = grid(32, True)
    u = np.sin(2 * np.pi * X) + np.cos(6 * np.pi * Y)  # ||u||^2 = 1, ||grad u||^2 = (4 pi^2 + 36 pi^2)/2
    want = 1 + 20 * np.pi**2
    np.testing.assert_allclose(losses.h1_norm_sq(f32(u), "spectral"), [want], rtol=1e-4)


def test_h1_fd_periodic_and_node_converge_to_analytic():
    for n, periodic in [(256, True), (257, False)]:
        X, Y = grid(n, periodic)
        if periodic:
            u, want = np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y), 0.25 + 2 * np.pi**2
        else:  # u = sin(pi x) y: ||u||^2 = 1/6, ||u_x||^2 = pi^2/6, ||u_y||^2 = 1/2
            u, want = np.sin(np.pi * X) * Y, 1 / 6 + np.pi**2 / 6 + 0.5
        np.testing.assert_allclose(losses.h1_norm_sq(f32(u), "fd", periodic), [want], rtol=2e-3)


def test_rel_h1_weights_the_derivative():
    """A high-frequency error counts more in H1 than in L2 (by the analytic factor)."""
    X, _Y = grid(64, True)
    true = np.sin(2 * np.pi * X)
    err = 0.01 * np.sin(16 * np.pi * X)
    pred, t = f32(true + err), f32(true)
    l2 = float(losses.rel_l2(pred, t, periodic=True))
    h1 = float(losses.rel_h1(pred, t, "spectral"))
    np.testing.assert_allclose(l2, 0.01, rtol=1e-4)
    want = np.sqrt(1e-4 * (1 + (16 * np.pi) ** 2) / (1 + (2 * np.pi) ** 2))
    np.testing.assert_allclose(h1, want, rtol=1e-4)
    # central differences see sin(2 pi k x) with the wavenumber sin(2 pi k h) / h (exact here)
    k_fd = lambda k: np.sin(2 * np.pi * k / 64) * 64
    want_fd = np.sqrt(1e-4 * (1 + k_fd(8) ** 2) / (1 + k_fd(1) ** 2))
    np.testing.assert_allclose(losses.rel_h1(pred, t, "fd", periodic=True), want_fd, rtol=1e-3)


def test_mgno_h1_matches_reference_formula():
    """The MgNO HsLoss: fftn (ortho), weight sqrt(1 + kx^2 + ky^2), k truncated to |k| < 20."""
    rng = np.random.default_rng(0)
    pred, true = rng.normal(size=(3, 48, 48, 1)), rng.normal(size=(3, 48, 48, 1))
    k = np.abs(np.fft.fftfreq(48, 1 / 48))
    k = k * (k < 20)
    w = np.sqrt(1 + k[:, None] ** 2 + k[None, :] ** 2)[None, ..., None]
    P, T = (np.fft.fftn(a, axes=(1, 2), norm="ortho") * w for a in (pred, true))
    want = np.mean(np.linalg.norm((P - T).reshape(3, -1), axis=1) / np.linalg.norm(T.reshape(3, -1), axis=1))
    np.testing.assert_allclose(losses.mgno_rel_h1(f32(pred), f32(true)), want, rtol=1e-4)


@pytest.mark.slow
def test_mean_is_mean_of_per_sample_and_jit():
    rng = np.random.default_rng(1)
    p, t = f32(rng.normal(size=(4, 10, 12, 2))), f32(rng.normal(size=(4, 10, 12, 2)))
    per = losses.rel_l2_per_sample(p, t)
    assert per.shape == (4,)
    np.testing.assert_allclose(jax.jit(losses.rel_l2)(p, t), per.mean(), rtol=1e-6)
    per_h1 = losses.rel_h1_per_sample(p, t, "fd", periodic=False)
    np.testing.assert_allclose(jax.jit(lambda a, b: losses.rel_h1(a, b, "fd", periodic=False))(p, t),
                               per_h1.mean(), rtol=1e-6)
    assert jax.grad(lambda a: losses.rel_h1(a, t))(p).shape == p.shape


def test_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        losses.rel_l2(jnp.ones((2, 8, 8, 1)), jnp.ones((2, 8, 9, 1)))
    with pytest.raises(ValueError, match="channels"):
        losses.rel_l2(jnp.ones((2, 8)), jnp.ones((2, 8)))
    with pytest.raises(ValueError, match="unknown H1 kind"):
        losses.rel_h1(jnp.ones((2, 8, 1)), jnp.ones((2, 8, 1)), kind="sobolev")


def test_mgno_helmholtz_h1_is_numpy_gradient_formula():
    """The reference's HSloss_d: sqrt(sum 10 e^2 + (d_x e)^2 + (d_y e)^2) with torch.gradient
    (= numpy.gradient, edge_order=1) at spacing 1/n, batch mean; here against numpy."""
    rng = np.random.default_rng(0)
    pred, true = rng.normal(size=(2, 3, 17, 13, 2)).astype(np.float64)
    e = pred - true
    want = []
    for b in range(3):
        total = 10 * e[b] ** 2
        for ax, n in ((0, 17), (1, 13)):
            total = total + np.gradient(e[b], 1.0 / n, axis=ax) ** 2
        want.append(np.sqrt(total.sum()))
    with jax.enable_x64(True):
        got, mean = jax.jit(lambda p, t: (losses.mgno_helmholtz_h1_per_sample(p, t),
                                          losses.mgno_helmholtz_h1(p, t)))(pred, true)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
        assert float(mean) == pytest.approx(np.mean(want), rel=1e-12)


def test_mgno_helmholtz_h1_of_a_sine_error_converges_to_its_sobolev_norm():
    """e = sin(2 pi x) sin(2 pi y) on x_i = i/n: the grid sum is n^2 times the integral of
    10 e^2 + |grad e|^2 = 10/4 + 2 pi^2, so loss / n tends to sqrt(2.5 + 2 pi^2), at second
    order (measured 6.7e-3 at n = 32, 3.7e-4 at n = 128)."""
    exact = np.sqrt(2.5 + 2 * np.pi**2)
    errs = []
    loss_fn = jax.jit(losses.mgno_helmholtz_h1)
    for n in (32, 128):
        x = np.arange(n) / n
        e = (np.sin(2 * np.pi * x)[:, None] * np.sin(2 * np.pi * x)[None, :])[None, ..., None]
        loss = float(loss_fn(e.astype(np.float32), np.zeros_like(e, np.float32)))
        errs.append(abs(loss / n / exact - 1))
    assert errs[1] < 1e-3 and errs[1] < errs[0] / 8
    with pytest.raises(ValueError, match="shapes differ"):
        losses.mgno_helmholtz_h1(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4, 5, 1)))

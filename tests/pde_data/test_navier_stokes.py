"""Navier-Stokes vorticity solver: Taylor-Green decay, the forcing's steady balance, an
independent finite-difference solver, inviscid invariants, time order and generation."""

import numpy as np
import pytest

from pde_data import grf
from pde_data import navier_stokes as ns
from pde_data.schema import validate


def _grid(s):
    x = np.arange(s) / s
    return np.meshgrid(x, x, indexing="ij")


def test_taylor_green_vortex_decays_exactly():
    # Modes with |k|^2 = 2 only: the advection term vanishes, w = w0 exp(-8 pi^2 nu t).
    X, Y = _grid(32)
    w0 = 2 * np.sin(2 * np.pi * X) * np.sin(2 * np.pi * Y) + np.cos(2 * np.pi * (X + Y))
    nu, times = 1e-2, [0.25, 1.0]
    w = ns.solve(w0[None], nu, times, dt=1e-3, forcing_amplitude=0.0)
    for i, t in enumerate(times):
        exact = w0 * np.exp(-8 * np.pi**2 * nu * t)
        assert np.abs(w[0, ..., i] - exact).max() < 1e-7
    assert np.abs(w[0, ..., -1]).max() < 0.5 * np.abs(w0).max()  # it did decay


def test_forcing_steady_balance():
    # f lives on |k|^2 = 2: w_s = f / (8 pi^2 nu) is steady and from rest w = w_s (1 - e^{-8 pi^2 nu t}).
    s, nu = 32, 1e-2
    ws = ns.forcing(s) / (8 * np.pi**2 * nu)
    steady = ns.solve(ws, nu, 2.0, dt=1e-2)
    assert np.abs(steady - ws).max() < 1e-12 * np.abs(ws).max() + 1e-14
    times = [0.5, 2.0]
    w = ns.solve(np.zeros((s, s)), nu, times, dt=1e-3)
    for i, t in enumerate(times):
        assert np.abs(w[..., i] - ws * (1 - np.exp(-8 * np.pi**2 * nu * t))).max() < 1e-8


def _fd_reference(w, nu, t, dt, f):
    """Independent solver: 2nd-order central differences (skew-symmetric advection), FD Poisson
    solve, classical RK4."""
    s = w.shape[0]
    h = 1.0 / s
    k = np.fft.fftfreq(s, 1.0 / s)
    eig = 4 / h**2 * (np.sin(np.pi * k[:, None] * h) ** 2 + np.sin(np.pi * k[None, :] * h) ** 2)
    eig[0, 0] = 1.0

    def dx(a):
        return (np.roll(a, -1, 0) - np.roll(a, 1, 0)) / (2 * h)

    def dy(a):
        return (np.roll(a, -1, 1) - np.roll(a, 1, 1)) / (2 * h)

    def lap(a):
        return (np.roll(a, -1, 0) + np.roll(a, 1, 0) + np.roll(a, -1, 1) + np.roll(a, 1, 1)
                - 4 * a) / h**2

    def rhs(w):
        ph = np.fft.fft2(w) / eig
        ph[0, 0] = 0
        psi = np.real(np.fft.ifft2(ph))
        u, v = dy(psi), -dx(psi)
        adv = 0.5 * (u * dx(w) + v * dy(w)) + 0.5 * (dx(u * w) + dy(v * w))
        return -adv + nu * lap(w) + f

    for _ in range(round(t / dt)):
        k1 = rhs(w)
        k2 = rhs(w + dt / 2 * k1)
        k3 = rhs(w + dt / 2 * k2)
        k4 = rhs(w + dt * k3)
        w = w + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return w


def _smooth_w0(s):
    X, Y = _grid(s)
    return (3 * np.sin(2 * np.pi * X) * np.cos(4 * np.pi * Y) + 2 * np.cos(2 * np.pi * (X - Y))
            + np.sin(2 * np.pi * Y))


def test_nonlinear_flow_agrees_with_independent_finite_differences():
    nu, t = 1e-3, 0.5
    w = ns.solve(_smooth_w0(64), nu, t, dt=1e-3)
    change = np.abs(w - _smooth_w0(64)).max()
    assert change > 1.0  # strongly nonlinear over this horizon
    errs = []
    for s in (32, 64):
        fd = _fd_reference(_smooth_w0(s), nu, t, 2e-3, ns.forcing(s))
        errs.append(np.abs(fd - w[:: 64 // s, :: 64 // s]).max())
    order = np.log2(errs[0] / errs[1])
    assert errs[1] < 0.02 * change
    assert 1.7 < order < 2.4, (errs, order)


def test_inviscid_unforced_flow_conserves_energy_and_enstrophy():
    w0 = np.asarray(grf.sample(0, 2, 64, alpha=2.5, tau=7.0, dtype=np.float64))
    # keep w0 inside the 2/3 band, where the dealiased Galerkin system conserves both exactly
    k = np.fft.fftfreq(64, 1 / 64)
    band = (np.abs(k)[:, None] <= 21) & (np.abs(k)[None, :] <= 21)
    w0 = np.real(np.fft.ifft2(np.fft.fft2(w0) * band))
    w = ns.solve(w0, 0.0, 0.5, dt=1e-3, forcing_amplitude=0.0)
    assert np.abs(w - w0).max() > 0.05 * np.abs(w0).max()

    def invariants(w):
        wh = np.fft.fft2(w, axes=(-2, -1))
        lap = 4 * np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2)
        lap[0, 0] = np.inf
        return (np.abs(wh) ** 2).sum(axis=(-2, -1)), (np.abs(wh) ** 2 / lap).sum(axis=(-2, -1))

    for before, after in zip(invariants(w0), invariants(w)):
        np.testing.assert_allclose(after, before, rtol=1e-6)


def test_time_error_is_second_order():
    w0 = _smooth_w0(32)
    ref = ns.solve(w0, 1e-3, 0.2, dt=1.25e-3)
    errs = [np.abs(ns.solve(w0, 1e-3, 0.2, dt=dt) - ref).max() for dt in (2e-2, 1e-2)]
    order = np.log2(errs[0] / errs[1])
    assert 1.7 < order < 2.4, (errs, order)


def test_generate_schema_subsampling_and_defaults():
    ds = ns.generate(1, 2, 16, times=[0.05, 0.1], dt=1e-3)
    validate(ds)
    assert ds["w0"].shape == (2, 16, 16) and ds["w"].shape == (2, 16, 16, 2)
    assert ds["w"].dims == ("sample", "x", "y", "t")
    assert ds.attrs["solve_resolution"] == 64 and ds.attrs["nu"] == 1e-3
    keys = grf.sample_keys(1, 0, 2)
    fine = ns.initial_condition(keys, 2, 64)
    np.testing.assert_array_equal(ds["w0"].values, fine[:, ::4, ::4].astype(np.float32))
    ref = ns.solve(fine, 1e-3, 0.1, dt=1e-3)[:, ::4, ::4]
    np.testing.assert_allclose(ds["w"].values[..., 1], ref, rtol=1e-5, atol=1e-6)
    p = ns.params(64, nu=1e-4)
    assert p["times"] == [float(t) for t in range(1, 31)] and p["solve_resolution"] == 256
    assert p["grf_sigma"] == pytest.approx(7.0**1.5)


@pytest.mark.parametrize(
    "w0, kwargs, match",
    [(np.zeros((1, 8, 6)), {}, "shape"), (np.zeros((1, 7, 7)), {}, "even"),
     (np.full((8, 8), np.inf), {}, "NaN or inf"), (np.zeros((8, 8)), {"nu": -1.0}, "nu"),
     (np.zeros((8, 8)), {"t": [-1.0]}, "times")])
def test_bad_input_is_named(w0, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ns.solve(w0, **kwargs)

"""Unit-Gaussian normalisers: moments, exact inverse, eps floor, resampling, state, streaming."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from pde_data.coordinates import grid_axis, resample_matrix
from pde_data.normalize import normalizer_from_state
from pde_data.pipeline import FieldData, PointwiseGaussian, UnitGaussian


def fields(n=50, shape=(6, 5), c=3, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 10.0, 0.1])[:c]
    return (rng.normal(size=(n, *shape, c)) * scale + np.arange(c)).astype(np.float32)


def test_unit_gaussian_moments_and_inverse():
    x = fields()
    un = UnitGaussian.fit(x)  # classmethod style
    np.testing.assert_allclose(un.mean, x.reshape(-1, 3).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(un.std, x.reshape(-1, 3).std(0), rtol=1e-5)
    z = un.encode(x)
    np.testing.assert_allclose(z.reshape(-1, 3).mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.reshape(-1, 3).std(0), 1, rtol=1e-4)
    np.testing.assert_allclose(un.decode(z), x, rtol=1e-5, atol=1e-5)
    # independent of resolution: a coarser grid encodes with the same per-channel stats
    np.testing.assert_allclose(un.encode(x[:, ::2, ::2]), z[:, ::2, ::2], rtol=1e-6)


def test_pointwise_moments_and_inverse():
    x = fields(shape=(7,), c=2)
    pw = PointwiseGaussian().fit(x)  # instance style
    assert pw.mean.shape == (7, 2)
    np.testing.assert_allclose(pw.mean, x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pw.std, x.std(0), rtol=1e-5)
    np.testing.assert_allclose(pw.decode(pw.encode(x)), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [UnitGaussian, PointwiseGaussian])
def test_constant_field_stays_finite(cls):
    x = np.full((10, 4, 4, 2), 3.0, np.float32)
    x[..., 1] = np.random.default_rng(0).normal(size=(10, 4, 4))
    norm = cls.fit(x)
    z = norm.encode(x)
    assert np.all(np.isfinite(z))
    np.testing.assert_array_equal(z[..., 0], 0.0)
    np.testing.assert_allclose(norm.decode(z), x, rtol=1e-6, atol=1e-6)
    assert np.all(norm.std >= norm.eps)


def test_passthrough_channels_unchanged():
    x = fields(c=3)
    pw = PointwiseGaussian.fit(x, passthrough=1)
    np.testing.assert_array_equal(pw.encode(x)[..., 2], x[..., 2])
    assert not np.allclose(pw.encode(x)[..., 0], x[..., 0])


def test_state_round_trip_through_npz(tmp_path):
    x = fields()
    for norm in (UnitGaussian(eps=1e-4).fit(x), PointwiseGaussian(periodic=True).fit(x)):
        np.savez(tmp_path / "n.npz", **norm.state())
        with np.load(tmp_path / "n.npz", allow_pickle=False) as f:
            state = dict(f)
        back = normalizer_from_state(state)
        assert type(back) is type(norm) and back.eps == norm.eps and back.periodic == norm.periodic
        np.testing.assert_array_equal(back.encode(x), norm.encode(x))
        type(norm).from_state(state)
    with pytest.raises(ValueError, match="not 'unit'"):
        UnitGaussian.from_state(PointwiseGaussian.fit(x).state())
    with pytest.raises(ValueError, match="corrupt"):
        normalizer_from_state({**UnitGaussian.fit(x).state(), "std": np.zeros(3)})
    with pytest.raises(ValueError, match="not fitted"):
        UnitGaussian().encode(x)


def test_jit_with_normaliser_as_argument_and_closure():
    import jax
    import jax.numpy as jnp

    x = fields(shape=(8,), c=2)
    pw = PointwiseGaussian(periodic=True).fit(x)
    ref = pw.encode(x)
    out = jax.jit(lambda n, a: n.encode(a))(pw, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-5)
    out2 = jax.jit(lambda a: pw.decode(pw.encode(a)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out2), x, rtol=1e-5, atol=1e-5)
    fine = jax.jit(lambda n, a: n.encode(a))(pw, jnp.zeros((3, 16, 2)))  # resampled under jit
    assert fine.shape == (3, 16, 2)


def test_channel_mismatch_error():
    un = UnitGaussian.fit(fields(c=3))
    with pytest.raises(ValueError, match="3 channels"):
        un.encode(np.zeros((2, 6, 5, 2), np.float32))
    pw = PointwiseGaussian.fit(fields(c=3))
    with pytest.raises(ValueError, match="cannot encode"):
        pw.encode(np.zeros((2, 6, 5, 2), np.float32))


def test_nan_in_fit_is_an_error():
    x = fields()
    x[3, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        UnitGaussian.fit(x)


# -- resolution: pointwise statistics follow the grid ------------------------------------------
def _node_fields(s, n=40, seed=0):
    """Node grid on [0,1]^2: mean field affine in (x, y), std a constant, i.e. samples
    m(x, y) + sigma * z_i, so the exact pointwise moments are known at every resolution."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1, 1, 1))
    g = grid_axis(s, periodic=False)
    X, Y = np.meshgrid(g, g, indexing="ij")
    m = (1.0 + 2.0 * X - 3.0 * Y)[None, ..., None]
    return (m + 0.5 * z).astype(np.float64)


def _periodic_fields(s, n=40, seed=0):
    """Periodic grid: mean field a trigonometric polynomial (band-limited), std constant."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1, 1))
    g = grid_axis(s, periodic=True)
    m = (1.0 + np.sin(2 * np.pi * g) + 0.3 * np.cos(4 * np.pi * g))[None, :, None]
    return m + 2.0 * z


def test_pointwise_resampled_at_double_resolution_node_grid():
    coarse, fine = _node_fields(9), _node_fields(17)  # 2x resolution of the node grid
    pw = PointwiseGaussian(periodic=False).fit(coarse)
    exact = PointwiseGaussian(periodic=False).fit(fine)
    z = pw.encode(fine.astype(np.float32))
    np.testing.assert_allclose(z, exact.encode(fine.astype(np.float32)), rtol=1e-4, atol=1e-4)
    # at the coarse nodes the fine encoding equals the coarse one
    np.testing.assert_allclose(z[:, ::2, ::2], pw.encode(coarse.astype(np.float32)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pw.decode(z), fine, rtol=1e-4, atol=1e-4)


def test_pointwise_resampled_at_double_resolution_periodic():
    coarse, fine = _periodic_fields(8), _periodic_fields(16)
    pw = PointwiseGaussian(periodic=True).fit(coarse)
    exact = PointwiseGaussian(periodic=True).fit(fine)
    np.testing.assert_allclose(pw.encode(fine.astype(np.float32)), exact.encode(fine.astype(np.float32)),
                               rtol=1e-4, atol=1e-4)
    # linear interpolation on the periodic grid is only approximate for this field
    lin = PointwiseGaussian(periodic=True, method="linear").fit(coarse)
    err = np.abs(lin.encode(fine.astype(np.float32)) - exact.encode(fine.astype(np.float32))).max()
    assert 1e-3 < err < 0.5


def test_resample_matrices_against_analytic_functions():
    def f(t):
        return 1 + np.sin(2 * np.pi * t) + 0.2 * np.cos(6 * np.pi * t)

    for n, m in [(8, 16), (16, 8), (9, 5), (8, 24)]:
        M = resample_matrix(n, m, True)
        np.testing.assert_allclose(M @ f(grid_axis(n, True)), f(grid_axis(m, True)), atol=1e-12)
    M = resample_matrix(5, 13, False)
    np.testing.assert_allclose(M @ (3 * grid_axis(5, False) - 1), 3 * grid_axis(13, False) - 1, atol=1e-12)
    np.testing.assert_allclose(resample_matrix(9, 5, False), np.eye(9)[::2], atol=1e-12)


# -- streaming fit -----------------------------------------------------------------------------
def test_streamed_fit_equals_in_memory_fit(tmp_path):
    rng = np.random.default_rng(4)
    s = 9
    g = np.linspace(0, 1, s)
    ds = xr.Dataset({"a": (("sample", "x", "y"), rng.normal(size=(30, s, s)) * 5 + 2),
                     "u": (("sample", "x", "y"), rng.normal(size=(30, s, s)))},
                    coords={"x": g, "y": g}, attrs={"pde": "test", "input_vars": "a", "output_vars": "u"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(tmp_path / "s.zarr", encoding={"a": {"chunks": (4, s, s)}, "u": {"chunks": (4, s, s)}})
    z = FieldData.from_dataset(tmp_path / "s.zarr", coords=True).split(20, seed=1)[0]
    m = FieldData.from_dataset(ds, coords=True).split(20, seed=1)[0]
    assert z.streaming
    for kind in ("unit", "pointwise"):
        zx, zy = z.fit_normalizers(kind)
        mx, my = m.fit_normalizers(kind)
        np.testing.assert_allclose(zx.mean, mx.mean, rtol=1e-6)
        np.testing.assert_allclose(zx.std, mx.std, rtol=1e-6)
        np.testing.assert_allclose(zy.std, my.std, rtol=1e-6)
        # coordinate channels pass through
        np.testing.assert_array_equal(zx.mean[..., 1:], 0.0)
        np.testing.assert_array_equal(zx.std[..., 1:], 1.0)
    # chunked accumulation (3 samples at a time) equals one-pass moments
    small = UnitGaussian.fit(z.x, chunk_size=3)
    np.testing.assert_allclose(small.mean, np.asarray(m.x).reshape(-1, 3).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small.std, np.maximum(np.asarray(m.x).reshape(-1, 3).std(0), 1e-6), rtol=1e-5)


def test_saved_with_a_run_and_applied_consistently(tmp_path):
    from pde_data.runs import Run

    x = fields(shape=(8, 8), c=2)
    run = Run(tmp_path / "run")
    xn = PointwiseGaussian(periodic=True).fit(x[:40])  # training split only
    run.save_arrays("normalisers_x", xn.state())
    back = normalizer_from_state(Run(tmp_path / "run").load_arrays("normalisers_x"))
    held_out = x[40:]
    np.testing.assert_array_equal(back.encode(held_out), xn.encode(held_out))
    np.testing.assert_allclose(back.decode(xn.encode(held_out)), held_out, rtol=1e-5, atol=1e-5)


def test_input_normaliser_never_divides_by_a_floored_std():
    """A small train split where a grid point never changes (a two-phase coefficient): the
    input normaliser scales that point by its channel's std, not by eps = 1e-6, so a value the
    train split never showed there stays O(1) instead of becoming 1e6 (#16). Outputs, which are
    only decoded, keep the floor. Both say what they did."""
    rng = np.random.default_rng(0)
    x = np.where(rng.random((4, 8, 8, 1)) > 0.5, 12.0, 3.0).astype(np.float32)
    x[:, 2, 3, 0] = 3.0  # constant over the train split at one point
    unseen = x[:1].copy()
    unseen[0, 2, 3, 0] = 12.0
    floored = PointwiseGaussian().fit(x)
    assert floored.small_std == "floor" and floored.n_floored >= 1
    assert np.abs(np.asarray(floored.encode(unseen))).max() > 1e6  # the silent blow-up
    safe = PointwiseGaussian(small_std="fallback").fit(x)
    z = np.asarray(safe.encode(unseen))
    assert np.abs(z).max() < 10 and safe.n_fallback >= 1 and safe.n_floored == 0
    np.testing.assert_allclose(np.asarray(safe.decode(safe.encode(x))), x, rtol=1e-5)
    summary = safe.summary()
    assert summary["small_std"] == "fallback" and "channel's std" in summary["note"]
    back = normalizer_from_state(safe.state())
    assert (back.small_std, back.n_fallback) == ("fallback", safe.n_fallback)
    np.testing.assert_array_equal(np.asarray(back.std), np.asarray(safe.std))
    # a channel constant everywhere is scaled by 1 (nothing is known of its scale)
    const = PointwiseGaussian(small_std="fallback").fit(np.full((3, 4, 4, 1), 5.0, np.float32))
    np.testing.assert_array_equal(np.asarray(const.std), 1.0)
    unit = UnitGaussian(small_std="fallback").fit(np.full((3, 4, 4, 1), 5.0, np.float32))
    assert np.asarray(unit.encode(np.full((1, 4, 4, 1), 6.0, np.float32))).max() == 1.0


def test_fit_normalizers_uses_the_fallback_for_inputs_only():
    rng = np.random.default_rng(1)
    x = rng.random((5, 6, 6, 1)).astype(np.float32)
    x[:, 0, 0] = 1.0
    y = np.zeros((5, 6, 6, 1), np.float32)
    y[:, 1:-1, 1:-1] = rng.random((5, 4, 4, 1))  # zero Dirichlet boundary
    xn, yn = FieldData(x, y).fit_normalizers("pointwise")
    assert (xn.small_std, yn.small_std) == ("fallback", "floor")
    assert xn.n_fallback == 1 and yn.n_floored == 20
    with pytest.raises(ValueError, match="0 samples"):
        FieldData(x, y).subset([]).fit_normalizers("unit")

"""One-step pairs of trajectory datasets (``pde_data.one_step``): which snapshots pair up, in
which order, and what is refused."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pde_data.one_step import INPUT_VAR, OUTPUT_VAR, one_step_pairs, trajectories, trajectory_rows


def trajectory_dataset(n=3, n_times=5, s=4):
    """``w0`` / ``w`` whose value at every point encodes (trajectory k, time index i): 100 k + i
    (i = 0 the initial field), plus a spatial pattern so the axes cannot be confused."""
    pattern = np.arange(s * s, dtype=np.float32).reshape(s, s) / 1000
    k = np.arange(n, dtype=np.float32)[:, None, None]
    w0 = 100 * k + pattern
    w = np.stack([100 * k + i + pattern for i in range(1, n_times + 1)], axis=-1)
    x = np.arange(s) / s
    return xr.Dataset({"w0": (("sample", "x", "y"), w0), "w": (("sample", "x", "y", "t"), w)},
                      coords={"sample": np.arange(n), "x": x, "y": x,
                              "t": np.arange(1.0, n_times + 1)},
                      attrs={"pde": "navier_stokes", "input_vars": ["w0"], "output_vars": ["w"]})


def codes(field):
    """The (100 k + i) code of each sample of a pairs variable."""
    return np.round(np.asarray(field)[:, 0, 0]).astype(int)


def test_pairs_follow_the_reference_window_trajectory_major():
    ds = trajectory_dataset()
    pairs = one_step_pairs(ds, steps=3)  # first=1: from the first stored snapshot, as the reference
    assert pairs.sizes["sample"] == 9 and pairs.attrs["input_vars"] == [INPUT_VAR]
    assert pairs.attrs["output_vars"] == [OUTPUT_VAR] and pairs.attrs["pde"] == "navier_stokes"
    np.testing.assert_array_equal(codes(pairs[INPUT_VAR]), [1, 2, 3, 101, 102, 103, 201, 202, 203])
    np.testing.assert_array_equal(codes(pairs[OUTPUT_VAR]), codes(pairs[INPUT_VAR]) + 1)
    np.testing.assert_array_equal(pairs["trajectory"], np.repeat([0, 1, 2], 3))
    np.testing.assert_array_equal(pairs["time"], np.tile([1.0, 2.0, 3.0], 3))
    # the spatial layout is the field's own
    np.testing.assert_allclose(pairs[INPUT_VAR].values[4], ds["w"].values[1, :, :, 1])
    np.testing.assert_allclose(pairs[OUTPUT_VAR].values[4], ds["w"].values[1, :, :, 2])
    # from the initial field, and every pair by default
    np.testing.assert_array_equal(codes(one_step_pairs(ds, steps=2, first=0)[INPUT_VAR]),
                                  [0, 1, 100, 101, 200, 201])
    assert one_step_pairs(ds).sizes["sample"] == 3 * 4
    traj = trajectories(ds)
    assert traj.shape == (3, 6, 4, 4) and codes(traj[:, :, 0, 0].T.reshape(-1, 1, 1)).tolist() == [
        0, 100, 200, 1, 101, 201, 2, 102, 202, 3, 103, 203, 4, 104, 204, 5, 105, 205]


def test_trajectory_rows_select_whole_trajectories():
    np.testing.assert_array_equal(trajectory_rows([2, 0], 3), [6, 7, 8, 0, 1, 2])
    pairs = one_step_pairs(trajectory_dataset(), steps=3)
    assert set(pairs["trajectory"].values[trajectory_rows([1], 3)]) == {1}


def test_what_cannot_be_paired_is_refused():
    ds = trajectory_dataset(n_times=3)
    with pytest.raises(ValueError, match="need 5 snapshots"):
        one_step_pairs(ds, steps=3)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        one_step_pairs(ds, steps=0)
    with pytest.raises(ValueError, match="first must be"):
        one_step_pairs(ds, first=-1)
    static = ds.isel(t=0).drop_vars("t")
    with pytest.raises(ValueError, match="no 't' axis"):
        one_step_pairs(static)
    with pytest.raises(ValueError, match="one input and one output"):
        one_step_pairs(ds.assign_attrs(input_vars=["w0", "f"]))

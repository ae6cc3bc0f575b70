"""Prediction on point-set files: the first K points of each task are its context; the mean
and std at the rest come back with the inputs' coordinates, equal to ``model.predict``."""

import numpy as np
import pytest
import xarray as xr

from neural_processes.predict import predict_point_sets, write_prediction

from .conftest import small_model, write_point_sets


@pytest.mark.parametrize("y_3d", [False, True])
def test_prediction_matches_predict_and_keeps_coordinates(tmp_path, y_3d):
    path = write_point_sets(tmp_path / "t.nc", n_tasks=5, n_points=11, x_dim=2, y_3d=y_3d,
                            coords=True)
    model = small_model("cnp", x_dim=2)
    out = model.predict_dataset(path, n_context=4, batch_size=2)  # 3 chunks of tasks
    with xr.open_dataset(path) as ds:
        x = ds["x"].values
        y = ds["y"].values.reshape(5, 11, 1)
        assert list(out["task"].values) == list(ds["task"].values)
        np.testing.assert_array_equal(out["point"].values, ds["point"].values[4:])
    assert out.attrs["title"] == "test point sets" and out.attrs["n_context"] == 4
    assert out["mean"].dims == (("task", "point", "output") if y_3d else ("task", "point"))
    assert out["std"].attrs["units"] == "m"
    mean, std = model.predict(x[:, :4], y[:, :4], x[:, 4:])
    np.testing.assert_allclose(out["mean"].values.reshape(mean.shape), mean, rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(out["std"].values.reshape(std.shape), std, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out["x"].values, x[:, 4:])
    np.testing.assert_array_equal(out["y"].values.reshape(5, 7, 1), y[:, 4:])
    written = write_prediction(out, tmp_path / "p.nc")
    with xr.open_dataset(written) as back:
        np.testing.assert_array_equal(back["mean"].values, out["mean"].values)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_prediction(out, tmp_path / "p.nc")


def test_targets_need_no_values_but_the_context_does(tmp_path):
    model = small_model("cnp")
    path = write_point_sets(tmp_path / "t.nc", n_tasks=2, n_points=8, nan_targets_from=3)
    out = predict_point_sets(model, path, 3)
    assert "y" not in out and np.isfinite(out["mean"].values).all()
    with pytest.raises(ValueError, match="NaN or inf values among the first 4 points"):
        predict_point_sets(model, path, 4)
    with pytest.raises(ValueError, match="expects 3"):
        predict_point_sets(small_model("cnp", x_dim=3), path, 3)
    with xr.open_dataset(path) as ds, pytest.raises(ValueError, match="no variable"):
        predict_point_sets(model, ds.drop_vars("y"), 3)
    with pytest.raises(ValueError, match="n_context must be an integer"):
        predict_point_sets(model, path, 2.5)

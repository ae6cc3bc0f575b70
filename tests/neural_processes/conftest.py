"""Shared helpers of the neural-process tests: tiny model sizes, small point-set files and one
tiny training run made once per session through the command line."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OPBAYES_PROGRESS", "0")

DATA = Path(__file__).parent / "data"
TINY = {"width": 16, "enc_depth": 2, "dec_depth": 2, "heads": 2}
TINY_ARGS = ["--width", "16", "--enc-depth", "2", "--dec-depth", "2", "--heads", "2"]
# the session's tiny run: CNP on the RBF benchmark, 6 steps of 4 tasks, checkpoints every 3
TINY_TRAIN = ["--model", "cnp", "--data", "rbf", "--steps", "6", "--batch-size", "4",
              "--log-every", "3", "--ckpt-every", "3", "--no-progress", *TINY_ARGS]


def small_model(name, x_dim=1, y_dim=1, seed=0, **kw):
    from neural_processes.models import build_model

    return build_model({"model": name, "x_dim": x_dim, "y_dim": y_dim, **TINY, **kw}, seed=seed)


def write_point_sets(path, n_tasks=6, n_points=12, x_dim=1, y_3d=False, coords=False, seed=0,
                     nan_targets_from=None):
    """A small point-set netCDF file: ``y = sin(2 x_0) + noise``; with ``coords`` the task and
    point dimensions carry coordinates; ``nan_targets_from``: y is NaN from that point on."""
    import xarray as xr

    r = np.random.default_rng(seed)
    x = r.uniform(-2, 2, (n_tasks, n_points, x_dim)).astype(np.float32)
    y = (np.sin(2 * x[..., 0]) + 0.05 * r.normal(size=x.shape[:2])).astype(np.float32)
    if nan_targets_from is not None:
        y[:, nan_targets_from:] = np.nan
    yv = (("task", "point", "output"), y[..., None]) if y_3d else (("task", "point"), y)
    ds = xr.Dataset({"x": (("task", "point", "feature"), x), "y": yv},
                    attrs={"title": "test point sets"})
    ds["y"].attrs["units"] = "m"
    if coords:
        ds = ds.assign_coords(task=[f"t{i}" for i in range(n_tasks)],
                              point=np.arange(n_points) * 10)
    ds.to_netcdf(path, engine="h5netcdf")
    return Path(path)


def run_cli(capsys, *argv):
    """``(exit status, stdout, stderr)`` of ``python -m neural_processes ARGV`` in process."""
    from neural_processes.__main__ import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="session")
def tiny_run_master(tmp_path_factory):
    """One tiny finished run (``TINY_TRAIN``), trained once through ``main(["train", ...])``."""
    from neural_processes.__main__ import main

    path = tmp_path_factory.mktemp("np") / "tiny"
    assert main(["train", "--out", str(path), *TINY_TRAIN]) == 0
    return path


@pytest.fixture
def tiny_run(tiny_run_master, tmp_path):
    """A private copy of the session's tiny run (tests may write into it)."""
    dest = tmp_path / "tiny"
    shutil.copytree(tiny_run_master, dest)
    return dest

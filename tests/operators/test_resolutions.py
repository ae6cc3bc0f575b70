"""Multi-resolution training (``operators.resolutions``, ``train(resolutions=...)``,
``python -m operators train --resolutions``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pde_data
from operators.resolutions import resolution_of_step, resolution_plan, restrict, subsample_stride

from .conftest import assert_same_params, small_hparams, train_small


def test_plan_node_and_periodic_grids():
    assert resolution_plan([33, 65], (65, 65), periodic=False) == [(33, 2), (65, 1)]
    assert resolution_plan([17], (65,), periodic=False) == [(17, 4)]
    assert resolution_plan([32, 16], (64, 64), periodic=True) == [(32, 2), (16, 4)]
    assert subsample_stride(65, 33, False) == 2 and subsample_stride(64, 33, True) is None


@pytest.mark.parametrize(("res", "spatial", "periodic", "match"), [
    ([129], (65, 65), False, (r"resolution 129 cannot be reached from the data's node grid of 65x65 points "
                              r"\(finer than the data\).*reachable: \[2, 3, 5, 9, 17, 33, 65\]")),
    ([40], (65, 65), False, r"resolution 40 .*not a subsampling of it"),
    ([33], (64,), True, r"periodic grid of 64 points.*reachable: \[1, 2, 4, 8, 16, 32, 64\]"),
    ([33, 33], (65,), False, "list a grid twice"),
    ([], (65,), False, "at least one grid"),
    ([0], (65,), False, "not a number of grid points"),
])
def test_plan_refuses_unreachable_grids(res, spatial, periodic, match):
    with pytest.raises(ValueError, match=match):
        resolution_plan(res, spatial, periodic)


def test_restrict_keeps_the_nodes_of_the_coarser_grid():
    """Every other node of a node grid is the coarser node grid (both ends kept): the field
    ``f(x, y)`` sampled at 9 points restricted by 2 is ``f`` sampled at 5 points."""
    def sample(n):
        g = np.linspace(0, 1, n)
        xx, yy = np.meshgrid(g, g, indexing="ij")
        return (np.sin(3 * xx) * yy)[None, ..., None]

    x, y = restrict((sample(9), 2 * sample(9)), 2, dim=2)
    np.testing.assert_array_equal(x, sample(5))
    np.testing.assert_array_equal(y, 2 * sample(5))


def test_grid_of_a_step_is_a_pure_function_of_seed_and_step():
    a = [resolution_of_step(0, i, 3) for i in range(300)]
    assert a == [resolution_of_step(0, i, 3) for i in range(300)]
    assert a != [resolution_of_step(1, i, 3) for i in range(300)]
    assert set(np.bincount(a)) and min(np.bincount(a, minlength=3)) > 70  # roughly uniform
    assert resolution_of_step(5, 7, 1) == 0


@pytest.fixture(scope="module")
def darcy17(tmp_path_factory):
    """16 Darcy samples on a 17-point node grid (reachable: 9, 5, 3 and 2 points)."""
    d = tmp_path_factory.mktemp("darcy17")
    pde_data.save(pde_data.darcy.generate(0, 16, 17), d / "train.nc")
    return d / "train.nc"


def _count_step_compilations(monkeypatch):
    """The engine's jitted steps, collected as ``fit`` makes them."""
    from pde_data.runs import loop

    made = []
    original = loop.make_step

    def make_step(*args, **kw):
        made.append(original(*args, **kw))
        return made[-1]

    monkeypatch.setattr(loop, "make_step", make_step)
    return made


@pytest.mark.slow
def test_training_on_two_grids_compiles_once_per_grid(darcy17, tmp_path, monkeypatch):
    made = _count_step_compilations(monkeypatch)
    out = tmp_path / "run"
    res = train_small(darcy17, out, epochs=2, n_val=4, resolutions=[9, 17])  # 3 steps per epoch
    assert res["step"] == 6 and not res["stopped"]
    config = json.loads((out / "config.json").read_text())
    assert config["resolutions"] == [9, 17] and config["train_resolution"] == [17, 17]
    grids = {resolution_of_step(0, i, 2) for i in range(6)}
    assert len(grids) == 2  # both grids are drawn in these 6 steps
    assert made[0]._cache_size() == 2  # one compilation per grid, reused afterwards


@pytest.mark.slow
def test_multi_resolution_resume_is_exact(darcy17, tmp_path):
    full, parts = tmp_path / "full", tmp_path / "parts"
    train_small(darcy17, full, epochs=2, n_val=4, resolutions=[9, 17])
    first = train_small(darcy17, parts, epochs=2, n_val=4, resolutions=[9, 17], max_steps=4)
    assert first["stopped"] and first["step"] == 4
    train_small(darcy17, parts, epochs=2, n_val=4, resolutions=[9, 17])
    assert_same_params(full, parts)
    from pde_data.runs import RunError

    with pytest.raises((RunError, ValueError), match="resolutions"):  # another list is another run
        train_small(darcy17, parts, epochs=2, n_val=4, resolutions=[5, 17])


@pytest.mark.slow  # moved out of the 6-minute default suite
def test_grids_the_model_cannot_serve_are_refused_before_the_run_starts(darcy17, tmp_path):
    from operators.train import train

    out = tmp_path / "vit"
    hp = {"embed": 8, "depth": 1, "heads": 2, "mlp_ratio": 1, "patch_size": 4, "pos_interp": "refuse"}
    with pytest.raises(ValueError, match=r"resolution 9: the model cannot serve the grid 9x9.*learned for 5\^2"):
        train(darcy17, "vit", out, epochs=1, batch_size=4, n_val=4, hparams=hp, progress=False, resolutions=[9, 17])
    with pytest.raises(ValueError, match="resolution 33 cannot be reached"):
        train_small(darcy17, out, epochs=1, n_val=4, resolutions=[33])
    assert not out.exists()


def test_cli_resolutions(darcy17, tmp_path, capsys):
    from operators.__main__ import main

    base = ["train", "--data", str(darcy17), "--model", "fno", "--out", str(tmp_path / "r"), "--epochs", "1",
            "--batch-size", "4", "--n-val", "4", "--no-progress"]
    base += [f"--hparam={k}={json.dumps(v)}" for k, v in small_hparams().items()]
    assert main([*base, "--resolutions", "9,x"]) == 2
    assert "--resolutions expects grid sizes like 33,65" in capsys.readouterr().err
    assert main([*base, "--resolutions", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "resolution 8 cannot be reached" in err

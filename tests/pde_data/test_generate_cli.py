"""``python -m pde_data``: verbs, reproducible generation, resume after a kill, argument checks."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pde_data import generate as gen
from pde_data.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, **kw):
    env = {**os.environ, "OPBAYES_PROGRESS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pde_data", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _load(path):
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def test_help_lists_the_verbs():
    out = subprocess.run([sys.executable, "-m", "pde_data", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0
    for verb in ("generate", "info", "convert"):
        assert verb in out.stdout


def test_kill_and_resume_gives_the_uninterrupted_file(tmp_path):
    args = ["generate", "darcy", "--n", "24", "--resolution", "97", "--seed", "11",
            "--chunk-size", "1"]
    out = tmp_path / "d.nc"
    part = gen.partial_path(out)
    proc = _cli(*args, "--out", str(out))
    deadline = time.time() + 120
    while time.time() < deadline and len(list(part.glob("chunk_*.npz"))) < 2:
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    done = len(list(part.glob("chunk_*.npz")))
    if out.exists():
        pytest.skip("the run finished before it could be killed")
    assert 2 <= done < 24 and (part / "config.json").exists()

    # different arguments on the same partial folder are refused, naming the difference
    bad = _cli(*[a if a != "11" else "12" for a in args], "--out", str(out))
    _, err = bad.communicate(timeout=300)
    assert bad.returncode != 0 and "seed" in err and not out.exists()

    resumed = _cli(*args, "--out", str(out))
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"{done}/24" in err  # the bar starts at the chunks already on disk
    assert not part.exists()

    ref = tmp_path / "ref.nc"
    fresh = _cli(*args, "--chunk-size", "5", "--out", str(ref))
    _, err = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, err
    a, b = _load(out), _load(ref)
    np.testing.assert_array_equal(a["a"].values, b["a"].values)
    np.testing.assert_allclose(a["u"].values, b["u"].values, rtol=1e-6, atol=0)
    assert a.attrs["seed"] == 11 and a.attrs["pde"] == "darcy"


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    paths = []
    for i, seed in enumerate((4, 4, 5)):
        p = tmp_path / f"b{i}.nc"
        rc = main(["generate", "burgers", "--n", "3", "--resolution", "64", "--seed", str(seed),
                   "--times", "0.5,1", "--out", str(p), "--no-progress"])
        assert rc == 0
        paths.append(p)
    d = [_load(p) for p in paths]
    np.testing.assert_array_equal(d[0]["u"].values, d[1]["u"].values)
    assert not np.allclose(d[0]["u0"].values, d[2]["u0"].values)
    assert list(d[0]["t"].values) == [0.5, 1.0]


def test_info_and_convert_verbs(tmp_path, capsys):
    src = tmp_path / "d.nc"
    assert main(["generate", "darcy", "--n", "2", "--resolution", "9", "--out", str(src),
                 "--no-progress"]) == 0
    assert main(["info", str(src)]) == 0
    assert "darcy" in capsys.readouterr().out
    dst = tmp_path / "d.zarr"
    assert main(["convert", str(src), str(dst)]) == 0
    assert dst.exists()


def test_bad_options_are_refused(tmp_path, capsys):
    out = str(tmp_path / "x.nc")
    assert main(["generate", "darcy", "--n", "2", "--resolution", "9", "--nu", "0.1",
                 "--out", out]) == 2
    assert "--nu does not apply to darcy" in capsys.readouterr().err
    assert main(["generate", "darcy", "--n", "2", "--resolution", "10",
                 "--solve-resolution", "33", "--out", out, "--no-progress"]) == 1
    assert "subsampling" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "heat", "--n", "2", "--resolution", "9", "--out", out])
    with pytest.raises(SystemExit):
        main(["generate", "burgers", "--n", "2", "--resolution", "8", "--times", "a,b",
              "--out", out])
    assert not Path(out).exists()

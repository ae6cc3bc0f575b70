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


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_file(tmp_path):
    args = ["generate", "darcy", "--n", "24", "--resolution", "97", "--seed", "11",
            "--chunk-size", "1"]
    out = tmp_path / "d.nc"
    part = gen.partial_path(out)
    proc = _cli(*args, "--out", str(out))
    deadline = time.time() + 120
    while time.time() < deadline and len(list(part.glob("chunk_*.done"))) < 2:
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    done = len(list(part.glob("chunk_*.done")))
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


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("python -m pde_data") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(w in err for w in words), err


def test_bad_options_are_refused(tmp_path, capsys):
    """The one error policy: exit 2 and one line, for usage errors and refused values alike."""
    out = str(tmp_path / "x.nc")
    assert main(["generate", "darcy", "--n", "2", "--resolution", "9", "--nu", "0.1",
                 "--out", out]) == 2
    _one_line_error(capsys, "--nu does not apply to darcy")
    assert main(["generate", "darcy", "--n", "2", "--resolution", "10",
                 "--solve-resolution", "33", "--out", out, "--no-progress"]) == 2
    _one_line_error(capsys, "subsampling")
    assert main(["generate", "heat", "--n", "2", "--resolution", "9", "--out", out]) == 2
    _one_line_error(capsys, "invalid choice")
    assert main(["generate", "burgers", "--n", "2", "--resolution", "8", "--times", "a,b",
                 "--out", out]) == 2
    _one_line_error(capsys, "--times")
    for bad in (["--n", "0"], ["--n", "-3"], ["--chunk-size", "0"], ["--nu", "nan"],
                ["--dt", "inf"], ["--times", "0:1e30:1e-30"], ["--times", "0:inf:1"]):
        args = {"--n": "2", "--chunk-size": "1", bad[0]: bad[1]}
        argv = ["generate", "burgers", "--resolution", "8", "--out", out]
        assert main([*argv, *[a for kv in args.items() for a in kv]]) == 2, bad
        _one_line_error(capsys, bad[0])
    assert not Path(out).exists()


# --------------------------------------------------------------- outputs and faults (#16)


def test_an_existing_output_is_never_replaced_without_overwrite(tmp_path, capsys):
    out = tmp_path / "d.nc"
    assert main(["generate", "darcy", "--n", "2", "--resolution", "9", "--out", str(out),
                 "--no-progress"]) == 0
    before = out.read_bytes()
    assert main(["generate", "darcy", "--n", "3", "--resolution", "9", "--seed", "5",
                 "--out", str(out), "--no-progress"]) == 2
    _one_line_error(capsys, "d.nc exists", "--overwrite")
    assert out.read_bytes() == before and not gen.partial_path(out).exists()
    src = tmp_path / "other.nc"
    assert main(["generate", "darcy", "--n", "1", "--resolution", "9", "--out", str(src),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["convert", str(src), str(out)]) == 2
    _one_line_error(capsys, "d.nc exists", "--overwrite")
    assert out.read_bytes() == before
    assert main(["convert", str(src), str(out), "--overwrite"]) == 0
    assert _load(out).sizes["sample"] == 1
    assert main(["generate", "darcy", "--n", "3", "--resolution", "9", "--seed", "5",
                 "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert _load(out).sizes["sample"] == 3


@pytest.mark.parametrize("name", ["x.h5", "x", "x.nc/"])
def test_an_unsupported_output_is_refused_before_any_sample_is_solved(tmp_path, capsys,
                                                                       monkeypatch, name):
    from pde_data import darcy

    def no_solving(*args, **kwargs):
        raise AssertionError("a sample was solved")

    monkeypatch.setattr(darcy, "generate_arrays", no_solving)
    (tmp_path / "x.nc").mkdir()
    out = str(tmp_path / name)
    assert main(["generate", "darcy", "--n", "40", "--resolution", "33", "--out", out,
                 "--no-progress"]) == 2
    _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nc"]  # no .partial, nothing


def _run_to_completion(args, out):
    proc = _cli(*args, "--out", str(out))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err


def _kill_at(proc, stage: str, out: Path, rng) -> str:
    """SIGKILL ``proc`` at ``stage``: ``early`` (a random moment of start-up), ``chunk`` (a
    random moment after a random number of finished chunks) or ``save`` (as soon as the
    temporary file of the final save appears). Returns where it was killed."""
    part = gen.partial_path(out)
    deadline = time.time() + 300
    if stage == "early":
        time.sleep(float(rng.uniform(0.0, 3.0)))
    elif stage == "chunk":
        want = int(rng.integers(1, 6))
        while time.time() < deadline and proc.poll() is None and \
                len(list(part.glob("chunk_*.done"))) < want:
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.1)))
    else:
        while time.time() < deadline and proc.poll() is None and \
                not any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir()):
            time.sleep(0.0005)
    if proc.poll() is not None:
        return "finished"
    chunks = len(list(part.glob("chunk_*.done")))
    saving = any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return f"{stage}: {chunks} chunks{', saving' if saving else ''}"


@pytest.mark.slow
@pytest.mark.parametrize("seed, suffix", [(0, ".nc"), (1, ".zarr"), (2, ".nc"), (3, ".zarr")])
def test_kill_9_at_random_points_then_rerun_gives_the_uninterrupted_data(tmp_path, seed,
                                                                         suffix):
    """Fault injection: kill -9 the generator at random points (start-up, after some chunks,
    during the final save), three times, then rerun the same command: the result equals an
    uninterrupted run's and nothing is left next to it (no .partial, no temporary store)."""
    args = ["generate", "darcy", "--n", "8", "--resolution", "97", "--seed", "7",
            "--chunk-size", "1", "--no-progress"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir(), run_dir.mkdir()
    ref, out = ref_dir / f"d{suffix}", run_dir / f"d{suffix}"
    _run_to_completion(args, ref)
    rng = np.random.default_rng(seed)
    killed = []
    for stage in rng.permutation(["early", "chunk", "save"]):
        if out.exists():
            break
        killed.append(_kill_at(_cli(*args, "--out", str(out)), str(stage), out, rng))
    if not out.exists():
        _run_to_completion(args, out)
    assert sorted(p.name for p in run_dir.iterdir()) == [out.name], killed
    a, b = pde_data_load(out), pde_data_load(ref)
    for name in ("a", "u"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert a.attrs == b.attrs
    if suffix == ".nc":
        assert out.read_bytes() == ref.read_bytes(), killed
    print(killed)


def pde_data_load(path):
    from pde_data import load

    return load(path)

"""Fuzzing the dataset readers: truncated and bit-flipped copies of small ``.nc``, ``.zarr``,
``.mat`` (v5 and v7.3), ``.h5`` and ``.pt`` files either load (and every value reads) or raise a
named error (``DataFormatError``, or another ``ValueError`` naming the file) -- never another
exception type, never a crash, never a runaway allocation.

The default run tries a few mutations per format; ``-m slow`` tries many."""

from __future__ import annotations

import gc
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from pde_data import darcy, load, save
from pde_data.errors import DataFormatError
from tests.pde_data.ptfiles import write_arrays
from tests.pde_data.test_formats_mat import savemat73

FIX = Path(__file__).parent / "fixtures"


def _originals(folder: Path) -> dict[str, Path]:
    ds = darcy.generate(0, 3, 9)
    a, u = ds["a"].values, ds["u"].values
    rng = np.random.default_rng(0)
    h5 = folder / "burgers_fuzz.h5"
    with h5py.File(h5, "w") as f:
        f["tensor"] = rng.standard_normal((3, 4, 16)).astype(np.float32)
        f["x-coordinate"] = np.linspace(0, 1, 16, endpoint=False)
        f["t-coordinate"] = np.linspace(0, 1, 5)
        f.attrs["nu"] = 0.01
    return {
        "nc": save(ds, folder / "darcy_fuzz.nc"),
        "zarr": save(ds, folder / "darcy_fuzz.zarr"),
        "mat5": Path(scipy.io.savemat(folder / "darcy5.mat", {"coeff": a, "sol": u}) or
                     folder / "darcy5.mat"),
        "mat73": savemat73(folder / "darcy73.mat", {"coeff": a, "sol": u}),
        "h5": h5,
        "pt": shutil.copy(FIX / "darcy_tiny.pt", folder / "darcy_tiny.pt"),
        "pt_bool": write_arrays(folder / "darcy_bool.pt", {"x": a > 5, "y": u}),
    }


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _mutants(original: Path, folder: Path, rng: np.random.Generator, count: int):
    """``count`` damaged copies: each truncates or flips bits in one file of the original."""
    for i in range(count):
        copy = folder / f"m{i}_{original.name}"
        if original.is_dir():
            shutil.copytree(original, copy)
        else:
            shutil.copy(original, copy)
        victim = rng.choice(_files(copy))
        data = bytearray(victim.read_bytes())
        if not data:
            continue
        if i % 3 == 0:  # truncate
            del data[int(rng.integers(0, len(data))):]
        else:  # flip 1-8 bits anywhere
            for _ in range(int(rng.integers(1, 9))):
                pos = int(rng.integers(0, len(data)))
                data[pos] ^= 1 << int(rng.integers(0, 8))
        victim.write_bytes(bytes(data))
        yield copy, f"{victim.relative_to(folder)} ({'truncated' if i % 3 == 0 else 'bit flips'})"


def _load_everything(path: Path) -> None:
    ds = load(path)
    for name in ds.variables:
        np.asarray(ds[name].values)


def _fuzz(tmp_path, count: int, seed: int) -> dict[str, int]:
    outcomes = {"loaded": 0, "named error": 0}
    rng = np.random.default_rng(seed)
    for kind, original in _originals(tmp_path).items():
        _load_everything(original)  # the undamaged file loads
        work = tmp_path / f"work_{kind}"
        work.mkdir()
        for copy, what in _mutants(original, work, rng, count):
            try:
                _load_everything(copy)
                outcomes["loaded"] += 1
            except DataFormatError:
                outcomes["named error"] += 1
            except (ValueError, FileNotFoundError) as err:
                assert copy.name in str(err), f"{kind} {what}: error without the file: {err!r}"
                outcomes["named error"] += 1
            except Exception as err:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{kind} {what}: {type(err).__name__}: {err}")
            finally:
                shutil.rmtree(copy) if copy.is_dir() else copy.unlink(missing_ok=True)
    return outcomes


def test_damaged_files_load_or_raise_a_named_error(tmp_path):
    outcomes = _fuzz(tmp_path, count=8, seed=0)
    assert outcomes["named error"] > 0


def test_a_corrupt_netcdf_leaves_no_error_for_later(tmp_path, monkeypatch):
    """h5netcdf's finaliser of a file it failed to open raises AttributeError; left to the garbage
    collector, Python prints it with a traceback after a command's one-line error."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    original = save(darcy.generate(0, 3, 9), tmp_path / "darcy.nc")
    (tmp_path / "work").mkdir()
    failed = 0
    for copy, what in _mutants(original, tmp_path / "work", np.random.default_rng(1), 12):
        try:
            _load_everything(copy)
        except DataFormatError:
            failed += 1
        gc.collect()
        assert not unraisable, f"{what}: {unraisable[0].exc_value!r} raised after the load"
    assert failed > 0


def test_overlapping_netcdf_loads_keep_the_filter_until_the_last_ends(monkeypatch):
    """Two loads in two threads may start and end interleaved (A in, B in, A out, B out): the
    filter must stay while B runs and the user's hook must come back after, not A's filter."""
    from pde_data.storage import _h5netcdf_close_errors_dropped

    def users_hook(unraisable):
        pass

    monkeypatch.setattr(sys, "unraisablehook", users_hook)
    a, b = _h5netcdf_close_errors_dropped(), _h5netcdf_close_errors_dropped()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert sys.unraisablehook is not users_hook  # B still loading: still filtered
    b.__exit__(None, None, None)
    assert sys.unraisablehook is users_hook


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_damaged_files_load_or_raise_a_named_error_many(tmp_path, seed):
    outcomes = _fuzz(tmp_path, count=150, seed=seed)
    assert outcomes["named error"] > 0 and outcomes["loaded"] >= 0

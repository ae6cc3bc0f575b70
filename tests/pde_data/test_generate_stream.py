"""Data at scale (issue 15 item 3, issue 16): the zarr chunk rule, ``generate`` streaming chunks
to its store (memory of one chunk), ``--shard I/N`` giving the bytes of one process, and the
memory bound refused before anything is solved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pde_data import chunked, darcy, load, storage
from pde_data import generate as gen
from pde_data.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["generate", "darcy", "--n", "10", "--resolution", "17", "--seed", "3",
        "--chunk-size", "4", "--no-progress"]


def _files(store: Path) -> dict[str, bytes]:
    """Every file of a store by relative path, with its bytes."""
    return {p.relative_to(store).as_posix(): p.read_bytes()
            for p in sorted(store.rglob("*")) if p.is_file()}


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("python -m pde_data") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(w in err for w in words), err


# ---------------------------------------------------------------------------- chunk rule


def test_zarr_chunks_hold_a_few_samples():
    kib = 1024
    assert storage.zarr_sample_chunk(16 * kib) == 8  # 64x64 float32: 8 samples (128 KiB)
    assert storage.zarr_sample_chunk(300 * kib) == 3  # ~1 MiB chunks
    assert storage.zarr_sample_chunk(64 * 64 * 50 * 4) == 1  # a 64x64x50 series: 1 sample
    assert storage.zarr_sample_chunk(100) == storage.ZARR_CHUNK_SAMPLES
    for row, size in [(16 * kib, 32), (16 * kib, 5), (300 * kib, 32), (16 * kib, 12)]:
        c = gen.store_sample_chunk(row, size)
        assert size % c == 0 and c <= storage.zarr_sample_chunk(row)
    assert gen.store_sample_chunk(16 * kib, 32) == 8 and gen.store_sample_chunk(16 * kib, 5) == 5


def test_a_saved_64x64_store_has_chunks_of_8_samples_and_a_batch_reads_its_chunks(tmp_path):
    """A random batch of 32 samples touches at most 32 chunks of 8: at most 8x its own bytes
    (the old rule, ~4 MiB chunks = 256 samples, read ~32 whole chunks: ~250x)."""
    rng = np.random.default_rng(0)
    n, s = 512, 64
    grid = np.linspace(0, 1, s)
    ds = xr.Dataset({"a": (("sample", "x", "y"), rng.normal(size=(n, s, s)).astype(np.float32)),
                     "u": (("sample", "x", "y"), rng.normal(size=(n, s, s)).astype(np.float32))},
                    coords={"x": grid, "y": grid},
                    attrs={"pde": "darcy", "input_vars": ["a"], "output_vars": ["u"]})
    storage.save(ds, tmp_path / "d.zarr")
    out = load(tmp_path / "d.zarr")
    assert out["a"].encoding["chunks"] == (8, s, s) == out["u"].encoding["chunks"]
    idx = np.sort(rng.choice(n, 32, replace=False))
    np.testing.assert_array_equal(out["u"][idx].values, ds["u"].values[idx])
    chunk_bytes = [p.stat().st_size for p in (tmp_path / "d.zarr" / "u").rglob("*")
                   if p.is_file() and p.name != "zarr.json"]
    assert len(chunk_bytes) == n // 8 and max(chunk_bytes) <= 8 * s * s * 4 + 1024


# ------------------------------------------------------------------------------- streaming


def test_generate_streams_one_chunk_at_a_time(tmp_path, monkeypatch):
    """No dataset of more than one chunk is built while generating, and the netCDF output is
    assembled from the store in blocks; the values are those of the in-memory generator."""
    built = []
    real = darcy.to_dataset

    def record(arrays, attrs):
        built.append(len(next(iter(arrays.values()))))
        return real(arrays, attrs)

    monkeypatch.setattr(darcy, "to_dataset", record)
    monkeypatch.setattr(storage, "ZARR_WRITE_BYTES", 3 * 17 * 17 * 8)  # .nc: 3 samples a block
    blocks = []
    real_load = xr.Dataset.load

    def load_block(self, *a, **k):
        if "sample" in self.dims:
            blocks.append(self.sizes["sample"])
        return real_load(self, *a, **k)

    monkeypatch.setattr(xr.Dataset, "load", load_block)
    args = [a if a != "10" else "8" for a in ARGS]  # 8 samples in chunks of 4
    for suffix in (".zarr", ".nc"):
        assert main([*args, "--out", str(tmp_path / f"d{suffix}")]) == 0
    assert built and max(built) <= 4, built  # chunks of 4, never the 8 samples
    assert max(blocks) <= 3, blocks
    monkeypatch.setattr(darcy, "to_dataset", real)
    ref = darcy.generate(3, 8, 17, chunk_size=4)
    for suffix in (".zarr", ".nc"):
        got = load(tmp_path / f"d{suffix}")
        for name in ("a", "u"):
            np.testing.assert_array_equal(got[name].values, ref[name].values)
        assert got.attrs["n"] == 8 and got.attrs["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.nc", "d.zarr"]
    assert load(tmp_path / "d.zarr")["u"].encoding["chunks"] == (4, 17, 17)


def test_a_chunk_written_but_not_recorded_is_solved_again_to_the_same_bytes(tmp_path,
                                                                              monkeypatch):
    """The progress record: a chunk whose rows reached the store but whose marker did not
    (killed in between, or mid-write: here its rows are garbage) is solved and written again."""
    out = tmp_path / "d.zarr"
    ref = tmp_path / "ref.zarr"
    assert main([*ARGS, "--out", str(ref)]) == 0
    calls = []
    real = chunked.solve_chunk

    def stop_after_two(p, start, stop):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(start)
        return real(p, start, stop)

    monkeypatch.setattr(chunked, "solve_chunk", stop_after_two)
    assert main([*ARGS, "--out", str(out)]) == 130
    part = gen.partial_path(out)
    assert sorted(p.name for p in part.glob("chunk_*.done")) == ["chunk_000000.done",
                                                                 "chunk_000001.done"]
    (part / "chunk_000001.done").unlink()
    storage.write_zarr_rows(part / gen.STORE, {"u": np.full((4, 17, 17), 7.0, np.float32)}, 4)
    monkeypatch.setattr(chunked, "solve_chunk", real)
    solved = []
    monkeypatch.setattr(chunked, "solve_chunk", lambda p, a, b: solved.append(a) or real(p, a, b))
    assert main([*ARGS, "--out", str(out)]) == 0
    assert solved == [4, 8]
    assert _files(out) == _files(ref)
    assert not part.exists()


# -------------------------------------------------------------------------------- sharding


def test_two_shards_write_the_bytes_of_one_process(tmp_path, capsys):
    one, two = tmp_path / "one.zarr", tmp_path / "two.zarr"
    assert main([*ARGS, "--out", str(one)]) == 0
    assert main([*ARGS, "--out", str(two), "--shard", "1/2"]) == 0
    assert "shard 1/2 done" in capsys.readouterr().out and not two.exists()
    assert main([*ARGS, "--out", str(two), "--shard", "0/2"]) == 0
    assert f"wrote {two}" in capsys.readouterr().out
    assert _files(one) == _files(two)  # every chunk and every metadata file, byte for byte
    a, b = load(one), load(two)
    assert a.attrs == b.attrs
    for name in ("a", "u"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.zarr", "two.zarr"]


def test_shard_arguments_are_checked_before_solving(tmp_path, capsys, monkeypatch):
    def no_solving(*args, **kwargs):
        raise AssertionError("a sample was solved")

    monkeypatch.setattr(darcy, "generate_arrays", no_solving)
    for bad in ("2/2", "a/b", "1", "-1/3"):
        assert main([*ARGS, "--out", str(tmp_path / "d.zarr"), "--shard", bad]) == 2
        _one_line_error(capsys, "--shard")
    assert main([*ARGS, "--out", str(tmp_path / "d.nc"), "--shard", "0/2"]) == 2
    _one_line_error(capsys, "--shard needs a .zarr output")
    assert list(tmp_path.iterdir()) == []


def test_a_shard_with_other_arguments_is_refused(tmp_path, capsys):
    out = tmp_path / "d.zarr"
    assert main([*ARGS, "--out", str(out), "--shard", "0/2"]) == 0
    other = [a if a != "4" else "2" for a in ARGS]  # another --chunk-size
    assert main([*other, "--out", str(out), "--shard", "1/2"]) == 2
    _one_line_error(capsys, "chunk_size")


@pytest.mark.slow
def test_two_concurrent_shard_processes_write_the_bytes_of_one(tmp_path):
    """Two processes at once (racing to create the store and to finish it)."""
    args = ["generate", "darcy", "--n", "24", "--resolution", "33", "--seed", "5",
            "--chunk-size", "2", "--no-progress"]
    one, two = tmp_path / "one.zarr", tmp_path / "two.zarr"
    assert main([*args, "--out", str(one)]) == 0
    procs = [subprocess.Popen([sys.executable, "-m", "pde_data", *args, "--out", str(two),
                               "--shard", f"{i}/2"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(f"wrote {two}" in o for o, _ in outs) == 1, outs
    assert _files(one) == _files(two)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.zarr", "two.zarr"]


# ---------------------------------------------------------------------------- memory bound


def test_a_chunk_larger_than_memory_is_refused_before_solving(tmp_path, capsys, monkeypatch):
    def no_solving(*args, **kwargs):
        raise AssertionError("a sample was solved")

    monkeypatch.setattr(darcy, "generate_arrays", no_solving)
    need = darcy.memory_bytes(1, resolution=421, solve_resolution=421)
    two = darcy.memory_bytes(2, resolution=421, solve_resolution=421)
    monkeypatch.setattr(chunked, "available_memory", lambda: two + 1)
    argv = ["generate", "darcy", "--n", "100000", "--resolution", "421",
            "--out", str(tmp_path / "d.zarr")]
    assert main(argv) == 2
    _one_line_error(capsys, "for a chunk of 32 samples", "--chunk-size 2 or less", "--resolution")
    monkeypatch.setattr(chunked, "available_memory", lambda: need // 2)
    assert main([*argv, "--chunk-size", "1"]) == 2
    _one_line_error(capsys, "to solve one sample", "smaller --resolution")
    assert list(tmp_path.iterdir()) == []  # nothing written: no .partial


def test_memory_estimate_is_independent_of_n_and_grows_with_the_grid():
    p = chunked.plan(darcy, 0, 100, 65)
    q = chunked.plan(darcy, 0, 10**6, 65)
    assert chunked.check_memory(p, available=1 << 40) == chunked.check_memory(
        q, available=1 << 40)
    big = chunked.plan(darcy, 0, 100, 421)
    assert chunked.check_memory(big, available=1 << 40) > 30 * chunked.check_memory(
        p, available=1 << 40)


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux /proc")
def test_available_memory_reads_the_system():
    avail = chunked.available_memory()
    assert avail is not None and 0 < avail <= os.sysconf("SC_PAGE_SIZE") * os.sysconf(
        "SC_PHYS_PAGES")

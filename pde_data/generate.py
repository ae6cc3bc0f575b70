"""Dataset generation by PDE name, and into a file, streamed, resumable and sharded
(``python -m pde_data generate``).

The chunked, seeded generation itself is :mod:`pde_data.chunked`; each PDE module also offers
it as its own in-memory ``generate``. Sample ``i`` is drawn with ``fold_in(key(seed), i)``, so
the data depend on the seed only, not on the chunk size nor on the process that solved it.

:func:`generate_to_file` streams: each chunk, once solved, is written into a zarr store of the
full size in the sidecar folder ``FILE.partial/`` (``store.zarr``, created from the first chunk
solved, chunked by the rule of :func:`pde_data.storage.zarr_sample_chunk` with a chunk count
that divides ``chunk_size``, so every generation chunk covers whole zarr chunks) and then
recorded as done (``chunk_NNNNNN.done``, written after the rows). Memory is one chunk's,
whatever ``n``. ``FILE.partial/config.json`` records the arguments: a rerun with the same
arguments skips the recorded chunks (a chunk killed mid-write is rewritten whole, to the same
bytes) and a rerun with other arguments is refused, naming the difference.

When every chunk is recorded, the store becomes the output: a ``.zarr`` output is the store
itself, renamed into place (atomic; an existing output, replaced only with ``overwrite``, is
moved aside first); a ``.nc`` output is written from the store through
:func:`pde_data.storage.save`, which writes netCDF in blocks of samples (the first through
xarray with ``sample`` unlimited, the rest appended with h5netcdf), so assembling it holds a
block, not the dataset, and is atomic too. Then ``FILE.partial/`` is removed.

Sharding (``shard=(I, N)``, ``--shard I/N``): N processes run the same command, each solving
the chunks ``[C*I//N, C*(I+1)//N)`` of the C chunks into the one shared store (whoever solves a
chunk first creates the store by an atomic rename; writers of different chunks never touch
the same zarr chunk file). The process that records the last chunk turns the store into the
output, under a file lock (``FILE.partial/finish.lock``, ``fcntl.flock``: the folder must be
on a file system where locks work across the processes' hosts). The bytes are those of one
process. Sharding is for ``.zarr`` outputs; a ``.nc`` output is refused with ``--shard``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np

from pde_data import chunked
from pde_data.storage import (
    check_output,
    create_zarr,
    load,
    move_into_place,
    save,
    write_zarr_rows,
    zarr_sample_chunk,
)

__all__ = ["PDES", "generate", "generate_to_file", "parse_shard", "partial_path", "pde_module",
           "store_sample_chunk"]

PDES = ("darcy", "burgers", "navier_stokes", "darcy-rough", "darcy-multiscale", "helmholtz")
STORE = "store.zarr"  # the streamed store inside FILE.partial/


def pde_module(pde: str):
    """The solver module of ``pde`` (one of :data:`PDES`)."""
    if pde not in PDES:
        raise ValueError(f"unknown PDE {pde!r}; expected one of {PDES}")
    from pde_data import burgers, darcy, darcy_multiscale, darcy_rough, helmholtz, navier_stokes

    return {"darcy": darcy, "burgers": burgers, "navier_stokes": navier_stokes,
            "darcy-rough": darcy_rough, "darcy-multiscale": darcy_multiscale,
            "helmholtz": helmholtz}[pde]


def generate(pde: str, key_or_seed, n: int, resolution: int, chunk_size: int = 32,
             progress: bool = False, **options):
    """``n`` samples of ``pde`` at ``resolution`` as an in-memory xarray.Dataset (docs/design.md
    schema). ``options`` are the module's PDE options (``nu``, ``times``, ``solve_resolution``,
    ...)."""
    return chunked.generate(pde_module(pde), key_or_seed, n, resolution, chunk_size=chunk_size,
                            progress=progress, **options)


def partial_path(out: str | os.PathLike) -> Path:
    """The sidecar folder ``FILE.partial/`` of an output file."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``."""
    try:
        i, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= I < N")
    return i, n


def store_sample_chunk(row_bytes: int, chunk_size: int) -> int:
    """Samples per zarr chunk of a generated store: the largest divisor of ``chunk_size`` not
    above the storage rule's count (:func:`pde_data.storage.zarr_sample_chunk`), so that each
    generation chunk (and each shard's range) covers whole zarr chunks."""
    cap = zarr_sample_chunk(row_bytes)
    return max(d for d in range(1, min(cap, chunk_size) + 1) if chunk_size % d == 0)


def _marker(part: Path, c: int) -> Path:
    return part / f"chunk_{c:06d}.done"


@contextlib.contextmanager
def _finish_lock(part: Path):
    """An exclusive ``flock`` on ``part/finish.lock``; yields False when ``part`` is gone
    (another process finished)."""
    import fcntl

    try:
        fd = os.open(part / "finish.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield part.is_dir()
    finally:
        os.close(fd)


def generate_to_file(pde: str, seed: int, n: int, resolution: int, out: str | os.PathLike,
                     chunk_size: int = 32, progress: bool = True, overwrite: bool = False,
                     shard: tuple[int, int] = (0, 1), **options) -> Path | None:
    """Generate ``n`` samples into ``out``, streaming chunks to ``out.partial/`` (resumable),
    as ``shard = (I, N)`` of N processes. Returns ``out`` when this call wrote it, None when
    another shard wrote it or still has chunks to solve (the last one to finish writes it).

    Checked before any sample is solved: ``out`` is a ``.nc`` or ``.zarr`` name, not an
    existing file unless ``overwrite`` (replaced only once the new one is complete); the PDE
    options; the shard; one chunk's estimated memory against the memory available."""
    out = check_output(out, overwrite)
    module = pde_module(pde)
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= I < N")
    if count > 1 and out.suffix.lower() != ".zarr":
        raise ValueError(f"{out}: --shard needs a .zarr output (N processes fill one zarr "
                         "store); convert it to .nc afterwards with `convert`")
    p = chunked.plan(module, seed, n, resolution, chunk_size, **options)
    chunked.check_memory(p)

    from pde_data.runs import Run

    part = partial_path(out)
    Run(part).ensure_config(p.config)
    store = part / STORE
    ranges = p.chunks
    mine = range(len(ranges) * index // count, len(ranges) * (index + 1) // count)
    todo = [c for c in mine if not _marker(part, c).exists()]
    total = sum(ranges[c][1] - ranges[c][0] for c in mine)
    done = total - sum(ranges[c][1] - ranges[c][0] for c in todo)

    bar = None
    if progress:
        from pde_data.runs import progress as progress_bar

        desc = f"{p.pde} s={resolution}" + (f" shard {index}/{count}" if count > 1 else "")
        bar = progress_bar(total=total, desc=desc, unit="sample", initial=done)
    try:
        for c in todo:
            start, stop = ranges[c]
            arrays = chunked.solve_chunk(p, start, stop)
            if not store.is_dir():
                row = max(v.dtype.itemsize * int(np.prod(v.shape[1:], dtype=np.int64))
                          for v in arrays.values())
                create_zarr(p.dataset(arrays), store, p.n, store_sample_chunk(row, p.chunk_size))
            write_zarr_rows(store, arrays, start)
            _marker(part, c).touch()  # after the rows: a missing marker means "solve again"
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    return _finish(p, part, out, overwrite)


def _finish(p: chunked.Plan, part: Path, out: Path, overwrite: bool) -> Path | None:
    """Turn the complete store into ``out`` (once, by whichever process gets here last)."""
    with _finish_lock(part) as present:
        store = part / STORE
        if not present or not store.is_dir():
            return None  # another shard wrote out (or will)
        if any(not _marker(part, c).exists() for c in range(len(p.chunks))):
            return None  # other shards still at work; the last one to finish writes out
        check_output(out, overwrite)  # out appeared meanwhile: still not replaced silently
        if out.suffix.lower() == ".zarr":
            move_into_place(store, out)
        else:
            save(load(store), out)
        shutil.rmtree(part, ignore_errors=True)
    return out

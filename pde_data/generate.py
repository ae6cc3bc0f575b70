"""Dataset generation by PDE name, and into a file with resume (``python -m pde_data generate``).

The chunked, seeded, resumable generation itself is :func:`pde_data.chunked.generate`; each
PDE module (``darcy``, ``burgers``, ``navier_stokes``) also offers it as its own ``generate``.
Sample ``i`` is drawn with ``fold_in(key(seed), i)``, so the data depend on the seed only, not
on the chunk size; :func:`generate_to_file` keeps finished chunks in ``FILE.partial/`` so an
interrupted run continues where it stopped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pde_data import chunked
from pde_data.storage import check_output, save

__all__ = ["PDES", "generate", "generate_to_file", "partial_path", "pde_module"]

PDES = ("darcy", "burgers", "navier_stokes")


def pde_module(pde: str):
    """The solver module of ``pde`` (one of :data:`PDES`)."""
    if pde not in PDES:
        raise ValueError(f"unknown PDE {pde!r}; expected one of {PDES}")
    from pde_data import burgers, darcy, navier_stokes

    return {"darcy": darcy, "burgers": burgers, "navier_stokes": navier_stokes}[pde]


def generate(pde: str, key_or_seed, n: int, resolution: int, chunk_size: int = 32,
             progress: bool = False, partial_dir: str | os.PathLike | None = None, **options):
    """``n`` samples of ``pde`` at ``resolution`` as an xarray.Dataset (docs/design.md schema).

    ``options`` are the module's PDE options (``nu``, ``times``, ``solve_resolution``, ...).
    ``partial_dir``: folder keeping finished chunks for resume (removed by the caller).
    """
    return chunked.generate(pde_module(pde), key_or_seed, n, resolution, chunk_size=chunk_size,
                            progress=progress, partial_dir=partial_dir, **options)


def partial_path(out: str | os.PathLike) -> Path:
    """The sidecar folder ``FILE.partial/`` of an output file."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def generate_to_file(pde: str, seed: int, n: int, resolution: int, out: str | os.PathLike,
                     chunk_size: int = 32, progress: bool = True, overwrite: bool = False,
                     **options):
    """Generate into ``out`` with resume through ``out.partial/``; returns the dataset.

    ``out`` is checked before any sample is solved: a ``.nc`` or ``.zarr`` name, not an
    existing file unless ``overwrite`` (which replaces it only once the new one is complete)."""
    check_output(out, overwrite)
    pde_module(pde)
    part = partial_path(out)
    ds = generate(pde, seed, n, resolution, chunk_size=chunk_size, progress=progress,
                  partial_dir=part, **options)
    save(ds, out)
    shutil.rmtree(part, ignore_errors=True)
    return ds

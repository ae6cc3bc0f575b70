"""Chunked, resumable, reproducible dataset generation from one PDE module.

Sample ``i`` of a dataset is drawn with the key ``fold_in(key(seed), i)``, so the data depend on
the seed only, not on the chunk size. Chunks of ``chunk_size`` samples are solved one after the
other; with ``partial_dir`` each finished chunk is written atomically to that folder (with the
full configuration in ``config.json``), so a run that is interrupted and started again with the
same arguments continues at the first missing chunk and refuses different arguments.

A PDE module (``darcy``, ``burgers``, ``navier_stokes``) provides ``PDE`` (its name),
``VERSION``, ``params(resolution, **options) -> dict`` (validated, defaults filled, JSON-able:
these become the dataset attrs), ``generate_arrays(keys, **params) -> dict[str, np.ndarray]``
and ``to_dataset(arrays, attrs) -> xarray.Dataset``. The modules call :func:`generate` with
themselves; :mod:`pde_data.generate` finds a module by name. Neither this module nor the PDE
modules import :mod:`pde_data.generate`.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["generate"]


def _seed_attrs(key_or_seed) -> tuple[object, dict]:
    import jax

    if isinstance(key_or_seed, (int, np.integer)) and not isinstance(key_or_seed, bool):
        return int(key_or_seed), {"seed": int(key_or_seed)}
    try:
        data = np.asarray(jax.random.key_data(key_or_seed))
    except Exception as err:
        raise TypeError(f"expected an int seed or a jax.random key, got {key_or_seed!r}") from err
    if data.ndim != 1:
        raise ValueError(f"expected a single key, got a key array of shape {data.shape[:-1]}")
    return key_or_seed, {"seed": -1, "key_data": data.astype(np.int64).tolist()}


def generate(module, key_or_seed, n: int, resolution: int, chunk_size: int = 32,
             progress: bool = False, partial_dir: str | os.PathLike | None = None, **options):
    """``n`` samples of the PDE ``module`` at ``resolution`` as an xarray.Dataset
    (docs/design.md schema).

    ``options`` are the module's PDE options (``nu``, ``times``, ``solve_resolution``, ...;
    None means the default). ``partial_dir``: folder keeping finished chunks for resume
    (removed by the caller).
    """
    from pde_data import grf

    pde = module.PDE
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    n, chunk_size = int(n), int(chunk_size)
    options = {k: v for k, v in options.items() if v is not None}
    params = module.params(resolution, **options)
    key, seed_attrs = _seed_attrs(key_or_seed)
    config = {"pde": pde, "n": n, "chunk_size": chunk_size, "generator_version": module.VERSION,
              **seed_attrs, **params}

    run = None
    if partial_dir is not None:
        from pde_data.runs import Run

        run = Run(partial_dir)
        run.ensure_config(config)

    starts = list(range(0, n, chunk_size))
    chunks: list[dict | None] = [None] * len(starts)
    done = 0
    if run is not None:
        for c, start in enumerate(starts):
            if (run.path / f"chunk_{c:06d}.npz").exists():
                chunks[c] = run.load_arrays(f"chunk_{c:06d}")
                done += min(chunk_size, n - start)

    bar = None
    if progress:
        from pde_data.runs import progress as progress_bar

        bar = progress_bar(total=n, desc=f"{pde} s={resolution}", unit="sample", initial=done)
    try:
        for c, start in enumerate(starts):
            if chunks[c] is not None:
                continue
            stop = min(start + chunk_size, n)
            arrays = module.generate_arrays(grf.sample_keys(key, start, stop), **params)
            arrays = {k: np.asarray(v) for k, v in arrays.items()}
            for name, v in arrays.items():
                if not np.all(np.isfinite(v)):
                    from pde_data.checks import NonFiniteSolution

                    raise NonFiniteSolution(
                        f"{pde}: non-finite values in {name!r} of samples {start}..{stop - 1} "
                        f"(unstable time step? parameters {params})")
            if run is not None:
                run.save_arrays(f"chunk_{c:06d}", arrays)
            chunks[c] = arrays
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()

    merged = {k: np.concatenate([ch[k] for ch in chunks], axis=0) for k in chunks[0]}
    return module.to_dataset(merged, {**params, **seed_attrs, "n": n})

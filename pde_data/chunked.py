"""Chunked, reproducible dataset generation from one PDE module, and its memory bound.

Sample ``i`` of a dataset is drawn with the key ``fold_in(key(seed), i)``, so the data depend on
the seed only, not on the chunk size nor on which process solves which chunk. A :class:`Plan`
fixes everything a dataset depends on (module, seed, ``n``, chunk size, the module's validated
parameters); chunks of ``chunk_size`` samples are solved one at a time by :func:`solve_chunk`,
so the memory of a generation is one chunk's, whatever ``n`` (:mod:`pde_data.generate` streams
each chunk to its output store as it finishes). :func:`check_memory` refuses, before anything is
solved, a chunk that would not fit in the memory available.

A PDE module (``darcy``, ``burgers``, ``navier_stokes``) provides ``PDE`` (its name),
``VERSION``, ``params(resolution, **options) -> dict`` (validated, defaults filled, JSON-able:
these become the dataset attrs), ``generate_arrays(keys, **params) -> dict[str, np.ndarray]``,
``to_dataset(arrays, attrs) -> xarray.Dataset`` and, for the memory bound,
``memory_bytes(chunk, **params) -> int`` (an estimate of the peak working memory of
``generate_arrays`` for ``chunk`` samples, outputs included; a module without it is not
checked). The modules call :func:`generate` with
themselves; :mod:`pde_data.generate` finds a module by name. Neither this module nor the PDE
modules import :mod:`pde_data.generate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Plan", "available_memory", "check_memory", "generate", "plan", "solve_chunk"]


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


@dataclass(frozen=True)
class Plan:
    """What a generated dataset depends on: ``n`` samples of ``module`` from ``key`` in chunks
    of ``chunk_size``, with the module's validated ``params``."""

    module: object
    key: object
    n: int
    chunk_size: int
    params: dict
    seed_attrs: dict

    @property
    def pde(self) -> str:
        return self.module.PDE

    @property
    def config(self) -> dict:
        """The JSON-able record a resumed or sharded run must match."""
        return {"pde": self.pde, "n": self.n, "chunk_size": self.chunk_size,
                "generator_version": self.module.VERSION, **self.seed_attrs, **self.params}

    @property
    def attrs(self) -> dict:
        return {**self.params, **self.seed_attrs, "n": self.n}

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` sample ranges of the chunks, in order."""
        return [(s, min(s + self.chunk_size, self.n)) for s in range(0, self.n, self.chunk_size)]

    def dataset(self, arrays: dict):
        """The dataset (docs/design.md schema) of ``arrays`` (rows of this plan's samples)."""
        return self.module.to_dataset(arrays, self.attrs)


def plan(module, key_or_seed, n: int, resolution: int, chunk_size: int = 32, **options) -> Plan:
    """Validate the arguments of a generation (nothing is solved); ``options`` are the
    module's PDE options (``nu``, ``times``, ``solve_resolution``, ...; None = default)."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    options = {k: v for k, v in options.items() if v is not None}
    params = module.params(resolution, **options)
    key, seed_attrs = _seed_attrs(key_or_seed)
    return Plan(module, key, int(n), int(chunk_size), params, seed_attrs)


def solve_chunk(p: Plan, start: int, stop: int) -> dict[str, np.ndarray]:
    """The arrays of samples ``start .. stop-1`` (keys ``fold_in(key, i)``), checked finite."""
    from pde_data import grf

    arrays = p.module.generate_arrays(grf.sample_keys(p.key, start, stop), **p.params)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for name, v in arrays.items():
        if not np.all(np.isfinite(v)):
            from pde_data.checks import NonFiniteSolution

            raise NonFiniteSolution(
                f"{p.pde}: non-finite values in {name!r} of samples {start}..{stop - 1} "
                f"(unstable time step? parameters {p.params})")
    return arrays


# ---------------------------------------------------------------------------- memory bound


def available_memory() -> int | None:
    """Bytes this process can still allocate: ``MemAvailable`` of /proc/meminfo, lowered to
    the room left under a cgroup (v2) memory limit; None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                found.append(int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_memory(p: Plan, available: int | None = None) -> int | None:
    """Refuse (``MemoryError`` naming the remedy) a chunk whose estimated working memory,
    ``module.memory_bytes(chunk_size, **params)``, exceeds the memory available (default
    :func:`available_memory`). Called before anything is solved; a streamed generation holds
    one chunk at a time, so ``n`` does not enter. Returns the estimate (None when the module
    has no ``memory_bytes``)."""
    estimate = getattr(p.module, "memory_bytes", None)
    if estimate is None:
        return None
    chunk = min(p.chunk_size, p.n)
    need = int(estimate(chunk, **p.params))
    available = available_memory() if available is None else available
    if available is None or need <= available:
        return need
    res, solve_res = p.params.get("resolution"), p.params.get("solve_resolution")
    where = f"{p.pde} at resolution {res}" + (
        f" (solved at {solve_res})" if solve_res not in (None, res) else "")
    one = int(estimate(1, **p.params))
    if one > available:
        raise MemoryError(
            f"{where} needs about {_gib(one)} to solve one sample but only {_gib(available)} "
            "of memory is available; use a smaller --resolution (or --solve-resolution)")
    fits = max(k for k in range(1, chunk + 1) if k == 1 or estimate(k, **p.params) <= available)
    raise MemoryError(
        f"{where} needs about {_gib(need)} for a chunk of {chunk} samples but only "
        f"{_gib(available)} of memory is available; use --chunk-size {fits} or less, or a "
        "smaller --resolution")


# -------------------------------------------------------------------------------- in memory


def generate(module, key_or_seed, n: int, resolution: int, chunk_size: int = 32,
             progress: bool = False, **options):
    """``n`` samples of the PDE ``module`` at ``resolution`` as an in-memory xarray.Dataset
    (docs/design.md schema), solved chunk by chunk; ``options`` are the module's PDE options.
    For datasets larger than memory write a file with :func:`pde_data.generate.generate_to_file`,
    which streams the chunks to the store."""
    p = plan(module, key_or_seed, n, resolution, chunk_size, **options)
    check_memory(p)
    bar = None
    if progress:
        from pde_data.runs import progress as progress_bar

        bar = progress_bar(total=p.n, desc=f"{p.pde} s={resolution}", unit="sample")
    chunks = []
    try:
        for start, stop in p.chunks:
            chunks.append(solve_chunk(p, start, stop))
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    merged = {k: np.concatenate([ch[k] for ch in chunks], axis=0) for k in chunks[0]}
    return p.dataset(merged)

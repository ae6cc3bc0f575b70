"""Multi-resolution training: each step's batch restricted from the stored grid to one of several
grids (Berner et al. 2025, Sec. 4: training a neural operator on several discretisations).

A run trained with ``resolutions=[33, 65]`` on data stored at 65 points per axis draws, at
global step ``i``, the grid :func:`resolution_of_step` ``(seed, i)`` (uniform over the list, a
pure function of the seed and the step, so resume stays exact) and restricts the batch to it in
the layout's way (:func:`restrict`): a node grid of ``s`` points reaches ``(s - 1) / k + 1``
points by taking every ``k``-th node (both ends kept: 65 -> 33 -> 17), a periodic grid of ``s``
points reaches ``s / k`` by taking every ``k``-th point (64 -> 32). Grids that are not reachable
so (finer than the data, or not a subsampling of it) and grids the model cannot serve (e.g. a
converted U-Net whose strides no longer divide the grid) are refused before training starts
(:func:`resolution_plan`, :func:`check_model_serves`). The engine's step is one ``jax.jit``
function; it compiles once per grid (the batch shapes) and reuses that compilation afterwards.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_model_serves", "multi_resolution_stream", "resolution_of_step", "resolution_plan", "restrict",
           "subsample_stride"]

_STREAM_TAG = 0x5E501  # folds the choice of grid away from every other use of the seed


def subsample_stride(stored: int, target: int, periodic: bool) -> int | None:
    """``k`` such that taking every ``k``-th point of a ``stored``-point grid gives ``target``
    points (node grid: ``(stored - 1) = k (target - 1)``; periodic: ``stored = k target``), or
    None when there is none."""
    if target < (1 if periodic else 2) or target > stored:
        return None
    cells, want = (stored, target) if periodic else (stored - 1, target - 1)
    return cells // want if cells % want == 0 else None


def resolution_plan(resolutions, spatial, periodic: bool) -> list[tuple[int, int]]:
    """``[(resolution, stride), ...]`` for the listed grids (points per axis) on data stored on
    the grid ``spatial``; ValueError naming a grid that is not reachable."""
    if isinstance(resolutions, (int, np.integer)):
        resolutions = [resolutions]
    res = list(resolutions)
    if not res:
        raise ValueError("resolutions: give at least one grid (points per axis), e.g. 33,65")
    for r in res:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise ValueError(f"resolutions: {r!r} is not a number of grid points (a positive integer)")
    if len(set(res)) != len(res):
        raise ValueError(f"resolutions {res} list a grid twice")
    spatial = [int(s) for s in spatial]
    layout = "periodic grid" if periodic else "node grid"
    plan = []
    for r in res:
        strides = {subsample_stride(s, int(r), periodic) for s in spatial}
        k = strides.pop() if len(strides) == 1 else None
        if k is None:
            s0 = spatial[0]
            reach = [n for n in range(1 if periodic else 2, s0 + 1) if subsample_stride(s0, n, periodic)]
            why = "finer than the data" if r > max(spatial) else "not a subsampling of it"
            rule = "s / k" if periodic else "(s - 1) / k + 1"
            raise ValueError(
                f"resolution {r} cannot be reached from the data's {layout} of {'x'.join(map(str, spatial))} "
                f"points ({why}): grids are restricted by taking every k-th point ({rule} points); "
                f"reachable: {reach}")
        plan.append((int(r), int(k)))
    return plan


def check_model_serves(model, plan, spatial, channels: int) -> None:
    """ValueError naming the grid when ``model`` cannot be applied to one of the planned grids
    (traced with ``jax.eval_shape``, nothing computed)."""
    import jax
    import jax.numpy as jnp

    for r, k in plan:
        grid = tuple(len(range(0, int(s), k)) for s in spatial)
        spec = jax.ShapeDtypeStruct((1, *grid, int(channels)), jnp.float32)
        try:
            jax.eval_shape(lambda x: model(x), spec)
        except Exception as e:
            raise ValueError(f"resolution {r}: the model cannot serve the grid {'x'.join(map(str, grid))} "
                             f"({type(e).__name__}: {e})") from e


def resolution_of_step(seed: int, step: int, n: int) -> int:
    """Index into the list of ``n`` grids of the batch of global step ``step``: uniform, a pure
    function of ``(seed, step)``."""
    if n == 1:
        return 0
    return int(np.random.default_rng([int(seed), _STREAM_TAG, int(step)]).integers(n))


def restrict(batch, stride: int, dim: int):
    """The batch ``(x, y)`` (channel-last fields) with every ``stride``-th point of each of its
    ``dim`` spatial axes (both ends of a node grid kept when ``stride`` divides its cells)."""
    if stride == 1:
        return batch
    index = (slice(None), *[slice(None, None, int(stride))] * dim, Ellipsis)
    return tuple(a[index] for a in batch)


def multi_resolution_stream(stream, plan, seed: int, dim: int):
    """The engine's ``batches(start)`` of ``stream`` with the batch of global step ``i``
    restricted to the grid ``plan[resolution_of_step(seed, i, len(plan))]``."""
    strides = [k for _, k in plan]

    def batches(start: int):
        step = int(start)
        for batch in stream(start):
            yield restrict(batch, strides[resolution_of_step(seed, step, len(strides))], dim)
            step += 1

    return batches

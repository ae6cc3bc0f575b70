"""Point-set tasks: the one batch type of PFN and neural-process training and evaluation.

A task is a set of ``(x, y)`` points split into a context (what the model conditions on) and
targets (what it predicts). A batch holds ``batch`` tasks padded to ``point`` slots:

    x            (batch, point, x_dim)   float inputs
    y            (batch, point, y_dim)   float outputs (int32 class labels for classification)
    mask_context (batch, point)          1.0 for context points, else 0.0
    mask_target  (batch, point)          1.0 for target points, else 0.0 (disjoint from context;
                                         slots in neither are padding)
    n_context    scalar or None          when set, every task's context is the prefix
                                         ``[0, n_context)`` and its targets the rest (the layout
                                         a PFN's attention slices on); may be a traced int32
    n_features   (batch,) int32 or None  real input columns per task (the rest zero-padded)
    n_classes    (batch,) int32 or None  classes per task (classification priors)

The synthetic priors (``pde_data.priors``) produce it; :class:`PointSetData` makes it from a
user's file (``.nc`` / ``.zarr`` with ``x (task, point, feature)`` and ``y (task, point)`` or
``y (task, point, output)``); :func:`stream` turns any jit-able ``sample(key)`` into the engine's
seeded batch stream (``pde_data.runs.loop.BatchStream``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

DATA_STREAM = 0xDA7A  # folded into the run key for data, so data and loss keys never coincide


class PointSets(NamedTuple):
    """A batch of point-set tasks (module docstring); a pytree, usable inside ``jax.jit``."""

    x: Any
    y: Any
    mask_context: Any
    mask_target: Any
    n_context: Any = None
    n_features: Any = None
    n_classes: Any = None

    @classmethod
    def prefix(cls, x, y, n_context, n_target=None, n_features=None, n_classes=None
               ) -> PointSets:
        """Tasks whose first ``n_context`` points are context and the next ``n_target`` (default:
        all the rest) targets. ``n_context``: a scalar shared by the batch (kept in the batch) or
        ``(batch,)`` per task."""
        n = x.shape[1]
        idx = jnp.arange(n)
        n_ctx = jnp.asarray(n_context)
        per_task = n_ctx.ndim == 1
        ctx_b = n_ctx[:, None] if per_task else n_ctx
        ctx = idx[None, :] < ctx_b
        tgt = idx[None, :] >= ctx_b
        if n_target is not None:
            tgt = tgt & (idx[None, :] < ctx_b + jnp.asarray(n_target).reshape(-1, 1))
        shape = (x.shape[0], n)
        ctx = jnp.broadcast_to(ctx, shape).astype(jnp.float32)
        tgt = jnp.broadcast_to(tgt, shape).astype(jnp.float32)
        return cls(x, y, ctx, tgt, None if per_task or n_target is not None else n_context,
                   n_features, n_classes)

    @property
    def mask_all(self) -> jax.Array:
        """``(batch, point)``: 1.0 where a slot holds a real point (context or target)."""
        return jnp.maximum(self.mask_context, self.mask_target)

    @property
    def x_dim(self) -> int:
        return int(self.x.shape[-1])

    @property
    def y_dim(self) -> int:
        return int(self.y.shape[-1])

    def split(self) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        """Host-side ``((x_ctx, y_ctx), (x_tgt, y_tgt))`` of a prefix batch (concrete
        ``n_context``)."""
        if self.n_context is None:
            raise ValueError("split needs a prefix batch (n_context set); use the masks")
        c = int(self.n_context)
        return (self.x[:, :c], self.y[:, :c]), (self.x[:, c:], self.y[:, c:])


def stream(sample: Callable[[jax.Array], Any], seed: int, mesh=None
           ) -> Callable[[int], Iterator[Any]]:
    """The engine's batch stream of a jit-able ``sample(key) -> batch``: step ``i`` draws from
    ``fold_in(fold_in(key(seed), DATA_STREAM), i)``, so a resumed run sees the same batches.

    Over a mesh of several processes (``jax.distributed``; default ``data_mesh()``) each
    process yields only its rows of the global batch (``pde_data.sharding.process_rows``,
    sliced inside the jitted draw, so unused rows may never be computed); the engine assembles
    them, and the global batch equals the one process would draw alone."""
    from pde_data import sharding

    base = jax.random.fold_in(jax.random.key(seed), DATA_STREAM)
    mesh = mesh if mesh is not None else sharding.data_mesh()

    def own(batch):
        def rows(leaf):
            return leaf if jnp.ndim(leaf) == 0 else leaf[
                sharding.process_rows(leaf.shape[0], mesh)]
        return jax.tree_util.tree_map(rows, batch)

    local = sharding.spans_processes(mesh)
    draw = jax.jit(lambda i: (own if local else (lambda b: b))(sample(jax.random.fold_in(base, i))))

    def batches(start: int) -> Iterator[Any]:
        for i in itertools.count(start):
            yield draw(jnp.uint32(i))

    return batches


class PointSetFileError(ValueError):
    """A point-set file that cannot be used: missing variables, wrong dims, NaN, not numeric."""


@dataclass(frozen=True)
class PointSetData:
    """Point-set tasks held in memory: ``x (task, point, x_dim)``, ``y (task, point, y_dim)``."""

    x: np.ndarray
    y: np.ndarray
    source: str = "<in memory>"

    def __post_init__(self):
        x, y = self.x, self.y
        if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
            raise PointSetFileError(
                f"{self.source}: need x (task, point, feature) and y (task, point[, output]) "
                f"with the same tasks and points, got x {x.shape} and y {y.shape}")
        if x.shape[0] < 1 or x.shape[1] < 2:
            raise PointSetFileError(f"{self.source}: need at least 1 task of at least 2 points, "
                                    f"got {x.shape[0]} task(s) of {x.shape[1]} point(s)")
        for name, a in (("x", x), ("y", y)):
            if not np.isfinite(a).all():
                raise PointSetFileError(f"{self.source}: variable {name!r} holds NaN or inf "
                                        "values; drop or fill those points first")

    @property
    def n_tasks(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.x.shape[1])

    @property
    def x_dim(self) -> int:
        return int(self.x.shape[2])

    @property
    def y_dim(self) -> int:
        return int(self.y.shape[2])

    def split(self, n_val: int, seed: int = 0) -> tuple[PointSetData, PointSetData]:
        """A seeded split into ``(train, validation)`` tasks."""
        if not 0 <= n_val < self.n_tasks:
            raise ValueError(f"n_val must be in [0, {self.n_tasks - 1}], got {n_val}")
        perm = np.random.default_rng(seed).permutation(self.n_tasks)
        tr, va = perm[n_val:], perm[:n_val]
        return (PointSetData(self.x[tr], self.y[tr], self.source),
                PointSetData(self.x[va], self.y[va], self.source))

    def sampler(self, batch_size: int, n_points: int, min_context: int, max_context: int,
                shared_context: bool = False) -> Callable[[jax.Array], PointSets]:
        """A jit-able ``sample(key) -> PointSets``: ``batch_size`` tasks drawn with replacement,
        each a random subset of ``n_points`` of its points in random order, the first
        ``n_context ~ U{min_context..max_context}`` of them context (one draw for the batch
        with ``shared_context``, the prefix layout; else one per task), the rest targets."""
        if not 1 <= n_points <= self.n_points:
            raise ValueError(f"n_points must be in [1, {self.n_points}] (the file's points per "
                             f"task), got {n_points}")
        if not 1 <= min_context <= max_context < n_points:
            raise ValueError(f"need 1 <= min_context <= max_context < n_points = {n_points}, "
                             f"got {min_context}, {max_context}")
        x, y = jnp.asarray(self.x, jnp.float32), jnp.asarray(self.y, jnp.float32)

        def sample(key):
            k_task, k_perm, k_ctx = jax.random.split(key, 3)
            task = jax.random.randint(k_task, (batch_size,), 0, x.shape[0])
            order = jnp.argsort(jax.random.uniform(k_perm, (batch_size, x.shape[1])), axis=-1)
            pick = order[:, :n_points]
            xb = x[task[:, None], pick]
            yb = y[task[:, None], pick]
            shape = () if shared_context else (batch_size,)
            n_ctx = jax.random.randint(k_ctx, shape, min_context, max_context + 1)
            return PointSets.prefix(xb, yb, n_ctx)

        return sample

    def tasks(self, n_context: int) -> PointSets:
        """Every task as it lies, its first ``n_context`` points context (evaluation)."""
        if not 1 <= n_context < self.n_points:
            raise ValueError(f"n_context must be in [1, {self.n_points - 1}], got {n_context}")
        return PointSets.prefix(jnp.asarray(self.x, jnp.float32),
                                jnp.asarray(self.y, jnp.float32), n_context)


def load_point_sets(path: str | os.PathLike) -> PointSetData:
    """Read a point-set dataset: ``.nc`` or ``.zarr`` with variables ``x (task, point,
    feature)`` and ``y (task, point)`` or ``y (task, point, output)``."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        if path.suffix == ".zarr" or path.is_dir():
            ds = xr.open_zarr(path)
        elif path.suffix in (".nc", ".nc4", ".h5", ".hdf5"):
            from pde_data.formats.hdf5check import check_global_heaps

            check_global_heaps(path)  # the HDF5 library can hang on a corrupt global heap
            ds = xr.open_dataset(path, engine="h5netcdf")
        else:
            raise PointSetFileError(f"{path}: unknown point-set file type {path.suffix!r}; "
                                    "use .nc or .zarr")
    except PointSetFileError:
        raise
    except Exception as err:
        raise PointSetFileError(f"{path} is not a readable netCDF / zarr file: {err}") from err
    with ds:
        missing = [v for v in ("x", "y") if v not in ds.data_vars]
        if missing:
            raise PointSetFileError(f"{path} has no variable(s) {missing}; a point-set file "
                                    "holds x (task, point, feature) and y (task, point)")
        x, y = ds["x"], ds["y"]
        if x.ndim != 3 or y.ndim not in (2, 3) or x.dims[:2] != y.dims[:2]:
            raise PointSetFileError(
                f"{path}: need x (task, point, feature) and y (task, point[, output]) sharing "
                f"their first two dimensions, got x {x.dims} and y {y.dims}")
        arrays = []
        for name, da in (("x", x), ("y", y)):
            if da.dtype.kind not in "fiub":
                raise PointSetFileError(f"{path}: variable {name!r} has dtype {da.dtype}, "
                                        "not numbers")
            try:
                values = np.asarray(da.values)
            except Exception as err:  # a corrupt chunk: codec / decompression errors
                raise PointSetFileError(f"{path}: the values of {name!r} cannot be read (corrupt "
                                        f"or truncated file): {type(err).__name__}: {err}"
                                        ) from err
            arrays.append(values.astype(np.float32))
    xv, yv = arrays
    if yv.ndim == 2:
        yv = yv[..., None]
    return PointSetData(xv, yv, str(path))


def save_point_sets(x, y, path: str | os.PathLike, attrs: dict | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``x (task, point, feature)`` and ``y (task, point[, output])`` as a netCDF point-set
    file, atomically; an existing file is kept unless ``overwrite``."""
    import tempfile

    import xarray as xr

    path = Path(path)
    if path.suffix != ".nc":
        raise ValueError(f"{path}: point sets are written as .nc files")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    y = np.asarray(y)
    y_dims = ("task", "point") if y.ndim == 2 else ("task", "point", "output")
    ds = xr.Dataset({"x": (("task", "point", "feature"), np.asarray(x, np.float32)),
                     "y": (y_dims, y.astype(np.float32))}, attrs=dict(attrs or {}))
    PointSetData(ds["x"].values, ds["y"].values.reshape(*ds["x"].shape[:2], -1), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path

"""Where the rows of ``x`` (or ``y``) of a :class:`~pde_data.fields.FieldData` come from: an
in-memory array (:class:`ArraySource`) or several, possibly lazily backed, xarray variables
assembled channel-last batch by batch (:class:`XarraySource`), plus reading rows in any order
(:func:`read_rows`) and the NaN / inf check."""

from __future__ import annotations

import numpy as np

from pde_data.schema import SAMPLE

__all__ = [
    "ArraySource",
    "XarraySource",
    "as_field_array",
    "check_finite",
    "in_memory",
    "numeric_field",
    "read_rows",
]


class ArraySource:
    """Rows of an in-memory array ``(n, *spatial, c)``."""

    streaming = False

    def __init__(self, array: np.ndarray, channels: list[str]):
        self.array = array
        self.channels = channels

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def read(self, sorted_idx: np.ndarray) -> np.ndarray:
        return self.array[sorted_idx]

    def sample_chunk(self) -> int:
        return 1


class XarraySource:
    """Channel-last rows assembled from several (possibly lazily backed) xarray variables."""

    def __init__(self, das: list, spatial_dims: list[str], spatial_shape: tuple[int, ...],
                 coord_axes: list[np.ndarray] | None, dtype=np.float32):
        self.das = das
        self.spatial_dims = spatial_dims
        self.spatial_shape = spatial_shape
        self.coord_axes = coord_axes
        self.dtype = np.dtype(dtype)
        self.extras = [[d for d in da.dims if d != SAMPLE and d not in spatial_dims] for da in das]
        self.widths = [int(np.prod([da.sizes[d] for d in ex], dtype=np.int64)) for da, ex in zip(das, self.extras)]
        self.channels: list[str] = []
        for da, ex in zip(das, self.extras):
            if not ex:
                self.channels.append(str(da.name))
                continue
            for combo in np.ndindex(*[da.sizes[d] for d in ex]):
                self.channels.append(f"{da.name}[" + ",".join(f"{d}={i}" for d, i in zip(ex, combo)) + "]")
        if coord_axes is not None:
            self.channels += [f"coord_{d}" for d in spatial_dims]
        self.n = int(das[0].sizes[SAMPLE])
        self.streaming = any(not in_memory(da) for da in das)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, *self.spatial_shape, len(self.channels))

    def sample_chunk(self) -> int:
        """Samples per stored chunk (largest over the variables); 1 when unknown."""
        best = 1
        for da in self.das:
            enc = da.encoding or {}
            pc = enc.get("preferred_chunks") or {}
            c = pc.get(SAMPLE)
            if c is None and enc.get("chunks") is not None and SAMPLE in da.dims:
                c = enc["chunks"][da.dims.index(SAMPLE)]
            if c:
                best = max(best, int(c))
        return best

    def read(self, sorted_idx: np.ndarray | None) -> np.ndarray:
        """Rows ``sorted_idx`` (sorted, unique; None = all) as ``(k, *spatial, c)``."""
        k = self.n if sorted_idx is None else len(sorted_idx)
        parts = []
        for da, ex, w in zip(self.das, self.extras, self.widths):
            sel = da if sorted_idx is None else da.isel({SAMPLE: sorted_idx})
            sp = [d for d in self.spatial_dims if d in da.dims]
            vals = np.asarray(sel.transpose(SAMPLE, *sp, *ex).values)
            vals = numeric_field(vals, f"variable {da.name!r}").astype(self.dtype, copy=False)
            if sp:
                vals = vals.reshape(k, *self.spatial_shape, w)
            else:  # per-sample parameter: one constant channel over the grid
                vals = np.broadcast_to(vals.reshape(k, *([1] * len(self.spatial_shape)), w),
                                       (k, *self.spatial_shape, w))
            check_finite(vals, str(da.name), sorted_idx)
            parts.append(vals)
        out = np.concatenate(parts, axis=-1) if len(parts) > 1 else np.ascontiguousarray(parts[0])
        if self.coord_axes is not None:
            grid = np.stack(np.meshgrid(*self.coord_axes, indexing="ij"), axis=-1).astype(self.dtype)
            out = np.concatenate([out, np.broadcast_to(grid, (k, *grid.shape))], axis=-1)
        return out


def numeric_field(vals: np.ndarray, label: str) -> np.ndarray:
    """``vals`` if it holds real numbers; a boolean field (e.g. the two-phase Darcy coefficient
    of neuraloperator's ``.pt`` files) as its 0 / 1 values; anything else a ``ValueError``."""
    if vals.dtype == np.bool_:
        return vals.astype(np.uint8)
    if not np.issubdtype(vals.dtype, np.number) or np.issubdtype(vals.dtype, np.complexfloating):
        raise ValueError(f"{label} has dtype {vals.dtype}; only real numeric (or boolean) "
                         "fields are supported")
    return vals


def in_memory(da) -> bool:
    """Whether the values of the xarray variable ``da`` are loaded (not lazily backed)."""
    try:
        return bool(da.variable._in_memory)
    except AttributeError:  # pragma: no cover - older / newer xarray internals
        return isinstance(da.variable.data, np.ndarray)


def check_finite(vals: np.ndarray, name: str, rows: np.ndarray | None) -> None:
    """Raise naming ``name`` and the samples (``rows``: their dataset indices) with NaN / inf."""
    if not np.issubdtype(vals.dtype, np.floating) or vals.size == 0:
        return
    ok = np.isfinite(vals).reshape(vals.shape[0], -1).all(axis=1)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        samples = bad if rows is None else np.asarray(rows)[bad]
        raise ValueError(
            f"{name} has NaN/inf values in {len(samples)} sample(s), e.g. sample index(es) "
            f"{samples[:5].tolist()}; clean the data (or drop those samples) before training"
        )


def read_rows(source, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` in the given order; reads them sorted and unique, then permutes back."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0:
        return np.zeros((0, *source.shape[1:]), np.float32)
    uniq, inv = np.unique(idx, return_inverse=True)
    rows = source.read(uniq)
    if len(uniq) == len(idx) and np.array_equal(uniq, idx):
        return rows
    return rows[inv.reshape(-1)]


def as_field_array(a, label: str) -> np.ndarray:
    """``a`` as a float32 numpy field ``(n, *spatial, channels)``, checked."""
    if hasattr(a, "iter_chunks"):
        raise TypeError(f"{label}: pass numpy arrays (or use FieldData.from_dataset for streamed data)")
    arr = np.asarray(a)
    if arr.ndim < 3:
        raise ValueError(f"{label} must be (n, *spatial, channels) with at least one spatial axis, got shape {arr.shape}")
    return numeric_field(arr, label).astype(np.float32, copy=False)


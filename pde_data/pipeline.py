"""One batching pipeline for every opbayes package: xarray dataset -> seeded, sharded batches.

``FieldData`` pairs input fields ``x: (n, *spatial, c_in)`` with output fields
``y: (n, *spatial, c_out)``, channel-last. Built from an ``xarray.Dataset`` (DESIGN.md schema)
it either holds numpy arrays (data in memory) or *streams*: a lazily indexed dataset (zarr
opened without dask) is read batch by batch, the indices of a batch sorted for chunk-friendly
reads and permuted back, so a dataset larger than memory is never loaded whole.

Rules fixed here:

- Channels: the input (output) variables are concatenated as channels in the order given. A
  variable's non-spatial, non-sample dimensions become channels, flattened in the variable's
  dimension order, so a time axis ``t`` becomes ``nt`` consecutive channels (t fastest within a
  variable): Burgers ``u(sample, t, x)`` -> ``(sample, x, nt)``, Navier-Stokes
  ``w(sample, x, y, t)`` -> ``(sample, x, y, nt)``. ``time_index`` (an int, slice or list)
  selects snapshots of every variable that has ``t`` first; an int (e.g. ``-1``, the final
  time) removes the axis. A variable with only the ``sample`` dimension (a per-sample
  parameter) is broadcast over the grid as one constant channel.
- Spatial dims are ``x, y, z`` (those present); all spatial variables must share them.
- ``subsample=k`` keeps every k-th point per spatial axis; node grids need ``(s-1) % k == 0``
  (both ends kept: 421 -> 211, 141, 85 for k = 2, 3, 5), periodic grids ``s % k == 0``. The
  layout comes from ``periodic=``, else attribute ``periodic``, else the coordinate values
  (last point 1 -> node grid, 1 - 1/s -> periodic).
- ``coords=True`` appends one coordinate channel per spatial axis to ``x`` (the dataset's
  coordinate values when present, else the DESIGN.md grid); they are the last ``n_spatial``
  channels (``data.coord_channels``), fit normalisers with ``passthrough=data.coord_channels``.
- NaN / inf: in-memory data are checked once, when materialised (construction or
  ``from_dataset``); streamed data are checked per batch as it is read (and when a normaliser
  is fitted on them). The error names the variable and the samples.
- Streaming cost is the stored chunks a batch touches: a random batch of ``b`` samples reads
  up to ``b`` chunks along ``sample``, so stores meant for streaming should be chunked with
  few samples per chunk (1 to 8). Normaliser fits and ``FieldArray.iter_chunks`` read whole
  chunks in order.
- Batch order is a pure function of ``(seed, epoch)``: ``numpy.random.default_rng([seed,
  epoch]).permutation(n)``; ``start`` skips that many batches of the epoch (exact resume).
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Iterator, Sequence
from functools import cached_property

import numpy as np

from pde_data.coordinates import add_coordinates, grid_axis, infer_periodic, subsampled_size
from pde_data.normalize import PointwiseGaussian, UnitGaussian, normalizer_from_state

__all__ = [
    "BatchIterator",
    "FieldArray",
    "FieldData",
    "PointwiseGaussian",
    "UnitGaussian",
    "add_coordinates",
    "normalizer_from_state",
]

SAMPLE = "sample"
SPATIAL_DIMS = ("x", "y", "z")
TIME = "t"
_CHUNK_BYTES = 256 * 2**20  # target block size when streaming a split (normaliser fit, .x)


# ------------------------------------------------------------------------------------------
# sources: where the rows of x (or y) come from
# ------------------------------------------------------------------------------------------
class _ArraySource:
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


class _XarraySource:
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
        self.streaming = any(not _in_memory(da) for da in das)

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
            if not np.issubdtype(vals.dtype, np.number) or np.issubdtype(vals.dtype, np.complexfloating):
                raise ValueError(f"variable {da.name!r} has dtype {vals.dtype}; only real numeric fields are supported")
            vals = vals.astype(self.dtype, copy=False)
            if sp:
                vals = vals.reshape(k, *self.spatial_shape, w)
            else:  # per-sample parameter: one constant channel over the grid
                vals = np.broadcast_to(vals.reshape(k, *([1] * len(self.spatial_shape)), w),
                                       (k, *self.spatial_shape, w))
            _check_finite(vals, str(da.name), sorted_idx)
            parts.append(vals)
        out = np.concatenate(parts, axis=-1) if len(parts) > 1 else np.ascontiguousarray(parts[0])
        if self.coord_axes is not None:
            grid = np.stack(np.meshgrid(*self.coord_axes, indexing="ij"), axis=-1).astype(self.dtype)
            out = np.concatenate([out, np.broadcast_to(grid, (k, *grid.shape))], axis=-1)
        return out


def _in_memory(da) -> bool:
    try:
        return bool(da.variable._in_memory)
    except AttributeError:  # pragma: no cover - older / newer xarray internals
        return isinstance(da.variable.data, np.ndarray)


def _check_finite(vals: np.ndarray, name: str, rows: np.ndarray | None) -> None:
    if not np.issubdtype(vals.dtype, np.floating):
        return
    ok = np.isfinite(vals).reshape(vals.shape[0], -1).all(axis=1)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        samples = bad if rows is None else np.asarray(rows)[bad]
        raise ValueError(
            f"{name} has NaN/inf values in {len(samples)} sample(s), e.g. sample index(es) "
            f"{samples[:5].tolist()}; clean the data (or drop those samples) before training"
        )


# ------------------------------------------------------------------------------------------
# a lazy view of the rows of one side (x or y) of a FieldData
# ------------------------------------------------------------------------------------------
class FieldArray:
    """Streamed ``(n, *spatial, c)`` array: indexable by sample (int, slice or index array),
    iterable in chunks, materialised only on ``np.asarray``."""

    def __init__(self, source, indices: np.ndarray, periodic: bool | None):
        self._source = source
        self._idx = indices
        self.periodic = periodic

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self._idx), *self._source.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self._idx)

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            return _read_rows(self._source, self._idx[[key]])[0][rest]
        return _read_rows(self._source, self._idx[key])[(slice(None), *rest)]

    def iter_chunks(self, chunk_size: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive blocks of rows (whole stored chunks where possible)."""
        if chunk_size is None:
            row = max(1, int(np.prod(self.shape[1:])) * 4)
            sc = self._source.sample_chunk()
            chunk_size = max(sc, (_CHUNK_BYTES // row) // sc * sc)
        for i in range(0, len(self._idx), chunk_size):
            yield _read_rows(self._source, self._idx[i : i + chunk_size])

    def __array__(self, dtype=None, copy=None):
        out = np.concatenate(list(self.iter_chunks()), axis=0) if len(self) else np.zeros(self.shape, np.float32)
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"FieldArray(shape={self.shape}, streamed)"


def _read_rows(source, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` in the given order; reads them sorted and unique, then permutes back."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0:
        return np.zeros((0, *source.shape[1:]), np.float32)
    uniq, inv = np.unique(idx, return_inverse=True)
    rows = source.read(uniq)
    if len(uniq) == len(idx) and np.array_equal(uniq, idx):
        return rows
    return rows[inv.reshape(-1)]


# ------------------------------------------------------------------------------------------
# FieldData
# ------------------------------------------------------------------------------------------
class FieldData:
    """Paired channel-last fields ``x: (n, *spatial, c_in)``, ``y: (n, *spatial, c_out)``.

    ``x`` / ``y`` are numpy arrays (or internal streamed sources, see ``from_dataset``);
    ``spatial`` is the number of spatial axes or the spatial shape (checked), default inferred.
    """

    def __init__(self, x, y, spatial: int | Sequence[int] | None = None, *, periodic: bool | None = None,
                 coord_channels: int = 0, check_finite: bool = True):
        sx = x if isinstance(x, (_ArraySource, _XarraySource)) else _ArraySource(_as_field_array(x, "x"), [])
        sy = y if isinstance(y, (_ArraySource, _XarraySource)) else _ArraySource(_as_field_array(y, "y"), [])
        for s, label in ((sx, "x"), (sy, "y")):
            if isinstance(s, _ArraySource) and not s.channels:
                s.channels = [f"{label}[{i}]" for i in range(s.shape[-1])]
        if sx.shape[0] != sy.shape[0]:
            raise ValueError(f"x has {sx.shape[0]} samples but y has {sy.shape[0]}")
        if sx.shape[1:-1] != sy.shape[1:-1]:
            raise ValueError(
                f"x and y must share the spatial grid: x {sx.shape} has spatial shape {sx.shape[1:-1]}, "
                f"y {sy.shape} has {sy.shape[1:-1]}"
            )
        shape = tuple(int(s) for s in sx.shape[1:-1])
        if spatial is not None:
            if isinstance(spatial, (int, np.integer)):
                if int(spatial) != len(shape):
                    raise ValueError(f"spatial={spatial} axes, but x {sx.shape} has {len(shape)} spatial axes")
            else:
                spatial = tuple(spatial)
                if all(isinstance(s, str) for s in spatial):
                    if len(spatial) != len(shape):
                        raise ValueError(f"spatial dims {spatial} do not match x {sx.shape} ({len(shape)} spatial axes)")
                elif tuple(int(s) for s in spatial) != shape:
                    raise ValueError(f"spatial shape {spatial} does not match x {sx.shape} (spatial {shape})")
        if not 0 <= coord_channels <= sx.shape[-1]:
            raise ValueError(f"coord_channels={coord_channels} exceeds the {sx.shape[-1]} channels of x")
        if check_finite:
            for s in (sx, sy):
                if isinstance(s, _ArraySource):
                    _check_finite(s.array, "x" if s is sx else "y", None)
        self._sx, self._sy = sx, sy
        self._idx = np.arange(sx.shape[0], dtype=np.int64)
        self.spatial: tuple[int, ...] = shape
        self.periodic = periodic
        self.coord_channels = int(coord_channels)

    # -- construction from xarray ----------------------------------------------------------
    @classmethod
    def from_dataset(cls, ds_or_path, inputs=None, outputs=None, subsample: int = 1, coords: bool = False,
                     *, time_index=None, periodic: bool | None = None, stream: bool | None = None,
                     dtype=np.float32) -> FieldData:
        """Fields of ``ds_or_path`` (an ``xarray.Dataset`` or a path read with ``pde_data.load``).

        ``inputs`` / ``outputs``: variable names (list or comma/space separated string),
        default the attributes ``input_vars`` / ``output_vars``. ``subsample``: keep every k-th
        grid point. ``coords``: append coordinate channels to x. ``time_index``: snapshot(s)
        of ``t`` to keep (default: all, as channels). ``stream``: read batches lazily from the
        backing store (default: exactly when the dataset is not in memory, e.g. zarr); False
        loads the selected variables into memory.
        """
        ds = _open(ds_or_path)
        in_names = _names(inputs, ds, "input_vars", "inputs")
        out_names = _names(outputs, ds, "output_vars", "outputs")
        available = list(ds.data_vars)
        for n in in_names + out_names:
            if n not in ds.data_vars:
                raise ValueError(f"unknown variable {n!r}; the dataset has data variables {available}")

        def prepare(name):
            da = ds[name]
            if SAMPLE not in da.dims:
                raise ValueError(f"variable {name!r} has no 'sample' dimension (dims {da.dims})")
            if time_index is not None and TIME in da.dims:
                da = da.isel({TIME: time_index})
            return da

        in_das = [prepare(n) for n in in_names]
        out_das = [prepare(n) for n in out_names]

        # one spatial grid for every variable that has spatial dims
        ref = None
        for da in in_das + out_das:
            sp = tuple(d for d in SPATIAL_DIMS if d in da.dims)
            if not sp:
                continue
            sizes = tuple(int(da.sizes[d]) for d in sp)
            if ref is None:
                ref = (str(da.name), sp, sizes)
            elif (sp, sizes) != ref[1:]:
                raise ValueError(
                    "input and output variables must share one spatial grid: "
                    f"{ref[0]!r} has {dict(zip(ref[1], ref[2]))}, {da.name!r} has {dict(zip(sp, sizes))}"
                )
        if ref is None:
            raise ValueError(f"none of the variables {in_names + out_names} has a spatial dimension {SPATIAL_DIMS}")
        _, sp_dims, sizes = ref

        if periodic is None:
            periodic = _layout(ds, sp_dims)
        if isinstance(subsample, bool) or int(subsample) != subsample or subsample < 1:
            raise ValueError(f"subsample must be a positive integer, got {subsample!r}")
        k = int(subsample)
        new_sizes = tuple(subsampled_size(s, k, periodic) for s in sizes)
        if k > 1:
            sl = {d: slice(None, None, k) for d in sp_dims}
            in_das = [da.isel({d: s for d, s in sl.items() if d in da.dims}) for da in in_das]
            out_das = [da.isel({d: s for d, s in sl.items() if d in da.dims}) for da in out_das]
        coord_axes = None
        if coords:
            coord_axes = []
            for d, s in zip(sp_dims, sizes):
                if d in ds.coords and ds.coords[d].ndim == 1 and ds.coords[d].size == s:
                    coord_axes.append(np.asarray(ds.coords[d].values, dtype=np.float64)[::k])
                else:
                    coord_axes.append(grid_axis(s, bool(periodic))[::k])

        sx = _XarraySource(in_das, list(sp_dims), new_sizes, coord_axes, dtype)
        sy = _XarraySource(out_das, list(sp_dims), new_sizes, None, dtype)
        do_stream = (sx.streaming or sy.streaming) if stream is None else bool(stream)
        if not do_stream:  # materialise once; NaN/inf checked here
            sx = _ArraySource(sx.read(None), sx.channels)
            sy = _ArraySource(sy.read(None), sy.channels)
        data = cls(sx, sy, periodic=periodic, coord_channels=len(sp_dims) if coords else 0, check_finite=False)
        data.input_vars, data.output_vars = in_names, out_names
        data.attrs = dict(ds.attrs)
        return data

    input_vars: tuple[str, ...] = ()  # set by from_dataset (lists there)
    output_vars: tuple[str, ...] = ()
    attrs: dict | None = None

    # -- basic properties ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._idx)

    @property
    def n(self) -> int:
        return len(self._idx)

    @property
    def n_spatial(self) -> int:
        return len(self.spatial)

    @property
    def in_channels(self) -> int:
        return int(self._sx.shape[-1])

    @property
    def out_channels(self) -> int:
        return int(self._sy.shape[-1])

    @property
    def x_channels(self) -> list[str]:
        """Name of each channel of x (``var`` or ``var[t=i]``, ``coord_x``, ...)."""
        return list(self._sx.channels)

    @property
    def y_channels(self) -> list[str]:
        return list(self._sy.channels)

    @property
    def streaming(self) -> bool:
        """True when rows are read lazily from the backing store (batch by batch)."""
        return not (isinstance(self._sx, _ArraySource) and isinstance(self._sy, _ArraySource))

    @property
    def indices(self) -> np.ndarray:
        """Rows of the underlying dataset this view holds (a copy)."""
        return self._idx.copy()

    @cached_property
    def x(self):
        """Inputs ``(n, *spatial, c_in)``: numpy when in memory, a streamed ``FieldArray`` otherwise."""
        return self._side(self._sx)

    @cached_property
    def y(self):
        """Outputs ``(n, *spatial, c_out)``: numpy when in memory, a streamed ``FieldArray`` otherwise."""
        return self._side(self._sy)

    def _side(self, src):
        if isinstance(src, _ArraySource):
            if len(self._idx) == src.shape[0] and np.array_equal(self._idx, np.arange(src.shape[0])):
                return src.array
            return src.array[self._idx]
        return FieldArray(src, self._idx, self.periodic)

    def take(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``rows`` (positions in this view) as numpy ``(x, y)``, float32, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for FieldData of {len(self)} samples")
        g = self._idx[rows]
        return _read_rows(self._sx, g), _read_rows(self._sy, g)

    def __repr__(self) -> str:
        mode = "streamed" if self.streaming else "in memory"
        return (f"FieldData(n={len(self)}, spatial={self.spatial}, in_channels={self.in_channels}, "
                f"out_channels={self.out_channels}, periodic={self.periodic}, {mode})")

    # -- splits ----------------------------------------------------------------------------
    def _view(self, idx: np.ndarray) -> FieldData:
        v = object.__new__(type(self))
        v.__dict__.update({k: val for k, val in self.__dict__.items() if k not in ("x", "y")})
        v._idx = np.asarray(idx, dtype=np.int64)
        return v

    def subset(self, rows) -> FieldData:
        """A view of rows ``rows`` (positions in this view), nothing copied."""
        return self._view(self._idx[np.asarray(rows, dtype=np.int64)])

    def split(self, n_train: int | None, n_val: int = 0, n_test: int = 0, seed: int | None = 0):
        """Disjoint ``(train, val, test)`` views. ``seed`` int: a random permutation of the
        samples (``default_rng(seed)``), each split then kept in dataset order; ``seed=None``:
        contiguous, train first and test last (the FNO convention). ``n_train=None`` takes
        every sample not in val/test."""
        n = len(self)
        for name, v in (("n_val", n_val), ("n_test", n_test)) + ((("n_train", n_train),) if n_train is not None else ()):
            if int(v) != v or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if n_train is None:
            n_train = n - n_val - n_test
            if n_train < 0:
                raise ValueError(f"n_val={n_val} + n_test={n_test} exceed the {n} samples of the dataset")
        total = n_train + n_val + n_test
        if total > n:
            raise ValueError(
                f"split sizes n_train={n_train} + n_val={n_val} + n_test={n_test} = {total} exceed the "
                f"{n} samples of the dataset"
            )
        if seed is None:
            order = np.arange(n)
            tr, va, te = order[:n_train], order[n - n_test - n_val : n - n_test], order[n - n_test :]
        else:
            order = np.random.default_rng(seed).permutation(n)
            tr, va, te = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val : total]
        return tuple(self._view(self._idx[np.sort(part)]) for part in (tr, va, te))

    # -- normalisers -----------------------------------------------------------------------
    def fit_normalizers(self, kind: str = "unit", eps: float | None = None):
        """``(x_normaliser, y_normaliser)`` fitted on this split (``kind`` "unit" or
        "pointwise"); coordinate channels of x pass through unchanged."""
        classes = {"unit": UnitGaussian, "pointwise": PointwiseGaussian}
        if kind not in classes:
            raise ValueError(f"unknown normaliser kind {kind!r}; choose from {sorted(classes)}")
        cls = classes[kind]
        kw = {} if eps is None else {"eps": eps}
        periodic = bool(self.periodic)
        xn = cls(periodic=periodic, **kw).fit(self.x, passthrough=self.coord_channels, periodic=periodic)
        yn = cls(periodic=periodic, **kw).fit(self.y, periodic=periodic)
        return xn, yn

    # -- batches ---------------------------------------------------------------------------
    def num_batches(self, batch_size: int, drop_last: bool = True) -> int:
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def epoch_order(self, seed=0, epoch: int = 0, shuffle: bool = True) -> np.ndarray:
        """Positions of this view in the order of the epoch: a pure function of (seed, epoch)."""
        n = len(self)
        if not shuffle:
            return np.arange(n)
        return np.random.default_rng(np.random.SeedSequence([*_seed_words(seed), int(epoch)])).permutation(n)

    def batches(self, batch_size: int, seed=0, epoch: int = 0, start: int = 0, shuffle: bool = True,
                drop_last: bool = True, shard: bool = True, prefetch: int = 2, mesh=None) -> BatchIterator:
        """Iterator of ``(x, y)`` jax float32 batches ``(batch, *spatial, c)`` of one epoch.

        Order: :meth:`epoch_order`; ``start`` skips the first ``start`` batches (exact resume);
        ``drop_last`` drops a final short batch; a background thread keeps ``prefetch``
        batches ready (0: read in the calling thread); ``shard``: placed with
        ``pde_data.sharding.shard_batch`` over ``mesh`` (default all local devices), which
        needs every batch size divisible by the device count; else on the default device.
        """
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if int(prefetch) != prefetch or prefetch < 0:
            raise ValueError(f"prefetch must be a non-negative integer, got {prefetch!r}")
        n = len(self)
        nb = self.num_batches(batch_size, drop_last)
        if nb == 0:
            raise ValueError(
                f"batch_size={batch_size} with drop_last={drop_last} gives no batch from {n} samples"
            )
        if int(start) != start or not 0 <= start <= nb:
            raise ValueError(f"start={start} must be between 0 and the {nb} batches of the epoch")
        place = _placer(shard, mesh, batch_size, n if not drop_last else None)
        order = self.epoch_order(seed, epoch, shuffle)
        chunks = [order[b * batch_size : (b + 1) * batch_size] for b in range(int(start), nb)]
        sx, sy, idx = self._sx, self._sy, self._idx

        def produce(rows: np.ndarray):
            g = idx[rows]
            return place((_read_rows(sx, g), _read_rows(sy, g)))

        return BatchIterator(produce, chunks, int(prefetch))


def _as_field_array(a, label: str) -> np.ndarray:
    if hasattr(a, "iter_chunks"):
        raise TypeError(f"{label}: pass numpy arrays (or use FieldData.from_dataset for streamed data)")
    arr = np.asarray(a)
    if arr.ndim < 3:
        raise ValueError(f"{label} must be (n, *spatial, channels) with at least one spatial axis, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{label} must be real numeric, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _seed_words(seed) -> list[int]:
    """Integer entropy of a seed: an int, or a jax PRNG key (typed or raw uint32)."""
    if isinstance(seed, (int, np.integer)):
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        return [int(seed)]
    try:
        import jax

        if jax.dtypes.issubdtype(getattr(seed, "dtype", None), jax.dtypes.prng_key):
            seed = jax.random.key_data(seed)
    except (ImportError, TypeError):
        pass
    words = np.asarray(seed).ravel()
    if words.size == 0 or not np.issubdtype(words.dtype, np.integer):
        raise ValueError(f"seed must be an int or a jax PRNG key, got {seed!r}")
    return [int(w) for w in words.astype(np.uint64)]


def _placer(shard: bool, mesh, batch_size: int, n_for_last: int | None):
    """Function putting a host ``(x, y)`` batch on devices; checks divisibility up front."""
    import jax

    if not shard:
        return lambda tree: jax.device_put(tree)
    from pde_data.sharding import data_mesh, shard_batch

    mesh = mesh if mesh is not None else data_mesh()
    n_dev = int(mesh.devices.size)
    if batch_size % n_dev:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {n_dev} devices of the mesh; "
            f"use a multiple of {n_dev} (or shard=False)"
        )
    if n_for_last is not None and (n_for_last % batch_size) % n_dev:
        raise ValueError(
            f"drop_last=False leaves a final batch of {n_for_last % batch_size} samples, not divisible by "
            f"the {n_dev} devices; use drop_last=True or a split size that fits"
        )
    return lambda tree: shard_batch(tree, mesh)


# ------------------------------------------------------------------------------------------
# prefetching iterator
# ------------------------------------------------------------------------------------------
_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class BatchIterator:
    """Iterator over the batches of one epoch; ``len()`` is the number of batches it yields.
    With ``prefetch > 0`` a daemon thread produces batches ahead; ``close()`` (or leaving a
    ``with`` block, or dropping the iterator) stops it."""

    def __init__(self, produce, chunks: list[np.ndarray], prefetch: int):
        self._produce = produce
        self._chunks = chunks
        self._pos = 0
        self._len = len(chunks)
        self._thread = None
        if prefetch > 0 and chunks:
            self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=_worker, args=(produce, chunks, self._queue, self._stop), daemon=True,
                name="pde_data-prefetch",
            )
            self._thread.start()
            self._finalizer = weakref.finalize(self, _shutdown, self._stop, self._queue, self._thread)

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        return self

    def __next__(self):
        if self._pos >= self._len:
            raise StopIteration
        if self._thread is None:
            item = self._produce(self._chunks[self._pos])
        else:
            item = self._queue.get()
            if item is _END:
                self._pos = self._len
                raise StopIteration
            if isinstance(item, _Failure):
                self._pos = self._len
                self.close()
                raise item.exc
        self._pos += 1
        if self._pos >= self._len:
            self.close()
        return item

    def close(self) -> None:
        """Stop the prefetch thread (idempotent)."""
        if self._thread is not None:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _worker(produce, chunks, q: queue.Queue, stop: threading.Event) -> None:
    try:
        for rows in chunks:
            if stop.is_set():
                return
            item = produce(rows)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
    except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer thread
        _put_final(q, _Failure(exc), stop)
        return
    _put_final(q, _END, stop)


def _put_final(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _shutdown(stop: threading.Event, q: queue.Queue, thread: threading.Thread) -> None:
    stop.set()
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
    if thread is not threading.current_thread():
        thread.join(timeout=10)


# ------------------------------------------------------------------------------------------
# dataset helpers
# ------------------------------------------------------------------------------------------
def _open(ds_or_path):
    import xarray as xr

    if isinstance(ds_or_path, xr.Dataset):
        return ds_or_path
    if isinstance(ds_or_path, (str, os.PathLike)):
        try:
            from pde_data.storage import load
        except ImportError:  # storage.py not written yet: read the xarray formats directly
            load = _load_xarray
        return load(ds_or_path)
    raise TypeError(f"expected an xarray.Dataset or a path, got {type(ds_or_path).__name__}")


def _load_xarray(path):
    import xarray as xr

    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"no dataset at {p}")
    if p.rstrip("/").endswith(".zarr"):
        return xr.open_zarr(p, chunks=None)
    return xr.open_dataset(p)


def _names(arg, ds, attr: str, label: str) -> list[str]:
    from pde_data.schema import var_names

    if arg is None:
        if attr not in ds.attrs:
            raise ValueError(f"no {label} given and the dataset has no attribute {attr!r}; "
                             f"pass {label}= (data variables: {list(ds.data_vars)})")
        arg = ds.attrs[attr]
    names = var_names(arg)
    if not names:
        raise ValueError(f"{label} names no variable (got {arg!r})")
    return names


def _layout(ds, sp_dims) -> bool | None:
    """Periodic (True), node grid (False) or unknown (None), from attrs or coordinates."""
    att = ds.attrs.get("periodic")
    if att is not None:
        if isinstance(att, str):
            if att.strip().lower() in ("true", "1", "yes"):
                return True
            if att.strip().lower() in ("false", "0", "no"):
                return False
        else:
            return bool(np.asarray(att).item())
    found = set()
    for d in sp_dims:
        if d in ds.coords and ds.coords[d].ndim == 1:
            found.add(infer_periodic(np.asarray(ds.coords[d].values)))
    found.discard(None)
    return found.pop() if len(found) == 1 else None


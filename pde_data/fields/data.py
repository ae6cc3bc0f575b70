"""``FieldData``: paired channel-last fields ``x: (n, *spatial, c_in)``, ``y: (n, *spatial,
c_out)`` with views, splits, normaliser fits and seeded, sharded, prefetched batches (the rules
are in :mod:`pde_data.fields`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
from jaxtyping import Array, Float

from pde_data import batches as _batches
from pde_data.batches import BatchIterator
from pde_data.fields.array import FieldArray
from pde_data.fields.from_xarray import sources_from_dataset
from pde_data.fields.sources import ArraySource, XarraySource, as_field_array, read_rows
from pde_data.fields.sources import check_finite as _check_finite
from pde_data.normalize import PointwiseGaussian, UnitGaussian

__all__ = ["FieldBatch", "FieldData"]

#: One batch of :meth:`FieldData.batches`: jax ``(x, y)`` on the devices (float32 unless
#: ``from_dataset(dtype=...)`` said otherwise).
FieldBatch = tuple[Float[Array, "batch *spatial c_in"], Float[Array, "batch *spatial c_out"]]


class FieldData:
    """Paired channel-last fields ``x: (n, *spatial, c_in)``, ``y: (n, *spatial, c_out)``.

    ``x`` / ``y`` are numpy arrays (or internal streamed sources, see ``from_dataset``);
    ``spatial`` is the number of spatial axes or the spatial shape (checked), default inferred.
    """

    def __init__(self, x, y, spatial: int | Sequence[int] | None = None, *, periodic: bool | None = None,
                 coord_channels: int = 0, check_finite: bool = True):
        sx = x if isinstance(x, (ArraySource, XarraySource)) else ArraySource(as_field_array(x, "x"), [])
        sy = y if isinstance(y, (ArraySource, XarraySource)) else ArraySource(as_field_array(y, "y"), [])
        for s, label in ((sx, "x"), (sy, "y")):
            if isinstance(s, ArraySource) and not s.channels:
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
                if isinstance(s, ArraySource):
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
        found = sources_from_dataset(ds_or_path, inputs, outputs, subsample, coords,
                                     time_index=time_index, periodic=periodic, stream=stream,
                                     dtype=dtype)
        data = cls(found.x, found.y, periodic=found.periodic, coord_channels=found.coord_channels,
                   check_finite=False)
        data.input_vars, data.output_vars = found.input_vars, found.output_vars
        data.attrs = found.attrs
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
        return not (isinstance(self._sx, ArraySource) and isinstance(self._sy, ArraySource))

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
        if isinstance(src, ArraySource):
            if len(self._idx) == src.shape[0] and np.array_equal(self._idx, np.arange(src.shape[0])):
                return src.array
            return src.array[self._idx]
        return FieldArray(src, self._idx, self.periodic)

    def take(self, rows: Sequence[int] | np.ndarray
             ) -> tuple[Float[np.ndarray, "k *spatial c_in"], Float[np.ndarray, "k *spatial c_out"]]:
        """Rows ``rows`` (positions in this view) as numpy ``(x, y)``, float32, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for FieldData of {len(self)} samples")
        g = self._idx[rows]
        return read_rows(self._sx, g), read_rows(self._sy, g)

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
        "pointwise"); coordinate channels of x pass through unchanged. Inputs, which are
        encoded, never divide by a floored std: their small stds fall back to the channel's
        (``small_std="fallback"``); outputs, which are only decoded, are floored at ``eps``
        (see :mod:`pde_data.normalize`; each normaliser's ``summary()`` says what it did)."""
        classes = {"unit": UnitGaussian, "pointwise": PointwiseGaussian}
        if kind not in classes:
            raise ValueError(f"unknown normaliser kind {kind!r}; choose from {sorted(classes)}")
        if len(self) == 0:
            raise ValueError("cannot fit normalisers on a split of 0 samples")
        cls = classes[kind]
        kw = {} if eps is None else {"eps": eps}
        periodic = bool(self.periodic)
        xn = cls(periodic=periodic, small_std="fallback", **kw).fit(
            self.x, passthrough=self.coord_channels, periodic=periodic)
        yn = cls(periodic=periodic, small_std="floor", **kw).fit(self.y, periodic=periodic)
        return xn, yn

    # -- batches ---------------------------------------------------------------------------
    def num_batches(self, batch_size: int, drop_last: bool = True) -> int:
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def epoch_order(self, seed=0, epoch: int = 0, shuffle: bool = True) -> np.ndarray:
        """Positions of this view in the order of the epoch: a pure function of (seed, epoch)."""
        return _batches.epoch_order(len(self), seed, epoch, shuffle)

    def batches(self, batch_size: int, seed=0, epoch: int = 0, start: int = 0, shuffle: bool = True,
                drop_last: bool = True, shard: bool = True, prefetch: int = 2, mesh=None
                ) -> BatchIterator[FieldBatch]:
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
        place = _batches.placer(shard, mesh, batch_size, n if not drop_last else None)
        order = self.epoch_order(seed, epoch, shuffle)
        chunks = [_batches.own_rows(order[b * batch_size : (b + 1) * batch_size], shard, mesh)
                  for b in range(int(start), nb)]
        sx, sy, idx = self._sx, self._sy, self._idx

        def produce(rows: np.ndarray):
            g = idx[rows]
            return place((read_rows(sx, g), read_rows(sy, g)))

        return BatchIterator(produce, chunks, int(prefetch))


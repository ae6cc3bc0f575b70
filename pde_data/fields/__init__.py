"""Fields: xarray dataset -> paired channel-last arrays -> seeded, sharded batches.

``FieldData`` pairs input fields ``x: (n, *spatial, c_in)`` with output fields
``y: (n, *spatial, c_out)``, channel-last. Built from an ``xarray.Dataset`` (docs/design.md
schema) it either holds numpy arrays (data in memory) or *streams*: a lazily indexed dataset (zarr
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
  coordinate values when present, else the docs/design.md grid); they are the last ``n_spatial``
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

Modules: :mod:`.sources` (in-memory and xarray-backed row sources), :mod:`.from_xarray` (a
dataset to sources), :mod:`.array` (``FieldArray``, a streamed view), :mod:`.data`
(``FieldData``); the seeded order, device placement and prefetching iterator are
:mod:`pde_data.batches`, shared with other kinds of data.
"""

from pde_data.batches import BatchIterator
from pde_data.fields.array import FieldArray
from pde_data.fields.data import FieldBatch, FieldData

__all__ = ["BatchIterator", "FieldArray", "FieldBatch", "FieldData"]

"""A lazy, streamed view of the rows of one side (x or y) of a
:class:`~pde_data.fields.FieldData`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pde_data.fields.sources import read_rows

__all__ = ["FieldArray"]

_CHUNK_BYTES = 256 * 2**20  # target block size when streaming a split (normaliser fit, .x)


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
            return read_rows(self._source, self._idx[[key]])[0][rest]
        return read_rows(self._source, self._idx[key])[(slice(None), *rest)]

    def iter_chunks(self, chunk_size: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive blocks of rows (whole stored chunks where possible)."""
        if chunk_size is None:
            row = max(1, int(np.prod(self.shape[1:])) * 4)
            sc = self._source.sample_chunk()
            chunk_size = max(sc, (_CHUNK_BYTES // row) // sc * sc)
        for i in range(0, len(self._idx), chunk_size):
            yield read_rows(self._source, self._idx[i : i + chunk_size])

    def __array__(self, dtype=None, copy=None):
        out = np.concatenate(list(self.iter_chunks()), axis=0) if len(self) else np.zeros(self.shape, np.float32)
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"FieldArray(shape={self.shape}, streamed)"


"""The batch machinery shared by every kind of data: a seeded epoch order, placement of a host
batch on the devices, and a prefetching iterator.

- Batch order is a pure function of ``(seed, epoch)``: :func:`epoch_order` is
  ``numpy.random.default_rng(SeedSequence([*seed_words(seed), epoch])).permutation(n)``; a seed
  is an int or a jax PRNG key. Skipping the first ``start`` batches of an epoch resumes exactly.
- :func:`placer` puts a host batch (any pytree of arrays whose leading axis is the batch) on the
  default device, or shards it with ``pde_data.sharding.shard_batch`` over a mesh, checking up
  front that the batch sizes divide over the devices. Over a mesh of several processes it
  leaves the batch on the host: each process reads only its rows (:func:`own_rows`) and the
  engine assembles the global array on its main thread, so the prefetch thread never touches
  another process's devices (a collective there deadlocks against the training step's).
- :class:`BatchIterator` yields ``produce(rows)`` for each chunk of rows, with a daemon thread
  keeping ``prefetch`` batches ready.

``pde_data.fields.FieldData.batches`` is built from these three.
"""

from __future__ import annotations

import queue
import threading
import weakref
from typing import Generic, TypeVar

import numpy as np

__all__ = ["BatchIterator", "epoch_order", "own_rows", "placer", "seed_words"]

T = TypeVar("T")


def seed_words(seed) -> list[int]:
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


def placer(shard: bool, mesh, batch_size: int, n_for_last: int | None):
    """Function putting a host batch (a pytree, batch axis first) on devices; checks divisibility up front."""
    import jax

    if not shard:
        return lambda tree: jax.device_put(tree)
    from pde_data.sharding import data_mesh, shard_batch, spans_processes

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
    if spans_processes(mesh):
        return lambda tree: tree  # this process's rows, on the host (see the module doc)
    return lambda tree: shard_batch(tree, mesh)


def own_rows(rows: np.ndarray, shard: bool, mesh=None) -> np.ndarray:
    """The part of a global batch's ``rows`` this process reads: all of them in one process or
    unsharded, else its block ``pde_data.sharding.process_rows`` over ``mesh``."""
    import jax

    if not shard or jax.process_count() == 1:
        return rows
    from pde_data.sharding import data_mesh, process_rows

    return rows[process_rows(len(rows), mesh if mesh is not None else data_mesh())]



def epoch_order(n: int, seed=0, epoch: int = 0, shuffle: bool = True) -> np.ndarray:
    """Positions ``0..n-1`` in the order of the epoch: a pure function of (seed, epoch)."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng(np.random.SeedSequence([*seed_words(seed), int(epoch)])).permutation(n)


# ------------------------------------------------------------------------------------------
# prefetching iterator
# ------------------------------------------------------------------------------------------
_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class BatchIterator(Generic[T]):
    """Iterator over the batches of one epoch: ``produce(rows)`` for each array of rows in
    ``chunks``; ``len()`` is the number of batches it yields. With ``prefetch > 0`` a daemon thread produces batches ahead; ``close()`` (or leaving a
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

    def __next__(self) -> T:
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


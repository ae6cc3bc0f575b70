"""Data-parallel placement: batches split over every device of the run, parameters replicated.

docs/design.md, "Scale": a batch is sharded over a 1-D ``Mesh`` of every device (axis
``"data"``) and parameters are replicated. In one process the devices are the local ones; after
``jax.distributed.initialize()`` (``pde_data.runs.distributed``) the mesh spans every process's
devices and each process holds only its own rows of a batch (:func:`process_rows`), assembled
into one global array by :func:`global_batch` (no communication). Tests emulate several devices
on the CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process, i.e. the local
    devices unless ``jax.distributed`` is initialised), axis name ``"data"``."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def local_mesh() -> Mesh:
    """A 1-D mesh over this process's devices only (work every process repeats, e.g.
    validation, without talking to the others)."""
    return data_mesh(jax.local_devices())


def spans_processes(mesh: Mesh) -> bool:
    """True when ``mesh`` holds devices of other processes (multi-host data parallelism)."""
    return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def batch_sharding(mesh: Mesh | None = None) -> NamedSharding:
    """Leading (batch) axis split over the ``"data"`` axis; other axes whole."""
    return NamedSharding(mesh or data_mesh(), PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh | None = None) -> NamedSharding:
    """Every device holds the whole array (parameters, optimiser state, keys)."""
    return NamedSharding(mesh or data_mesh(), PartitionSpec())


def check_divisible(batch_size: int, mesh: Mesh) -> None:
    """A ``ValueError`` naming the sizes when ``batch_size`` does not split evenly over the
    mesh's devices (a silent uneven split would change the loss)."""
    n_dev = int(mesh.devices.size)
    if batch_size % n_dev:
        raise ValueError(f"batch size {batch_size} is not divisible by the {n_dev} devices; "
                         f"choose a batch size that is a multiple of {n_dev}")


def process_rows(batch_size: int, mesh: Mesh | None = None) -> slice:
    """The rows ``[lo, hi)`` of a global batch of ``batch_size`` that this process's devices
    hold under :func:`batch_sharding` (all rows in one process). A process reads or draws
    only these; :func:`global_batch` assembles them."""
    mesh = mesh or data_mesh()
    check_divisible(batch_size, mesh)
    if not spans_processes(mesh):
        return slice(0, batch_size)
    index = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
    spans = sorted(idx[0].indices(batch_size)[:2] for idx in index.values())
    lo, hi = spans[0][0], spans[-1][1]
    if any(a[1] != b[0] for a, b in itertools.pairwise(spans)):
        raise ValueError("this process's devices do not hold one contiguous block of the batch; "
                         "build the mesh with data_mesh() (devices in process order)")
    return slice(lo, hi)


def global_batch(tree: Any, mesh: Mesh) -> Any:
    """One global array per leaf from this process's rows (:func:`process_rows`) of every
    process, split over ``mesh``; scalar leaves (the same in every process) are replicated and
    leaves that already span the mesh pass through. Local work only: no collective, so it is
    safe anywhere, but the engine calls it on the main thread."""
    sharding = batch_sharding(mesh)

    def put(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return leaf
        if np.ndim(leaf) == 0:
            return replicate(leaf, mesh)
        return jax.make_array_from_process_local_data(sharding, leaf)

    return jax.tree_util.tree_map(put, tree)


def shard_batch(tree: Any, mesh: Mesh | None = None) -> Any:
    """``device_put`` every leaf split on its leading axis over the mesh's devices.

    Raises ``ValueError`` naming the size when a leading dimension is not divisible by the
    number of devices (a silent uneven split would change the loss).
    """
    mesh = mesh or data_mesh()
    n_dev = mesh.devices.size
    sharding = batch_sharding(mesh)

    def put(leaf):
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError("shard_batch: a scalar leaf has no batch axis to split")
        if shape[0] % n_dev:
            raise ValueError(
                f"shard_batch: batch size {shape[0]} is not divisible by the number of "
                f"devices ({n_dev}); choose a batch size that is a multiple of {n_dev}"
            )
        return jax.device_put(leaf, sharding)

    return jax.tree_util.tree_map(put, tree)


def replicate(tree: Any, mesh: Mesh | None = None) -> Any:
    """Every leaf fully replicated over the mesh's devices. Over several processes each one
    supplies its own copy (``make_array_from_callback``: no cross-host transfer, which a
    ``device_put`` of a process-local array would need); the leaves must be equal everywhere."""
    mesh = mesh or data_mesh()
    sharding = replicated_sharding(mesh)
    if not spans_processes(mesh):
        return jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, sharding), tree)

    def put(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            if leaf.sharding == sharding:
                return leaf
            raise ValueError("replicate: a global array must be gathered before it is "
                             "replicated over another mesh")
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype,
                                                                  jax.dtypes.prng_key):
            return jax.make_array_from_callback(leaf.shape, sharding, lambda idx: leaf[idx])
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree_util.tree_map(put, tree)


def local_copy(tree: Any) -> Any:
    """This process's copy of every fully replicated global leaf (on its first local device);
    other leaves unchanged. For work each process repeats alone (validation)."""
    def get(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            if not leaf.is_fully_replicated:
                raise ValueError("local_copy: the array is split over processes, not replicated")
            return leaf.addressable_data(0)
        return leaf

    return jax.tree_util.tree_map(get, tree)

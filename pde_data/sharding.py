"""Data-parallel placement: batches split over all local devices, parameters replicated.

docs/design.md, "Scale": a batch is sharded over a 1-D ``Mesh`` of every local device (axis
``"data"``), parameters are replicated, and the same code runs across hosts after
``jax.distributed.initialize()``. Tests emulate several devices on the CPU with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every local device), axis name ``"data"``."""
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh | None = None) -> NamedSharding:
    """Leading (batch) axis split over the ``"data"`` axis; other axes whole."""
    return NamedSharding(mesh or data_mesh(), PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh | None = None) -> NamedSharding:
    """Every device holds the whole array (parameters, optimiser state, keys)."""
    return NamedSharding(mesh or data_mesh(), PartitionSpec())


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
    """``device_put`` every leaf fully replicated over the mesh's devices."""
    sharding = replicated_sharding(mesh)
    return jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, sharding), tree)

"""Several processes, one run: ``jax.distributed`` set-up and the write discipline of a run
folder across processes (docs/design.md, "Scale").

- :func:`initialize` joins the processes: the coordinator from ``coordinator`` /
  ``num_processes`` / ``process_id``, or, with none of them, from a cluster launcher's
  environment (SLURM, TPU pod slices, ...) as ``jax.distributed.initialize`` detects it. On the
  CPU the collectives go through gloo.
- After it, :func:`pde_data.sharding.data_mesh` spans every process's devices; each process
  reads only its own rows of a global batch (``pde_data.sharding.process_rows``).
- :func:`is_primary`: process 0 alone writes a run's config, arrays and metrics
  (``pde_data.runs.folder.Run``); :func:`barrier` makes the others wait where they must read
  what it wrote. Orbax checkpoints are written by all processes together (global arrays).
- :func:`agree` turns a per-process decision (a wall-clock time limit) into process 0's, so all
  processes stop at the same step.

In one process every function here is a no-op (or returns the obvious value).
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["agree", "barrier", "initialize", "is_primary", "process_count", "process_index"]

_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def check_options(coordinator: str | None, num_processes: int | None,
                  process_id: int | None) -> None:
    """A ``ValueError`` naming the problem: the three are given together or not at all,
    ``coordinator`` is ``HOST:PORT`` and ``0 <= process_id < num_processes``."""
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError("--coordinator, --num-processes and --process-id go together (or give "
                         "none of them under a cluster launcher such as SLURM)")
    if not any(given):
        return
    if not _ADDRESS.match(coordinator):
        raise ValueError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:1234), got "
                         f"{coordinator!r}")
    if num_processes < 1:
        raise ValueError(f"--num-processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id must be in [0, {num_processes}), got {process_id}")


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout: int = 300) -> None:
    """Join the run's processes (before any other JAX work). Without arguments the cluster
    environment names the coordinator (``jax.distributed.initialize``'s detection)."""
    import jax

    check_options(coordinator, num_processes, process_id)
    if jax.distributed.is_initialized():
        return
    # CPU processes exchange gradients through gloo (without it a CPU run cannot all-reduce
    # across processes); accelerators use their own collectives and ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator,
                                   num_processes=num_processes, process_id=process_id,
                                   initialization_timeout=timeout)
    except (ValueError, RuntimeError) as err:
        text = " ".join(str(err).split())
        hint = ("" if coordinator else "; outside a cluster launcher give --coordinator "
                "HOST:PORT --num-processes N --process-id I")
        raise RuntimeError(f"--distributed: could not join the other processes: {text}{hint}"
                           ) from err


def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


def is_primary() -> bool:
    """True in process 0 (or when alone): the process that writes a run folder's files."""
    return process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches ``barrier(name)`` (the same name everywhere)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def agree(flag: bool) -> bool:
    """Process 0's value of ``flag`` in every process (a collective when there are several)."""
    if process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(bool(flag))))

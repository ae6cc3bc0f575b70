"""The one training engine of opbayes (docs/design.md, "The engine").

Every training command (``operators``, ``pfn``, ``neural_processes``) is a model, a loss and a
stream of batches handed to :func:`fit`; everything else lives here once:

- :mod:`~pde_data.runs.folder`: the run folder (config guard, metrics log, atomic files,
  orbax checkpoints of ``params`` and ``opt``);
- :mod:`~pde_data.runs.loop`: the loop (one jitted step, exact resume, checkpoint cadence,
  stop conditions, progress bar, validation and best-model tracking);
- :mod:`~pde_data.runs.shipped`: the one shipped-model format (``config.json`` +
  ``weights.npz``, versioned, no pickle), exports and ``from_pretrained`` look-ups;
- :mod:`~pde_data.runs.cli`: the one error policy of every command (exit 2, one line).
"""

from pde_data.runs.folder import (
    Run,
    RunError,
    atomic_write_bytes,
    jsonable,
    progress,
    write_json,
)

__all__ = ["Run", "RunError", "atomic_write_bytes", "jsonable", "progress", "write_json"]

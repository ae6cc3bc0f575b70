"""One process of a training command for ``tests/pde_data/test_distributed.py``: records the rows
it reads (field batches: ``read_rows``; point-set streams: each yielded batch's rows), then runs
the package's command line. ``python distributed_child.py LOG PACKAGE ARGS...`` appends JSON lines
to ``LOG.<process index>``."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np


def _write(log: str, entry: dict) -> None:
    import jax

    with open(f"{log}.{jax.process_index()}", "a") as f:
        f.write(json.dumps(entry) + "\n")


def _record(log: str) -> None:
    import jax

    import pde_data.fields.data as field_data
    from pde_data import points

    read_rows = field_data.read_rows

    def recording_read_rows(src, rows):
        _write(log, {"source": id(src), "rows": np.asarray(rows).tolist()})
        return read_rows(src, rows)

    field_data.read_rows = recording_read_rows
    stream = points.stream

    def recording_stream(sample, seed, mesh=None):
        batches = stream(sample, seed, mesh)

        def recorded(start):
            for step, batch in enumerate(batches(start), start):
                leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(batch) if np.ndim(x)]
                _write(log, {"step": step, "sizes": [len(x) for x in leaves],
                             "sums": leaves[0].reshape(len(leaves[0]), -1).sum(1).tolist()})
                yield batch

        return recorded

    points.stream = recording_stream


def main() -> int:
    log, package, *argv = sys.argv[1:]
    _record(log)
    return importlib.import_module(f"{package}.__main__").main(argv)


if __name__ == "__main__":
    sys.exit(main())

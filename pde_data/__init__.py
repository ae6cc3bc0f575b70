"""pde_data: the one data pipeline of opbayes.

PDE solvers and generators (``darcy``, ``burgers``, ``navier_stokes``, ``grf``), loaders and
atomic storage (``load``, ``save``), synthetic priors (``priors``), fields and batching
(``fields``, ``batches``; ``pipeline`` is the older name), device sharding (``sharding``) and
the training engine shared by every package (``runs``). ``pde_data`` imports none of the other
opbayes packages: the ``opbayes`` command (``cli``) and ``opbayes demo`` (``demo``) find them
through entry points.
"""

from __future__ import annotations

import importlib

__all__ = ["DataFormatError", "load", "save"]

_MODULES = (
    "batches", "burgers", "chunked", "cli", "coordinates", "darcy", "demo", "errors", "fields",
    "formats", "generate", "grf", "info", "navier_stokes", "normalize", "pipeline", "priors",
    "runs", "schema", "sharding", "storage",
)


def __getattr__(name: str):
    # Lazy: importing pde_data must stay cheap (no jax / xarray until something is used).
    if name in ("load", "save"):
        return getattr(importlib.import_module("pde_data.storage"), name)
    if name == "DataFormatError":
        return importlib.import_module("pde_data.errors").DataFormatError
    if name in _MODULES:
        return importlib.import_module(f"pde_data.{name}")
    raise AttributeError(f"module 'pde_data' has no attribute {name!r}")

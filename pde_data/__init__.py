"""pde_data: the one data pipeline of opbayes.

PDE solvers and generators (``darcy``, ``burgers``, ``navier_stokes``, ``grf``), loaders and
atomic storage (``load``, ``save``), synthetic priors (``priors``), batching (``pipeline``),
device sharding (``sharding``) and the run-folder helpers shared by every training loop
(``runs``). ``pde_data`` imports none of the other opbayes packages.
"""

from __future__ import annotations

import importlib

__all__ = ["load", "save", "DataFormatError"]


def __getattr__(name: str):
    # Lazy: importing pde_data must stay cheap (no jax / xarray until something is used).
    if name in ("load", "save", "DataFormatError"):
        return getattr(importlib.import_module("pde_data.storage"), name)
    if name in ("grf", "darcy", "burgers", "navier_stokes", "priors", "pipeline", "sharding",
                "runs", "storage", "schema", "inspect", "normalize", "coordinates"):
        return importlib.import_module(f"pde_data.{name}")
    raise AttributeError(f"module 'pde_data' has no attribute {name!r}")

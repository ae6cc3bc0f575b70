"""Readers of foreign dataset formats, one module per format, each returning the schema of
docs/design.md: :mod:`.mat` (FNO ``.mat``, v5 and v7.3), :mod:`.pdebench` (PDEBench ``.h5``) and
:mod:`.torch_pt` (neuraloperator ``.pt`` dictionaries, read safely without torch)."""

from __future__ import annotations

import importlib

__all__ = ["reader"]

_MODULES = {"mat": "mat", "pdebench": "pdebench", "torch": "torch_pt"}


def reader(fmt: str):
    """The ``read(path) -> xarray.Dataset`` function of format ``fmt``."""
    if fmt not in _MODULES:
        raise ValueError(f"no reader for format {fmt!r}; known: {sorted(_MODULES)}")
    return importlib.import_module(f"pde_data.formats.{_MODULES[fmt]}").read

"""The errors of reading and writing datasets, in a module of their own so that the storage
layer (:mod:`pde_data.storage`) and the foreign-format readers (:mod:`pde_data.formats`) both
import them without importing each other."""

from __future__ import annotations

from pde_data.schema import SchemaError

__all__ = ["DataFormatError", "SchemaError"]


class DataFormatError(ValueError):
    """A file that cannot be read or written as a dataset: unknown extension, foreign, corrupt
    or truncated content, a missing variable, a forbidden object in a pickle."""

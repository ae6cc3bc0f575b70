"""The batching pipeline under its historical name: re-exports of :mod:`pde_data.fields`
(``FieldData``, ``FieldArray``), :mod:`pde_data.batches` (``BatchIterator``) and the
normalisers and coordinate helpers that go with them, so ``from pde_data.pipeline import
FieldData`` keeps working. New code imports from :mod:`pde_data.fields`."""

from pde_data.batches import BatchIterator
from pde_data.coordinates import add_coordinates
from pde_data.fields import FieldArray, FieldBatch, FieldData
from pde_data.normalize import PointwiseGaussian, UnitGaussian, normalizer_from_state

__all__ = [
    "BatchIterator",
    "FieldArray",
    "FieldBatch",
    "FieldData",
    "PointwiseGaussian",
    "UnitGaussian",
    "add_coordinates",
    "normalizer_from_state",
]

"""``PointSetBatch``: the one container every prior sampler returns.

A batch holds ``b`` datasets of ``n`` points each; the first ``n_context`` points of every
dataset are the context (the "training set" a PFN or neural process conditions on) and the
remaining ``n - n_context`` are the targets (the held-out points it predicts). Because the
points of a dataset are exchangeable (drawn i.i.d.), splitting by position is a uniformly
random split. ``n_context`` may be a Python int or a traced int32 scalar, so a jitted
training step can sample it per batch without recompiling (shapes stay ``(b, n, ...)``).

Fields
    x           (b, n, d) float32 inputs; datasets with fewer real features are zero-padded.
    y           (b, n) float32 regression targets, or int32 class labels in [0, n_classes).
    n_context   int / int32 scalar: points [0, n_context) are context, [n_context, n) targets.
    n_features  (b,) int32 real input dimensions per dataset (or None: all d are real).
    n_classes   (b,) int32 classes per dataset for classification priors (None otherwise).

The neural-process batches add per-point masks on the same idea (``context_mask`` below).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp


class PointSetBatch(NamedTuple):
    x: Any
    y: Any
    n_context: Any
    n_features: Any = None
    n_classes: Any = None

    @property
    def n_points(self) -> int:
        return self.x.shape[1]

    def context_mask(self) -> jnp.ndarray:
        """(n,) bool: True for context points."""
        return jnp.arange(self.x.shape[1]) < self.n_context

    def target_mask(self) -> jnp.ndarray:
        """(n,) bool: True for target points."""
        return ~self.context_mask()

    def split(self, n_context: int | None = None):
        """Host-side slicing ``((x_ctx, y_ctx), (x_tgt, y_tgt))`` for a concrete ``n_context``."""
        c = int(self.n_context if n_context is None else n_context)
        return (self.x[:, :c], self.y[:, :c]), (self.x[:, c:], self.y[:, c:])

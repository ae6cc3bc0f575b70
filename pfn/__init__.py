"""Prior-data fitted networks (Mueller et al., "Transformers Can Do Bayesian Inference", 2022).

A transformer trained on datasets drawn from a prior (``pde_data.priors``) approximates the
posterior predictive in one forward pass. ``PFNRegressor`` / ``PFNClassifier`` are the
scikit-learn style entry points; ``from_pretrained(name)`` loads a shipped checkpoint
(``available()`` lists them). ``python -m pfn {train, evaluate, export}`` is the command line.
"""

from __future__ import annotations

import importlib

__all__ = [
    "PFN",
    "PFNClassifier",
    "PFNRegressor",
    "RiemannDistribution",
    "available",
    "from_pretrained",
]

_LAZY = {
    "PFNRegressor": "pfn.estimators",
    "PFNClassifier": "pfn.estimators",
    "PFN": "pfn.model",
    "RiemannDistribution": "pfn.riemann",
    "available": "pfn.export",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pfn' has no attribute {name!r}")


def from_pretrained(name: str):
    """The estimator for shipped checkpoint ``name`` (regressor or classifier, by its task)."""
    from pfn.estimators import PFNClassifier, PFNRegressor
    from pfn.export import load_checkpoint

    model, cfg, stats = load_checkpoint(name)
    cls = PFNClassifier if cfg["task"] == "classification" else PFNRegressor
    return cls(model, cfg, stats)

"""Prior-data fitted networks (Mueller et al., "Transformers Can Do Bayesian Inference", 2022).

A transformer trained on datasets drawn from a prior (``pde_data.priors``) approximates the
posterior predictive in one forward pass. ``PFNRegressor`` / ``PFNClassifier`` are the
scikit-learn style entry points; ``from_pretrained(name_or_folder)`` loads a shipped model
(``available()`` lists them), an export or a run folder. ``python -m pfn {train, evaluate,
export}`` is the command line.
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
    "available": "pfn.checkpoint",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pfn' has no attribute {name!r}")


def from_pretrained(name_or_folder):
    """The estimator (``PFNRegressor`` or ``PFNClassifier``, by the model's task) of a shipped
    model name (``available()``), an export folder (``python -m pfn export``) or a training run
    folder, ready to ``fit``; the network is loaded now (once per process, then cached)."""
    from pfn.estimators import PFNClassifier, PFNRegressor, load_model

    task = load_model(name_or_folder).task
    cls = PFNClassifier if task == "classification" else PFNRegressor
    return cls(model=name_or_folder)

"""neural_processes: CNP, NP, ANP, the bootstrap baselines NeuBNP / NeuBANP and martingale
posterior neural processes MPNP / MPANP (Lee et al., ICLR 2023) as flax NNX modules.

Every model has ``predict(x_context, y_context, x_target) -> (mean, std)`` and
``log_likelihood(x_context, y_context, x_target, y_target)`` (per point, averaged over the
targets), batched over the first axis; ``from_pretrained(name)`` loads a shipped model.
"""

from __future__ import annotations

import importlib

__all__ = [
    "ANP",
    "CANP",
    "CNP",
    "MODELS",
    "MPANP",
    "MPNP",
    "NP",
    "NeuBANP",
    "NeuBNP",
    "build_model",
    "from_pretrained",
]

_LAZY = {
    "CNP": "conditional", "CANP": "conditional", "NP": "latent", "ANP": "latent",
    "NeuBNP": "bootstrap", "NeuBANP": "bootstrap", "MPNP": "martingale", "MPANP": "martingale",
    "MODELS": "models", "build_model": "models", "from_pretrained": "pretrained",
}


def __getattr__(name: str):
    # Lazy: importing the package stays cheap until a model is used.
    if name in _LAZY:
        return getattr(importlib.import_module(f"neural_processes.{_LAZY[name]}"), name)
    if name in ("base", "batch", "bootstrap", "conditional", "data", "evaluate", "latent",
                "layers", "likelihood", "martingale", "models", "pretrained", "train"):
        return importlib.import_module(f"neural_processes.{name}")
    raise AttributeError(f"module 'neural_processes' has no attribute {name!r}")

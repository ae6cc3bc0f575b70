"""neural_processes: CNP, NP, ANP, the bootstrap baselines NeuBNP / NeuBANP and martingale
posterior neural processes MPNP / MPANP (Lee et al., ICLR 2023) as flax NNX modules.

Every model has ``predict(x_context, y_context, x_target) -> (mean, std)`` and
``log_likelihood(x_context, y_context, x_target, y_target)`` (per point, averaged over the
targets), batched over the first axis, and ``predict_dataset(file_or_dataset, n_context)`` on
point-set files. ``from_pretrained(name_or_folder)`` loads a shipped model or an export,
``load_run(folder)`` the model of a training run, ``export(run, name, dest)`` writes one.
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
    "available",
    "build_model",
    "export",
    "from_pretrained",
    "load_run",
    "predict_point_sets",
]

_LAZY = {
    "CNP": "conditional", "CANP": "conditional", "NP": "latent", "ANP": "latent",
    "NeuBNP": "bootstrap", "NeuBANP": "bootstrap", "MPNP": "martingale", "MPANP": "martingale",
    "MODELS": "models", "build_model": "models", "available": "checkpoint",
    "export": "checkpoint", "from_pretrained": "checkpoint", "load_run": "checkpoint",
    "predict_point_sets": "predict",
}
_MODULES = ("base", "bootstrap", "checkpoint", "conditional", "data", "demo", "evaluate",
            "inputs", "latent", "layers", "likelihood", "martingale", "models", "predict", "train")


def __getattr__(name: str):
    # Lazy: importing the package stays cheap until a model is used.
    if name in _LAZY:
        return getattr(importlib.import_module(f"neural_processes.{_LAZY[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"neural_processes.{name}")
    raise AttributeError(f"module 'neural_processes' has no attribute {name!r}")

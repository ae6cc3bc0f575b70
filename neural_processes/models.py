"""The registry of model names used by the command line, run configs and checkpoints."""

from __future__ import annotations

from typing import Any

from flax import nnx

from neural_processes.base import NeuralProcess
from neural_processes.bootstrap import NeuBANP, NeuBNP
from neural_processes.conditional import CANP, CNP
from neural_processes.latent import ANP, NP
from neural_processes.martingale import MPANP, MPNP

MODELS: dict[str, type[NeuralProcess]] = {
    cls.name: cls for cls in (CNP, CANP, NP, ANP, NeuBNP, NeuBANP, MPNP, MPANP)
}


def build_model(config: dict[str, Any], seed: int = 0) -> NeuralProcess:
    """Rebuild a model from its ``config()`` dict (``model`` names the class)."""
    config = dict(config)
    name = config.pop("model", None)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name](rngs=nnx.Rngs(seed), **config)

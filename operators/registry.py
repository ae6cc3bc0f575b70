"""Model registry: names -> constructors, default hyper-parameters, parameter counts.

``build_model(name, in_channels, out_channels, dim=2, rngs=nnx.Rngs(seed), **hparams)`` builds
any registered model; ``default_hparams(name)`` is a JSON-able dict that rebuilds it (stored in
a run's ``config.json``); ``default_padding(pde)`` gives the boundary padding of a PDE.
"""

from __future__ import annotations

import copy

import jax
from flax import nnx

from .models.attention import ATTENTION_NO_DEFAULTS, AttentionNO
from .models.cnn import CNN, CNN_DEFAULTS, CNN_NO_DEFAULTS, CNNNO
from .models.fno import FNO, FNO_DEFAULTS
from .models.mgno import (
    MGNO_DEFAULTS,
    MGNO_HELMHOLTZ_DEFAULTS,
    MGNO_NS_DEFAULTS,
    MgNO,
    MgNOHelmholtz,
)
from .models.mgno_conv import MGNO_CONV_DEFAULTS, MgNOConv
from .models.unet import UNET_DEFAULTS, UNET_NO_DEFAULTS, UNet, UNetNO
from .models.uno import UNO, UNO_DEFAULTS
from .models.vit import VIT_DEFAULTS, VIT_NO_DEFAULTS, ViT, ViTNO

__all__ = ["MODELS", "PDE_PADDING", "build_model", "count_params", "default_hparams", "default_padding",
           "fit_base_resolution"]

#: name -> model class (called as ``cls(in_channels, out_channels, dim=..., rngs=..., **hparams)``)
MODELS = {"mgno": MgNO, "mgno-conv": MgNOConv, "fno": FNO, "uno": UNO,
          "unet-no": UNetNO, "vit-no": ViTNO, "attention-no": AttentionNO}
# the plain networks of the NN-to-NO comparison (index-space kernels, patches and embeddings)
# and the converted CNN (operators.convert of ``cnn`` on the training grid)
MODELS.update({"cnn": CNN, "cnn-no": CNNNO, "unet": UNet, "vit": ViT})
# the reference MgNO of the paper's Navier-Stokes and Helmholtz experiments (xlliu2017/MgNO)
MODELS.update({"mgno-ns": MgNO, "mgno-helmholtz": MgNOHelmholtz})

_DEFAULTS = {"mgno": MGNO_DEFAULTS, "mgno-conv": MGNO_CONV_DEFAULTS, "fno": FNO_DEFAULTS, "uno": UNO_DEFAULTS,
             "unet-no": UNET_NO_DEFAULTS, "vit-no": VIT_NO_DEFAULTS, "attention-no": ATTENTION_NO_DEFAULTS}
_DEFAULTS.update({"cnn": CNN_DEFAULTS, "cnn-no": CNN_NO_DEFAULTS, "unet": UNET_DEFAULTS, "vit": VIT_DEFAULTS})
_DEFAULTS.update({"mgno-ns": MGNO_NS_DEFAULTS, "mgno-helmholtz": MGNO_HELMHOLTZ_DEFAULTS})

#: boundary padding per PDE: zeros (Dirichlet), wrap (periodic), reflect (MgNO's Helmholtz)
PDE_PADDING = {
    "darcy": "zeros",
    "darcy-rough": "zeros",
    "darcy-multiscale": "zeros",
    "poisson": "zeros",
    "helmholtz": "reflect",
    "burgers": "wrap",
    "navier_stokes": "wrap",
    "navier-stokes": "wrap",
    "ns": "wrap",
}


def _check_name(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")


def default_padding(pde: str) -> str:
    """Padding mode for a PDE name: ``zeros`` for Darcy/Poisson (Dirichlet), ``wrap`` for
    Burgers/Navier-Stokes (periodic), ``reflect`` for Helmholtz."""
    key = str(pde).lower().replace(" ", "_")
    if key not in PDE_PADDING:
        raise ValueError(f"no default padding for PDE {pde!r}; known: {sorted(PDE_PADDING)}")
    return PDE_PADDING[key]


def default_hparams(name: str, pde: str | None = None, periodic: bool | None = None) -> dict:
    """JSON-able default hyper-parameters of model ``name``; ``pde`` and / or ``periodic`` set
    the padding mode to suit the boundary conditions. With both, the PDE's mode is kept when it
    agrees with the grid layout (e.g. ``reflect`` for Helmholtz on a node grid); where they
    disagree the data's layout wins (``wrap`` on a periodic grid, ``zeros`` otherwise)."""
    _check_name(name)
    hp = copy.deepcopy(_DEFAULTS[name])
    if "padding" not in hp:
        return hp
    if pde is not None:
        hp["padding"] = default_padding(pde)
        if periodic is not None and (hp["padding"] == "wrap") != bool(periodic):
            hp["padding"] = "wrap" if periodic else "zeros"
    elif periodic is not None:
        hp["padding"] = "wrap" if periodic else "zeros"
    return hp


def build_model(name: str, in_channels: int, out_channels: int, dim: int = 2, *, rngs: nnx.Rngs | None = None,
                dtype=None, param_dtype=None, **hparams):
    """Model ``name`` with the defaults updated by ``hparams`` (ValueError for unknown keys).
    ``param_dtype`` (float32 when None) / ``dtype`` (None: the input's): the dtype of the
    parameters and of the computation (float64 needs ``jax_enable_x64``)."""
    _check_name(name)
    hp = default_hparams(name)
    unknown = sorted(set(hparams) - set(hp))
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown} for model {name!r}; known: {sorted(hp)}")
    hp.update(hparams)
    if int(in_channels) < 1 or int(out_channels) < 1:
        raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
    if dtype is not None:
        hp["dtype"] = dtype
    if param_dtype is not None:
        hp["param_dtype"] = param_dtype
    return MODELS[name](int(in_channels), int(out_channels), dim=int(dim),
                        rngs=rngs if rngs is not None else nnx.Rngs(0), **hp)


def count_params(model) -> int:
    """Number of trainable scalars (complex weights count twice, as in the reference code)."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def fit_base_resolution(name: str, hparams: dict, spatial, periodic: bool) -> int | None:
    """``base_resolution`` (cells per axis of the reference grid) of model ``name`` with
    ``hparams`` for training on a grid of shape ``spatial``; None for models without one.

    ``unet-no``, ``cnn-no``: exactly the training grid's cells (``s - 1`` on a node grid, ``s``
    periodic; the converted network is the plain one there, and serves grids refining it);
    ``vit``: exactly the cells too (its positional embedding is learned on that grid); ``vit-no``: the nearest
    multiple of ``patch_size``; ``mgno-conv``: the nearest multiple of ``2^(levels-1)``."""
    _check_name(name)
    if "base_resolution" not in default_hparams(name):
        return None
    cells = max(int(s) if periodic else int(s) - 1 for s in spatial)
    if name in ("unet-no", "cnn-no", "vit"):
        return cells
    if name == "vit-no":
        m = int(hparams.get("patch_size", _DEFAULTS[name]["patch_size"]))
    else:
        from .layers.multigrid import normalise_smoothing

        m = 2 ** (len(normalise_smoothing(hparams.get("smoothing", _DEFAULTS[name].get("smoothing")))) - 1)
    return max(m, int(cells / m + 0.5) * m)

"""The model registry the training command relies on."""

from __future__ import annotations

import json

import pytest
from flax import nnx

import operators


def test_names_defaults_and_rebuild():
    assert set(operators.MODELS) == {"mgno", "mgno-conv", "fno", "uno", "unet-no", "vit-no", "attention-no",
                                     "cnn", "cnn-no", "unet", "vit", "mgno-ns", "mgno-helmholtz"}
    for name in operators.MODELS:
        hp = operators.default_hparams(name)
        assert json.loads(json.dumps(hp)) == hp  # JSON-able, stored in config.json
        a = nnx.eval_shape(lambda n=name, h=hp: operators.build_model(n, 2, 1, rngs=nnx.Rngs(0), **h))
        assert operators.count_params(a) > 0


def test_padding_per_pde():
    assert operators.default_padding("darcy") == "zeros"
    assert operators.default_padding("burgers") == "wrap"
    assert operators.default_padding("navier_stokes") == "wrap"
    assert operators.default_hparams("mgno", pde="burgers")["padding"] == "wrap"
    assert operators.default_hparams("fno", periodic=False)["padding"] == "zeros"
    with pytest.raises(ValueError, match="no default padding"):
        operators.default_padding("kdv")


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model"):
        operators.build_model("resnet", 1, 1)
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        operators.build_model("mgno", 1, 1, widht=3)
    with pytest.raises(ValueError, match="in_channels"):
        operators.build_model("mgno", 0, 1)

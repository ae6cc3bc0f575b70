"""Our MgNO against the reference PyTorch MgNO (xlliu2017/MgNO), weight for weight.

The reference models are rewritten in tests/operators/mgno_torch_reference.py; each is built
with PyTorch's own initialisation, its weights are copied into the opbayes model of the same
configuration (registry defaults), and the two forward passes must agree to 1e-5 (relative to
the output's size). Needs torch (the ``reference`` extra); skipped without it.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax.numpy as jnp
from flax import nnx

import operators

from . import mgno_torch_reference as ref

#: name, reference model, registry model and its hparams, grid
CONFIGS = {
    "darcy-rough": (lambda: ref.MgNO_DC(4, 24, 1, [[1, 0]] * 5 + [[2, 0]], [4] * 5), "mgno", {}, 256),
    "darcy-smooth": (lambda: ref.MgNO_DC(5, 24, 1, [[1, 0]] * 5 + [[2, 0]], [3, 4, 3, 3, 4]), "mgno",
                     {"n_layers": 5, "grid_size": 211}, 211),
    "navier-stokes": (lambda: ref.MgNO_NS(5, 32, 1, [[1, 0]] * 3 + [[2, 0]] * 2), "mgno-ns", {}, 64),
    "helmholtz": (lambda: ref.MgNO_helm(4, 20, 1, [1, 1, 1, 1, 2]), "mgno-helmholtz", {}, 101),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_forward_matches_reference_weight_for_weight(name):
    make_ref, model, hparams, n = CONFIGS[name]
    torch.manual_seed(0)
    theirs = make_ref().eval()
    ours = operators.build_model(model, 1, 1, rngs=nnx.Rngs(0), **hparams)
    # every parameter that acts on the output is matched (the reference's Helmholtz V-cycles
    # also carry an A they never apply: 11,241 scalars)
    unused = 11_241 if model == "mgno-helmholtz" else 0
    assert operators.count_params(ours) == ref.count_params(theirs) - unused
    ref.copy_into(ours, theirs)
    x = np.random.default_rng(0).standard_normal((2, 1, n, n)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    got = np.asarray(ours(jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.slow
def test_periodic_prolongation_differs_from_the_reference_only_at_the_boundary():
    """The wrapping prolongation (our option) is the reference's plus the coarse points that
    wrap around: with the reference weights the two models differ, most near the boundary."""
    make_ref, model, _, n = CONFIGS["navier-stokes"]
    torch.manual_seed(1)
    theirs = make_ref().eval()
    small = {"n_layers": 1}
    theirs.mg = theirs.mg[:1]
    zeros = operators.build_model(model, 1, 1, rngs=nnx.Rngs(0), **small)
    wrap = operators.build_model(model, 1, 1, rngs=nnx.Rngs(0), prolongation_padding="wrap", **small)
    ref.copy_into(zeros, theirs)
    ref.copy_into(wrap, theirs)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, n, n, 1)), jnp.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(np.array(x).transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(zeros(x)), want, rtol=0, atol=1e-5 * np.abs(want).max())
    gap = np.abs(np.asarray(wrap(x)) - want)[0, ..., 0]
    assert gap.max() > 1e-3
    assert gap[[0, -1], :].mean() > 2 * gap[n // 4:3 * n // 4, n // 4:3 * n // 4].mean()

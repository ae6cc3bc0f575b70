"""Non-finite and extreme inputs to the PDE solvers and the GRF sampler: a named error
(``ValueError``, or ``NonFiniteSolution`` for a blow-up), never NaN / inf output or a raw
SuperLU / overflow exception (#16). Ordinary coefficients keep their bit-exact solutions."""

from __future__ import annotations

import numpy as np
import pytest

from pde_data import burgers, darcy, grf, navier_stokes
from pde_data.checks import NonFiniteSolution

A = np.ones((1, 9, 9))
U0 = np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))[None]
W0 = np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))[None, :, None] * np.ones((1, 16, 16))


@pytest.mark.parametrize("call, error, match", [
    (lambda: darcy.solve(A * np.nan), ValueError, "a contains NaN or inf"),
    (lambda: darcy.solve(-A), ValueError, "a must be positive"),
    (lambda: darcy.solve(A, f=float("nan")), ValueError, "f must be finite"),
    (lambda: darcy.solve(np.where(np.arange(9)[None, :, None] < 4, 1e-20, 1e20) * A),
     ValueError, "contrast"),
    (lambda: darcy.solve(A * 1e-30, f=1e300), NonFiniteSolution, "overflows float64"),
    (lambda: burgers.solve(U0 * 1e30, t=[0.1]), NonFiniteSolution, "burgers.*lower dt"),
    (lambda: burgers.solve(U0, t=[1e30]), ValueError, "steps"),
    (lambda: navier_stokes.solve(W0 * 1e30, t=[0.01]), NonFiniteSolution, "navier_stokes"),
    (lambda: navier_stokes.solve(W0, t=[0.01], forcing_amplitude=float("nan")), ValueError,
     "forcing_amplitude"),
    (lambda: grf.sample(0, 2, 8, alpha=1e30), ValueError, "overflows"),
    (lambda: grf.sample(0, 2, 8, sigma=1e300), ValueError, "overflows"),
], ids=["darcy-nan", "darcy-negative", "darcy-f-nan", "darcy-contrast", "darcy-overflow",
        "burgers-1e30", "burgers-t-1e30", "ns-1e30", "ns-forcing-nan", "grf-alpha", "grf-sigma"])
def test_extreme_inputs_give_a_named_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_darcy_scale_invariance_covers_huge_and_tiny_coefficients():
    """u(c a, f) = u(a, f) / c: solved exactly for c = 2^k (the solver divides by the power of
    two nearest max(a)), so 1e300 and 1e-300 coefficients no longer overflow the face means;
    ordinary coefficients give the same bits as before."""
    a = darcy.coefficient(0, 1, 17)
    u = darcy.solve(a)
    for c in (1e300, 1e-300, 2.0**-40):
        np.testing.assert_allclose(darcy.solve(a * c), u / c, rtol=1e-12)
    assert np.isfinite(darcy.solve(A * 1e300)).all()

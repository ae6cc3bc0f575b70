"""Synthetic priors: jit-compiled samplers of point-set datasets (GP, BNN, classification).

``kernels`` (covariance functions), ``gp`` (GP sampling, exact posterior, marginal
likelihood), ``samplers`` (seeded batch samplers returning ``pde_data.points.PointSets``,
the one point-set batch type) and ``hyper`` (hyper-priors).
"""

from pde_data.priors.gp import gp_log_marginal_likelihood, gp_posterior, sample_gp
from pde_data.priors.kernels import KERNELS, get_kernel, matern12, matern32, matern52, periodic, rbf

__all__ = [
    "KERNELS",
    "get_kernel",
    "gp_log_marginal_likelihood",
    "gp_posterior",
    "matern12",
    "matern32",
    "matern52",
    "periodic",
    "rbf",
    "sample_gp",
]

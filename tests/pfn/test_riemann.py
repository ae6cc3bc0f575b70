"""The Riemann distribution against numerical integration of its own density, tails included."""

import jax
import numpy as np
import pytest
from scipy import integrate

from pfn.riemann import RiemannDistribution, borders_from_samples


@pytest.fixture(scope="module")
def dist():
    rng = np.random.default_rng(0)
    borders = np.sort(rng.normal(size=13)).astype(np.float32)
    logits = rng.normal(size=(3, 12)).astype(np.float32) * 1.5
    logits[1, 0] += 3.0  # much mass in the left tail
    logits[2, -1] += 3.0  # and in the right tail
    return RiemannDistribution(logits, borders), borders


def _pdf(d, row):
    f = jax.jit(lambda y: d.pdf(y)[row])
    return lambda y: float(f(np.float32(y)))


def _pieces(borders):
    """Integration intervals: the left tail, each inner bucket, the right tail."""
    b = [float(v) for v in borders]
    return [(-np.inf, b[1])] + [(b[k], b[k + 1]) for k in range(1, len(b) - 2)] + [(b[-2], np.inf)]


def _integrate(fn, borders):
    return sum(integrate.quad(fn, lo, hi, limit=200, epsabs=1e-8, epsrel=1e-6)[0] for lo, hi in _pieces(borders))


@pytest.mark.parametrize("row", [0, 1, 2])
def test_density_integrates_to_one_and_moments_match(dist, row):
    d, borders = dist
    pdf = _pdf(d, row)
    total = _integrate(pdf, borders)
    mean = _integrate(lambda y: y * pdf(y), borders)
    var = _integrate(lambda y: (y - mean) ** 2 * pdf(y), borders)
    assert total == pytest.approx(1.0, abs=2e-5)
    assert float(d.mean[row]) == pytest.approx(mean, abs=2e-4)
    assert float(d.std[row]) == pytest.approx(np.sqrt(var), rel=2e-4)


@pytest.mark.parametrize("row", [0, 1, 2])
def test_cdf_is_integral_of_density(dist, row):
    d, borders = dist
    pdf = _pdf(d, row)
    ys = [borders[0] - 2.0, borders[1] - 0.1, (borders[4] + borders[5]) / 2, borders[-2] + 0.05,
          borders[-1] + 1.0]
    for y in ys:
        pieces = [(lo, min(hi, y)) for lo, hi in _pieces(borders) if lo < y]
        ref = sum(integrate.quad(pdf, lo, hi, limit=200, epsabs=1e-8, epsrel=1e-6)[0] for lo, hi in pieces)
        assert float(d.cdf(np.float32(y))[row]) == pytest.approx(ref, abs=3e-5)


def test_quantile_inverts_cdf_in_tails_and_inside(dist):
    d, _ = dist
    for q in [1e-4, 0.01, 0.2, 0.5, 0.8, 0.99, 0.9999]:
        y = d.quantile(np.float32(q))
        np.testing.assert_allclose(d.cdf(y), q, atol=2e-5)


def test_logpdf_matches_log_of_bucket_probability_over_width(dist):
    d, borders = dist
    k = 5
    mid = (borders[k] + borders[k + 1]) / 2
    p = np.asarray(d.probs)[:, k]
    np.testing.assert_allclose(d.logpdf(mid), np.log(p / (borders[k + 1] - borders[k])), rtol=1e-5)


def test_samples_follow_the_distribution(dist):
    d, borders = dist
    draws = np.asarray(d.sample(jax.random.key(0), (40000,)))  # (40000, 3)
    for row in range(3):
        for y in [borders[1], borders[6], borders[-2], borders[-1] + 0.5]:
            emp = np.mean(draws[:, row] <= y)
            assert emp == pytest.approx(float(d.cdf(np.float32(y))[row]), abs=0.01)
        assert draws[:, row].mean() == pytest.approx(float(d.mean[row]), abs=0.05)


def test_borders_from_samples_equal_probability():
    y = np.random.default_rng(1).normal(size=100000)
    b = borders_from_samples(y, 10)
    counts, _ = np.histogram(y, b)
    np.testing.assert_allclose(counts / y.size, 0.1, atol=1e-3)
    with pytest.raises(ValueError, match="repeated"):
        borders_from_samples(np.repeat([0.0, 1.0], 100), 10)


@pytest.mark.parametrize("row", [0, 1, 2])
@pytest.mark.parametrize("mean, sd", [(0.1, 0.7), (-2.5, 0.4), (2.0, 1.5), (0.3, 0.02)])
def test_expected_nll_under_a_gaussian_matches_numerical_integration(dist, row, mean, sd):
    """Cross-entropy against N(mean, sd^2): integral of -log p(y) times the Gaussian density,
    tail buckets included (means far in both tails, a sharp Gaussian inside one bucket)."""
    from scipy.stats import norm

    d, borders = dist
    logpdf = jax.jit(lambda y: d.logpdf(y)[row])
    integrand = lambda y: -float(logpdf(np.float32(y))) * norm.pdf(y, mean, sd)
    expected = _integrate(integrand, borders)
    got = d.expected_nll_gaussian(np.full(3, mean, np.float32), np.full(3, sd**2, np.float32))
    np.testing.assert_allclose(float(got[row]), expected, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("width", [0.1, pytest.param(0.05, marks=pytest.mark.slow), 0.025])
def test_bucketised_gaussian_loses_the_predicted_nats(width):
    """KL(N(0, s^2) || its bucketised bar distribution) = E[-log q] - entropy, which for buckets
    of width w << s is w^2 / (24 s^2) (second order in w; the head's resolution floor)."""
    s = 0.5
    borders = np.arange(-6.0, 6.0 + width / 2, width)
    d = RiemannDistribution.from_gaussian(np.zeros(1), np.full(1, s**2), borders)
    cross = float(d.expected_nll_gaussian(np.zeros(1), np.full(1, s**2))[0])
    entropy = 0.5 * np.log(2 * np.pi * np.e * s**2)
    np.testing.assert_allclose(cross - entropy, width**2 / (24 * s**2), rtol=0.05)

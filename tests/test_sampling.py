"""Collocation samplers against closed-form moments and resampling weights."""

import jax
import jax.numpy as jnp
import numpy as np

from stackjax import examples
from stackjax._sampling import resample_by_residual, sample_points


def test_multiscale_sampler_spreads_distances_uniformly():
    """``"multiscale"``: ``x = x0 + s u xi``, ``u ~ U[0, 1]``: per-coordinate variance s^2 / 3,
    ``E|x - x0|^4 = s^4 d (d + 2) / 5`` and distances / (s sqrt(d)) close to U[0, 1] (Kolmogorov
    distance; the Gaussian's all sit near 1), against the closed forms at N = 20000."""
    game = examples.random_game(jax.random.key(0), 50, 1)
    s, n, d = 0.7, 20_000, 50
    t, x = sample_points(game, jax.random.key(3), n, scale=s, distribution="multiscale")
    z = np.asarray(x, np.float64) - np.asarray(game.x0)
    assert t.shape == (n,) and x.shape == (n, d) and float(jnp.min(t)) >= 0
    np.testing.assert_allclose(np.mean(z**2), s**2 / 3, rtol=0.02)  # MC error ~0.5%
    r2 = np.sum(z**2, axis=1)
    np.testing.assert_allclose(np.mean(r2**2), s**4 * d * (d + 2) / 5, rtol=0.03)
    u = np.sort(np.sqrt(r2) / (s * np.sqrt(d)))
    ks = np.max(np.abs(np.clip(u, 0, 1) - (np.arange(n) + 0.5) / n))  # vs the U[0, 1] CDF
    assert ks < 0.06  # |xi| / sqrt(d) = 1 +- 0.1 smears the CDF near u = 1 (measured 0.035)
    _, g = sample_points(game, jax.random.key(3), n, scale=s, distribution="gaussian")
    rg = np.linalg.norm(np.asarray(g) - np.asarray(game.x0), axis=1) / (s * np.sqrt(d))
    assert np.mean(rg < 0.5) < 1e-3 and np.mean(u < 0.5) > 0.45


def test_residual_adaptive_resampling_follows_weights():
    t, x = sample_points(examples.cross_term_game(), jax.random.key(0), 8)
    size = jnp.zeros(8).at[3].set(1.0).at[5].set(3.0)
    t_new, _ = resample_by_residual(t, x, size, jax.random.key(1), 20_000, uniform_weight=0.2)
    picked = np.asarray(t_new)[:, None] == np.asarray(t)[None, :]
    freq = picked.mean(axis=0)
    expected = 0.8 * np.asarray(size) / 4.0 + 0.2 / 8
    assert np.all(np.abs(freq - expected) <= 4 * np.sqrt(expected * (1 - expected) / 20_000))

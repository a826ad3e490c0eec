"""Second-order operators of the neural solver against `jax.hessian` (docs/math.md §3.4, §5.4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax import examples
from stackjax._game import Coefficients
from stackjax._hamiltonian import hessian_products, pointwise_equilibrium, pre_hamiltonian
from stackjax._operators import (
    PRODUCT_METHODS,
    diffusion_margin,
    gradient_and_products,
    parabolicity_margin,
    principal_symbol,
    sketch_diffusion,
)


def _network_params(key, d, width=16, outputs=2):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return (
        jax.random.normal(k1, (width, d)) / np.sqrt(d),
        jax.random.normal(k2, (width,)),
        jax.random.normal(k3, (outputs, width)) / np.sqrt(width),
        jax.random.normal(k4, (outputs, d, d)),
    )


def _network(params, x):
    """A two-layer tanh network plus a quartic ``x [d] -> [outputs]`` (smooth, non-quadratic)."""
    W1, b1, W2, A = params
    d = x.shape[0]
    return W2 @ jnp.tanh(W1 @ x + b1) + 0.1 * jnp.einsum("d,kde,e->k", x, A, x) ** 2 / d


def _random_network(key, d, width=16, outputs=2):
    params = _network_params(key, d, width, outputs)
    return lambda x: _network(params, x)


EXACT_METHODS = tuple(m for m in PRODUCT_METHODS if m != "hessian")


@jax.jit
def _fast_and_reference(params, coef, x):
    """Every exact plan (one compilation) and the independent full-Hessian contraction."""
    f = lambda z: _network(params, z)  # noqa: E731
    fast = {m: gradient_and_products(f, x, coef, method=m) for m in EXACT_METHODS}
    ref = hessian_products(jax.hessian(f)(x), coef)  # independent: full Hessian, then contract
    light_coef = coef.replace(D1=0 * coef.D1, D2=0 * coef.D2)
    _, light = gradient_and_products(f, x, light_coef, controlled=False)
    return jax.jacfwd(f)(x), fast, ref, light


def _random_coefficients(key, d, n, k1, k2):
    keys = jax.random.split(key, 12)
    normal = lambda k, shape: jax.random.normal(k, shape)  # noqa: E731
    return Coefficients(
        beta=normal(keys[0], (d,)),
        B1=normal(keys[1], (d, k1)),
        B2=normal(keys[2], (d, k2)),
        c=normal(keys[3], (n, d)),
        D1=0.3 * normal(keys[4], (n, d, k1)),
        D2=0.3 * normal(keys[5], (n, d, k2)),
        f0=normal(keys[6], (2,)),
        w1=normal(keys[7], (2, k1)),
        w2=normal(keys[8], (2, k2)),
        R11=jnp.stack([3.0 * jnp.eye(k1)] * 2),
        R12=0.2 * normal(keys[9], (2, k1, k2)),
        R22=jnp.stack([3.0 * jnp.eye(k2)] * 2),
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("d, n, k1, k2", [(3, 2, 1, 2), (5, 3, 2, 1), (12, 2, 1, 1)])
def test_hvp_products_equal_hessian_products(seed, d, n, k1, k2):
    """All exact plans vs jax.hessian in float64 (1e-10). The default 'hvp' uses
    forward-over-reverse for (12, 2, 1, 1) (r = n (1 + k1 + k2) = 6 <= 2 d directions) and
    the axis-HVP Hessian for the others (r = 8 > 6, r = 12 > 10)."""
    key = jax.random.key(seed)
    kn, kc, kx = jax.random.split(key, 3)
    coef = _random_coefficients(kc, d, n, k1, k2)
    x = jax.random.normal(kx, (d,))
    jac, fast, ref, light = _fast_and_reference(_network_params(kn, d), coef, x)
    for method, (grads, hp) in fast.items():
        np.testing.assert_allclose(grads, jac, rtol=1e-12, atol=1e-12, err_msg=method)
        for name in ("Mc", "MD1", "MD2"):
            np.testing.assert_allclose(
                getattr(hp, name), getattr(ref, name), rtol=1e-10, atol=1e-10, err_msg=method
            )
    # Uncontrolled mode (default plan): same Mc, zero D products.
    np.testing.assert_allclose(light.Mc, ref.Mc, rtol=1e-10, atol=1e-10)
    assert not np.any(np.asarray(light.MD1)) and not np.any(np.asarray(light.MD2))


def test_unknown_product_method_raises():
    coef = _random_coefficients(jax.random.key(0), 3, 2, 1, 1)
    f = _random_network(jax.random.key(1), 3)
    with pytest.raises(ValueError, match="sketch_diffusion"):
        gradient_and_products(f, jnp.zeros(3), coef, method="hutchinson")
    with pytest.raises(ValueError, match="must be one of"):
        gradient_and_products(f, jnp.zeros(3), coef, method="taylor")


@pytest.mark.slow
def test_sketched_operator_is_unbiased():
    """Mean of the Hutchinson-sketched pre-Hamiltonian over many probes vs the exact one."""
    d, n, k1, k2 = 6, 5, 2, 1
    kn, kc, kx, kp = jax.random.split(jax.random.key(3), 4)
    f = _random_network(kn, d)
    coef = _random_coefficients(kc, d, n, k1, k2)
    x = jax.random.normal(kx, (d,))
    grads, hp = gradient_and_products(f, x, coef, method="hessian")
    exact = pre_hamiltonian(coef, grads, hp)

    def estimate(key):
        sketched = sketch_diffusion(coef, key, 2)
        y, hp_s = gradient_and_products(f, x, sketched)
        return pre_hamiltonian(sketched, y, hp_s)

    draws = jax.jit(jax.vmap(estimate))(jax.random.split(kp, 4000))
    for name in ("R11", "R12", "R22", "rho1", "rho2", "h0"):
        samples = np.asarray(getattr(draws, name))
        mean = samples.mean(axis=0)
        stderr = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
        target = np.asarray(getattr(exact, name))
        assert np.all(np.abs(mean - target) <= 4.0 * stderr + 1e-12), name
        if name != "R11":  # a single sketch is genuinely random (not exact by accident)
            assert np.max(samples.std(axis=0)) > 1e-3


@pytest.mark.slow
def test_principal_symbol_leader_diagonal_is_diffusion_form():
    """Envelope identity of docs/math.md §5.4: A_11(xi) = 1/2 xi^T E[sigma sigma^T] xi."""
    game = examples.controlled_diffusion_game()
    d = game.state_dim
    f = _random_network(jax.random.key(5), d)
    # Keep the curvature mild so that the pointwise problems stay well posed.
    g = lambda x: 0.05 * f(x) + jnp.stack([x @ x, 0.5 * x @ x])  # noqa: E731
    x = jnp.array([0.3, -0.7])
    coef = game.coefficients(x, 1)

    @jax.jit
    def compute(xis):
        grads, hp = gradient_and_products(g, x, coef)
        eq = pointwise_equilibrium(pre_hamiltonian(coef, grads, hp), game.lam)
        mean_cols = coef.diffusion(eq.mean_leader, eq.mean_follower)
        expected = mean_cols.T @ mean_cols
        expected = expected + jnp.einsum("lda,ab,leb->de", coef.D1, eq.cov_leader, coef.D1)
        expected = expected + jnp.einsum("lda,ab,leb->de", coef.D2, eq.cov_follower, coef.D2)
        symbols = jax.vmap(lambda xi: principal_symbol(coef, grads, hp, game.lam, xi))(xis)
        return symbols, expected, diffusion_margin(coef, eq)

    xis = jax.random.normal(jax.random.key(6), (4, d))
    xis = xis / jnp.linalg.norm(xis, axis=1, keepdims=True)
    symbols, expected, margin = compute(xis)
    for xi, A in zip(xis, symbols, strict=True):
        np.testing.assert_allclose(A[0, 0], 0.5 * xi @ expected @ xi, rtol=1e-9)
        assert abs(float(A[0, 1])) > 1e-6  # genuinely coupled (controlled, general sum)
    smallest = np.linalg.eigvalsh(np.asarray(expected))[0]
    np.testing.assert_allclose(margin, 0.5 * smallest, rtol=1e-10)


@pytest.mark.slow
def test_parabolicity_margin_matches_dense_search():
    """Margin of docs/math.md §5.4 vs symbol eigenvalues on a dense circle of directions (d = 2)."""
    game = examples.controlled_diffusion_game()
    f = _random_network(jax.random.key(8), game.state_dim)
    g = lambda x: 0.05 * f(x) + jnp.stack([x @ x, 0.5 * x @ x])  # noqa: E731
    x = jnp.array([1.5, -0.4])
    coef = game.coefficients(x, 0)
    angles = np.linspace(0.0, np.pi, 721)
    xis = jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], axis=1))

    @jax.jit
    def compute(xis):
        grads, hp = gradient_and_products(g, x, coef)
        margin = parabolicity_margin(coef, grads, hp, game.lam, jax.random.key(9))
        symbols = jax.vmap(lambda xi: principal_symbol(coef, grads, hp, game.lam, xi))(xis)
        return margin, symbols

    margin, symbols = compute(xis)
    dense = min(np.linalg.eigvals(np.asarray(A)).real.min() for A in symbols)
    assert float(margin) >= dense - 1e-9  # never below the true minimum
    np.testing.assert_allclose(float(margin), dense, atol=2e-3 * abs(dense) + 1e-6)

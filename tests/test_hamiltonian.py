"""Gibbs minimizer and pointwise equilibria against brute force and closed forms (docs/math.md §4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize

import stackjax as sj
from stackjax.examples import random_game


# -- Gibbs minimizer -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_gibbs_minimizer_matches_1d_quadrature(seed):
    """Soft minimum ``-lambda log Z`` and moments of ``exp(-(w u^2 + 2 l u)/lambda)`` by quadrature."""
    rng = np.random.default_rng(seed)
    w, l, lam = rng.uniform(0.3, 3.0), rng.normal(), rng.uniform(0.05, 2.0)
    mean, cov, value = sj.gibbs_quadratic(jnp.array([[w]]), jnp.array([l]), jnp.asarray(lam))

    def energy(u):
        return w * u * u + 2 * l * u

    shift = -l / w  # integrate around the mode for accuracy
    z = integrate.quad(lambda u: np.exp(-(energy(u) - energy(shift)) / lam), -np.inf, np.inf)[0]
    m1 = (
        integrate.quad(lambda u: u * np.exp(-(energy(u) - energy(shift)) / lam), -np.inf, np.inf)[0]
        / z
    )
    m2 = integrate.quad(lambda u: (u - m1) ** 2 * np.exp(-(energy(u) - energy(shift)) / lam), -np.inf, np.inf)[0] / z  # fmt: skip
    soft_min = energy(shift) - lam * np.log(z)  # min over densities of E[energy] + lam E[log pi]
    np.testing.assert_allclose(float(value), soft_min, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(mean[0]), m1, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(float(cov[0, 0]), m2, rtol=1e-8)


@pytest.mark.parametrize("seed", range(3))
def test_gibbs_minimizer_beats_perturbed_gaussians_2d(seed):
    """Free energy of N(mu, Sigma) in closed form (independent of the code) is minimal at the output."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(2, 2))
    w = a @ a.T + np.eye(2)
    l, lam = rng.normal(size=2), 0.4

    def free_energy(mu, cov):
        return (
            mu @ w @ mu
            + np.trace(w @ cov)
            + 2 * l @ mu
            - 0.5 * lam * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]
        )

    mean, cov, value = (
        np.asarray(v) for v in sj.gibbs_quadratic(jnp.asarray(w), jnp.asarray(l), lam)
    )
    np.testing.assert_allclose(free_energy(mean, cov), value, rtol=1e-12)

    # Brute force over Gaussian parameters (mean, Cholesky factor).
    def objective(theta):
        chol = np.array([[np.exp(theta[2]), 0.0], [theta[3], np.exp(theta[4])]])
        return free_energy(theta[:2], chol @ chol.T)

    best = optimize.minimize(objective, np.zeros(5), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(best.fun, value, rtol=1e-7, atol=1e-9)


def test_gibbs_zero_temperature_is_deterministic_minimizer():
    w, l = jnp.array([[2.0, 0.3], [0.3, 1.0]]), jnp.array([0.5, -1.0])
    mean, cov, value = sj.gibbs_quadratic(w, l, jnp.asarray(0.0))
    np.testing.assert_allclose(mean, -np.linalg.solve(w, l), rtol=1e-12)
    np.testing.assert_array_equal(cov, 0.0)
    np.testing.assert_allclose(value, -l @ np.linalg.solve(w, l), rtol=1e-12)


# -- Pointwise equilibrium ------------------------------------------------------------------
def _random_point(seed, k1=1, k2=1, controlled=True):
    """Pre-Hamiltonian of a random controlled-diffusion game at a random point and Hessian."""
    game = random_game(jax.random.key(seed), d=3, m=1, leader_dim=k1, follower_dim=k2,
                       controlled_diffusion=controlled, lam=(0.3, 0.2))  # fmt: skip
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=3))
    y = jnp.asarray(rng.normal(size=(2, 3)))
    a = rng.normal(size=(2, 3, 3))
    M = jnp.asarray(0.2 * (a + np.swapaxes(a, 1, 2)) + np.eye(3))
    coef = game.coefficients(x, 0)
    return game, sj.pre_hamiltonian(coef, y, sj.hessian_products(M, coef)), coef, y, M


@pytest.mark.parametrize("seed", range(4))
def test_pre_hamiltonian_matches_direct_expansion(seed):
    """h_k(u) from the coefficients equals f_k + y.b + 1/2 sum_l sigma^l.M sigma^l directly."""
    game, pre, coef, y, M = _random_point(seed, k1=2, k2=1)
    rng = np.random.default_rng(100 + seed)
    for _ in range(3):
        u1, u2 = jnp.asarray(rng.normal(size=2)), jnp.asarray(rng.normal(size=1))
        sigma = coef.diffusion(u1, u2)  # [n, d]
        direct = (
            coef.running_cost(u1, u2)
            + y @ coef.drift(u1, u2)
            + 0.5 * jnp.einsum("ld,kde,le->k", sigma, M, sigma)
        )
        np.testing.assert_allclose(pre.evaluate(u1, u2), direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_leader_total_derivative_first_order_condition(seed):
    """d/dmu1 h_1(mu1, kappa + Lambda mu1) = 0 at the Stackelberg mean (docs/math.md §4.6), but not
    the partial derivative alone when the follower reacts."""
    _, pre, *_ = _random_point(seed, k1=2, k2=2)
    eq = sj.pointwise_equilibrium(pre, jnp.array([0.3, 0.2]))

    def reduced(mu1):
        return pre.evaluate(mu1, eq.reaction_offset + eq.reaction @ mu1)[0]

    total = jax.grad(reduced)(eq.mean_leader)
    partial = jax.grad(lambda mu1: pre.evaluate(mu1, eq.mean_follower)[0])(eq.mean_leader)
    np.testing.assert_allclose(total, 0.0, atol=1e-12)
    assert float(jnp.abs(partial).max()) > 1e-4
    # Follower's own first-order condition at its mean.
    grad_f = jax.grad(lambda mu2: pre.evaluate(eq.mean_leader, mu2)[1])(eq.mean_follower)
    np.testing.assert_allclose(grad_f, 0.0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_nash_means_solve_both_partial_first_order_conditions(seed):
    _, pre, *_ = _random_point(seed, k1=2, k2=2)
    eq = sj.pointwise_equilibrium(pre, jnp.array([0.3, 0.2]), concept="nash")
    g1 = jax.grad(lambda a: pre.evaluate(a, eq.mean_follower)[0])(eq.mean_leader)
    g2 = jax.grad(lambda b: pre.evaluate(eq.mean_leader, b)[1])(eq.mean_follower)
    np.testing.assert_allclose(g1, 0.0, atol=1e-12)
    np.testing.assert_allclose(g2, 0.0, atol=1e-12)


@pytest.mark.slow
def test_follower_reaction_to_bimodal_leader_depends_on_mean_only():
    """The follower's Gibbs density against a non-Gaussian leader density, by quadrature on a grid,
    is N(kappa + Lambda E[u1], Sigma_2) (docs/math.md §4.1)."""
    _, pre, *_ = _random_point(1)
    lam2 = 0.2
    eq = sj.pointwise_equilibrium(pre, jnp.array([0.3, lam2]))
    u1 = np.linspace(-8, 8, 4001)
    bimodal = 0.3 * np.exp(-0.5 * ((u1 + 1.5) / 0.4) ** 2) + 0.7 * np.exp(
        -0.5 * ((u1 - 2.0) / 0.7) ** 2
    )
    bimodal /= np.trapezoid(bimodal, u1)
    mean_u1 = np.trapezoid(u1 * bimodal, u1)
    u2 = np.linspace(-10, 10, 4001)
    h2 = jax.vmap(
        jax.vmap(lambda a, b: pre.evaluate(jnp.array([a]), jnp.array([b]))[1], (0, None)), (None, 0)
    )
    g = np.trapezoid(np.asarray(h2(jnp.asarray(u1), jnp.asarray(u2))) * bimodal, u1, axis=1)  # [u2]
    density = np.exp(-(g - g.min()) / lam2)
    density /= np.trapezoid(density, u2)
    m = np.trapezoid(u2 * density, u2)
    v = np.trapezoid((u2 - m) ** 2 * density, u2)
    expected_mean = float(eq.reaction_offset[0] + eq.reaction[0, 0] * mean_u1)
    np.testing.assert_allclose(m, expected_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(v, float(eq.cov_follower[0, 0]), rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_leader_hamiltonian_is_minimum_over_gaussian_policies(seed):
    """H*_1 = min over leader Gaussians (mu1, s1) of its exploratory Hamiltonian against the
    follower's Gibbs reaction; brute force with scipy (d1 = d2 = 1)."""
    _, pre, *_ = _random_point(seed)
    lam = np.array([0.3, 0.2])
    eq = sj.pointwise_equilibrium(pre, jnp.asarray(lam))
    R = {k: np.asarray(v) for k, v in pre.__dict__.items()}
    Rt22_2 = R["R22"][1, 0, 0]
    var2 = lam[1] / (2 * Rt22_2)

    def leader_objective(theta):
        mu1, var1 = theta[0], np.exp(theta[1])
        mu2 = -(R["R12"][1, 0, 0] * mu1 + R["rho2"][1, 0]) / Rt22_2  # follower's reaction
        h1 = (R["R11"][0, 0, 0] * mu1**2 + 2 * R["R12"][0, 0, 0] * mu1 * mu2 + R["R22"][0, 0, 0] * mu2**2
              + 2 * R["rho1"][0, 0] * mu1 + 2 * R["rho2"][0, 0] * mu2 + R["h0"][0])  # fmt: skip
        return (
            h1
            + R["R11"][0, 0, 0] * var1
            + R["R22"][0, 0, 0] * var2
            - 0.5 * lam[0] * np.log(2 * np.pi * np.e * var1)
        )

    best = optimize.minimize(leader_objective, np.array([0.0, -1.0]), method="Nelder-Mead",
                             options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 10000})  # fmt: skip
    np.testing.assert_allclose(best.fun, float(eq.hamiltonian[0]), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(best.x[0], float(eq.mean_leader[0]), atol=1e-5)
    np.testing.assert_allclose(np.exp(best.x[1]), float(eq.cov_leader[0, 0]), rtol=1e-4)


def test_zero_temperature_limit_is_continuous():
    _, pre, *_ = _random_point(2, k1=2, k2=2)
    h0 = sj.pointwise_equilibrium(pre, jnp.array([0.0, 0.0])).hamiltonian
    h_small = sj.pointwise_equilibrium(pre, jnp.array([1e-9, 1e-9])).hamiltonian
    np.testing.assert_allclose(h_small, h0, atol=1e-7)
    eq0 = sj.pointwise_equilibrium(pre, jnp.array([0.0, 0.0]))
    np.testing.assert_array_equal(eq0.cov_leader, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("num_regimes", [1, 3])
def test_vmap_over_regimes_matches_loop(num_regimes):
    game = random_game(jax.random.key(3), d=3, m=num_regimes, controlled_diffusion=True)
    sol = sj.riccati_reference(game, num_times=5)
    t, x = jnp.asarray(0.3), jnp.asarray([0.2, -0.4, 1.0])

    @jax.jit
    def both(sol, t, x):
        _, _, batched = sj.equilibrium_from_values(sol.value, game, t, x)
        grads = jax.jacrev(lambda z: sol.value(t, z))(x)
        hess = jax.hessian(lambda z: sol.value(t, z))(x)
        singles = []
        for i in range(num_regimes):  # an explicit loop over regimes, no vmap
            coef = game.coefficients(x, i)
            pre = sj.pre_hamiltonian(coef, grads[:, i], sj.hessian_products(hess[:, i], coef))
            singles.append(sj.pointwise_equilibrium(pre, game.temperatures))
        return batched, singles

    batched, singles = both(sol, t, x)
    for i, single in enumerate(singles):
        for a, b in zip(
            jax.tree.leaves(single), jax.tree.leaves(jax.tree.map(lambda v: v[i], batched))
        ):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_well_posedness_margins_flag_violations():
    _, pre, *_ = _random_point(0)
    margins = sj.well_posedness_margins(pre, jnp.array([0.3, 0.2]))
    assert bool(jnp.all(margins > 0))
    bad = pre.replace(R22=pre.R22.at[1].set(-pre.R22[1]))
    assert float(sj.well_posedness_margins(bad, jnp.array([0.3, 0.2]))[0]) < 0
    assert bool(jnp.isnan(sj.pointwise_equilibrium(bad, jnp.array([0.3, 0.2])).mean_leader).any())


def _shape_cases():
    game = sj.examples.cross_term_game()
    x = game.x0
    coef = game.coefficients(x, 0)
    d = x.shape[0]
    hp = sj.hessian_products(jnp.zeros((2, d, d)), coef)
    pre = sj.pre_hamiltonian(coef, jnp.zeros((2, d)), hp)
    value = sj.riccati_reference(game, num_times=5).value
    return {
        "hessians": lambda: sj.hessian_products(jnp.zeros((2, d + 1, d)), coef),
        "gradients": lambda: sj.pre_hamiltonian(coef, jnp.zeros((2, d + 1)), hp),
        "temperatures": lambda: sj.pointwise_equilibrium(pre, jnp.ones(3)),
        "temperatures_sign": lambda: sj.pointwise_equilibrium(pre, jnp.array([1.0, -1.0])),
        "generator": lambda: sj.coupled_residual(
            jnp.zeros((2, 2)), jnp.zeros((2, 2)), jnp.zeros((3, 2))
        ),  # fmt: skip
        "own": lambda: sj.coupled_residual(
            jnp.zeros((2, 2)), jnp.zeros((2, 3)), jnp.zeros((2, 2))
        ),  # fmt: skip
        "x": lambda: sj.hjbi_residual(value, game, 0.0, jnp.zeros(d + 1)),
        "t": lambda: sj.hjbi_residual(value, game, jnp.zeros(2), x),
        "x_products": lambda: sj.gradient_and_products(
            lambda z: jnp.stack([z @ z] * 2), jnp.zeros(d + 1), coef
        ),  # fmt: skip
        "weight": lambda: sj.gibbs_quadratic(jnp.eye(2), jnp.zeros(3), 1.0),
        "temperature": lambda: sj.gibbs_quadratic(jnp.eye(2), jnp.zeros(2), -1.0),
    }


_SHAPE_CASES = ["generator", "gradients", "hessians", "own", "t", "temperature", "temperatures",
                "temperatures_sign", "weight", "x", "x_products"]  # fmt: skip


@pytest.mark.parametrize("name", _SHAPE_CASES)
def test_low_level_functions_refuse_bad_shapes_naming_the_argument(name):
    """The pointwise building blocks check their inputs' shapes (and concrete temperatures)
    and name the argument, instead of failing inside an einsum."""
    argument = {"temperatures_sign": "temperatures", "x_products": "x",
                "weight": "linear"}.get(name, name)  # fmt: skip
    with pytest.raises(ValueError, match=f"`{argument}`"):
        _shape_cases()[name]()

"""Normal-form oracles: strong Stackelberg (multiple LPs) and quantal Stackelberg equilibria.

References are independent: hand-solved games, scipy.optimize.linprog, and brute force over a
fine regular grid of the leader's simplex evaluated in numpy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

from stackjax.discrete import (
    project_to_simplex,
    quantal_stackelberg,
    solve_standard_form_lp,
    strong_stackelberg,
)


def numpy_simplex_grid(m, K):
    """Independent grid generator: all points k / K with integer k >= 0 summing to K."""
    axes = np.meshgrid(*[np.arange(K + 1)] * (m - 1), indexing="ij")
    head = np.stack(axes, axis=-1).reshape(-1, m - 1)
    head = head[head.sum(axis=1) <= K]
    return np.concatenate([head, K - head.sum(axis=1, keepdims=True)], axis=1) / K


def brute_force_sse(A, B, K):
    """Max over grid commitments of the leader's value, follower ties broken for the leader."""
    G = numpy_simplex_grid(A.shape[0], K)
    u = G @ B
    best_response = u >= u.max(axis=1, keepdims=True) - 1e-12
    return np.max(np.where(best_response, G @ A, -np.inf))


def brute_force_qse(A, B, tau, K):
    G = numpy_simplex_grid(A.shape[0], K)
    logits = G @ B / tau
    q = np.exp(logits - logits.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    return np.max(np.sum(q * (G @ A), axis=1))


def scipy_sse_value(A, B):
    m, n = A.shape
    best = -np.inf
    for j in range(n):
        res = linprog(
            -A[:, j],
            A_ub=(B - B[:, [j]]).T,
            b_ub=np.zeros(n),
            A_eq=np.ones((1, m)),
            b_eq=[1.0],
            bounds=[(0, None)] * m,
        )
        if res.status == 0:
            best = max(best, -res.fun)
    return best


# --------------------------------------------------------------------------------------------
# Strong Stackelberg
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "A, B, strategy, value, action",
    [
        ([[2, 4], [1, 3]], [[1, 0], [0, 1]], [0.5, 0.5], 3.5, 1),
        ([[2, 0, 0], [1, 0, 0]], [[0, 2, 5], [0, -1, -4]], [1 / 3, 2 / 3], 4 / 3, 0),
        ([[3, 9], [9, 1]], [[0, 0], [1, 8]], [1.0, 0.0], 9.0, 1),  # degenerate: tie for leader
    ],
)
def test_strong_stackelberg_known_games(A, B, strategy, value, action):
    sol = strong_stackelberg(np.asarray(A, float), np.asarray(B, float))
    np.testing.assert_allclose(sol.leader_strategy, strategy, atol=1e-10)
    np.testing.assert_allclose(sol.leader_value, value, atol=1e-10)
    assert int(sol.follower_action) == action
    np.testing.assert_allclose(sol.follower_value, np.asarray(strategy) @ np.asarray(B)[:, action])


@pytest.mark.parametrize("seed", range(6))
def test_strong_stackelberg_random_3x3_vs_grid_and_linprog(seed):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    sol = strong_stackelberg(A, B)
    x, j = np.asarray(sol.leader_strategy), int(sol.follower_action)
    # Certificate of feasibility: x on the simplex and j a best response to x.
    np.testing.assert_allclose(x.sum(), 1.0, atol=1e-12)
    assert x.min() >= -1e-12
    assert (x @ B)[j] >= (x @ B).max() - 1e-9
    np.testing.assert_allclose(sol.leader_value, x @ A[:, j], atol=1e-12)
    # Exact LP reference (scipy HiGHS), tolerance 1e-8.
    np.testing.assert_allclose(sol.leader_value, scipy_sse_value(A, B), atol=1e-8)
    # Brute force: grid commitments can never beat the SSE; a fine grid comes close
    # (tolerance: Lipschitz constant <= 2 max|A| times the grid spacing ~ 2/K, with margin).
    grid = brute_force_sse(A, B, 150)
    assert grid <= float(sol.leader_value) + 1e-9
    assert float(sol.leader_value) - grid <= 4 * np.abs(A).max() * 2 / 150


def test_strong_stackelberg_vmap_batch_matches_single():
    rng = np.random.default_rng(7)
    A, B = rng.normal(size=(16, 4, 5)), rng.normal(size=(16, 4, 5))
    batch = jax.jit(jax.vmap(strong_stackelberg))(A, B)
    assert batch.leader_strategy.shape == (16, 4)
    refs = np.array([scipy_sse_value(a, b) for a, b in zip(A, B, strict=True)])
    np.testing.assert_allclose(batch.leader_value, refs, atol=1e-8)


def test_lp_solver_against_linprog():
    rng = np.random.default_rng(3)
    for _ in range(5):
        M = rng.normal(size=(3, 6))
        z0 = rng.uniform(size=6)
        b = M @ z0  # feasible by construction
        c = -rng.uniform(0.1, 1.0, size=6)  # bounded: minimize a positive cost
        res = solve_standard_form_lp(jnp.asarray(c), jnp.asarray(M), jnp.asarray(b))
        ref = linprog(-c, A_eq=M, b_eq=b, bounds=[(0, None)] * 6)
        assert bool(res.feasible) and ref.status == 0
        np.testing.assert_allclose(res.value, -ref.fun, atol=1e-9)
        np.testing.assert_allclose(M @ np.asarray(res.solution), b, atol=1e-9)
    infeasible = solve_standard_form_lp(jnp.ones(2), jnp.ones((1, 2)), -jnp.ones(1))
    assert not bool(infeasible.feasible)


# --------------------------------------------------------------------------------------------
# Quantal Stackelberg
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("tau", [0.3, 0.05])
def test_quantal_stackelberg_vs_brute_force_grid(seed, tau):
    rng = np.random.default_rng(100 + seed)
    A, B = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    sol = quantal_stackelberg(A, B, tau)
    x = np.asarray(sol.leader_strategy)
    np.testing.assert_allclose(x.sum(), 1.0, atol=1e-12)
    q_ref = np.exp((x @ B) / tau - ((x @ B) / tau).max())
    q_ref /= q_ref.sum()
    np.testing.assert_allclose(sol.follower_response, q_ref, atol=1e-12)
    np.testing.assert_allclose(sol.leader_value, q_ref @ (x @ A), atol=1e-12)
    grid = brute_force_qse(A, B, tau, 300)
    # Never below the fine-grid maximum (up to round-off) ...
    assert float(sol.leader_value) >= grid - 1e-9
    # ... and no more than the grid's Lipschitz slack above it (the grid is a lower bound of
    # the optimum; L <= spread(A) (1/2 + spread(B)/(4 tau)), l1 covering radius 3/(2*300)).
    spread_a, spread_b = np.ptp(A), np.ptp(B)
    slack = spread_a * (0.5 + spread_b / (4 * tau)) * 3 / 600
    assert float(sol.leader_value) <= grid + slack
    # The returned certificate is consistent with the brute-force optimum.
    assert grid - float(sol.leader_value) <= float(sol.optimality_gap_bound) + 1e-12


def test_quantal_stackelberg_two_actions_certificate_is_tight():
    rng = np.random.default_rng(11)
    A, B = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    sol = quantal_stackelberg(A, B, 0.2)
    ref = brute_force_qse(A, B, 0.2, 200_000)
    np.testing.assert_allclose(sol.leader_value, ref, atol=1e-8)
    assert float(sol.optimality_gap_bound) < 0.05 * np.ptp(A)


@pytest.mark.parametrize("seed", range(4))
def test_quantal_stackelberg_zero_temperature_limit(seed):
    rng = np.random.default_rng(200 + seed)
    A, B = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    sse = float(strong_stackelberg(A, B).leader_value)
    errors = [abs(float(quantal_stackelberg(A, B, t).leader_value) - sse) for t in (0.1, 1e-3)]
    assert errors[1] <= errors[0] + 1e-9
    assert errors[1] <= 0.02 * np.ptp(A)


def test_quantal_stackelberg_known_game_limit():
    A, B = np.array([[2.0, 4.0], [1.0, 3.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    values = [float(quantal_stackelberg(A, B, t).leader_value) for t in (0.1, 0.01, 0.001)]
    # Monotone approach to the SSE value 3.5 from below; error O(tau log(1/tau)).
    assert values[0] < values[1] < values[2] < 3.5
    assert 3.5 - values[2] < 0.01


def test_quantal_stackelberg_vmap_and_float32():
    rng = np.random.default_rng(5)
    A, B = rng.normal(size=(8, 3, 4)), rng.normal(size=(8, 3, 4))
    taus = np.linspace(0.1, 0.5, 8)
    batch = jax.jit(jax.vmap(quantal_stackelberg))(A, B, taus)
    for i in (0, 5):
        single = quantal_stackelberg(A[i], B[i], taus[i])
        np.testing.assert_allclose(batch.leader_value[i], single.leader_value, atol=1e-12)
    sol32 = quantal_stackelberg(A[0].astype(np.float32), B[0].astype(np.float32), np.float32(0.1))
    assert sol32.leader_strategy.dtype == jnp.float32
    np.testing.assert_allclose(sol32.leader_value, batch.leader_value[0], atol=1e-4)


def test_project_to_simplex_matches_quadratic_program():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 5)) * 2
    p = np.asarray(project_to_simplex(jnp.asarray(v)))
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    assert p.min() >= 0
    # KKT: p = max(v - theta, 0) with a common theta on the support.
    for vi, pi in zip(v, p, strict=True):
        theta = (vi - pi)[pi > 0]
        np.testing.assert_allclose(theta, theta[0], atol=1e-12)
        assert np.all(vi[pi == 0] <= theta[0] + 1e-12)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error_naming_argument():
    A = np.ones((2, 3))
    with pytest.raises(ValueError, match="follower_payoff"):
        strong_stackelberg(A, np.ones((3, 2)))
    with pytest.raises(ValueError, match="leader_payoff"):
        strong_stackelberg(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="temperature"):
        quantal_stackelberg(A, A, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        quantal_stackelberg(A, A, -1.0)
    with pytest.raises(ValueError, match="leader_payoff"):
        quantal_stackelberg(np.array([[np.nan, 1.0, 0.0], [0.0, 1.0, 2.0]]), A, 0.1)
    with pytest.raises(ValueError, match="follower_payoff"):
        strong_stackelberg(A, np.full((2, 3), np.inf))

"""The non-LQ example with an exact solution (`stackjax.examples.ColeHopfGame`).

Independent checks of the closed-form solution: its HJB residual (autodiff through the library's
pointwise equilibrium, docs/math.md §5.3) vanishes while its Nash residual does not, its closed-form
policy agrees with the one computed from its derivatives, and a Monte Carlo of the equilibrium
play reproduces it. Then the neural solver is compared with it (d = 2, float32 training).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax as sj
from stackjax.examples import ColeHopfGame, make_cole_hopf_game


def _points(game, num, seed=0):
    key = jax.random.key(seed)
    t = jax.random.uniform(key, (num,)) * game.T
    x = game.x0[None, :] + jax.random.normal(jax.random.fold_in(key, 1), (num, game.state_dim))
    return t, x


# d = 3 (unequal blocks d_a = 2, d_b = 1) and m = 3 regimes; d = 2, m = 2 is used below.
@pytest.mark.slow
@pytest.mark.parametrize("d, Gamma", [(3, [[-1.0, 0.5, 0.5], [0.2, -0.4, 0.2], [1.0, 1.0, -2.0]])])
def test_exact_value_solves_the_hjb_system_and_differs_from_nash(d, Gamma):
    m = len(Gamma)
    game = make_cole_hopf_game(
        d, Gamma=Gamma, leader_scale=np.linspace(1.0, 1.5, m),
        follower_scale=np.linspace(1.0, 0.8, m), offsets=np.linspace(0.0, 0.5, 2 * m).reshape(2, m),
    )  # fmt: skip
    assert isinstance(game, sj.ControlQuadraticGame)
    t, x = _points(game, 32)

    residual = jax.jit(jax.vmap(lambda ti, xi: sj.hjbi_residual(game.exact_value, game, ti, xi)))(
        t, x
    )
    scale = jnp.abs(jax.jit(jax.vmap(jax.jacfwd(game.exact_value)))(t, x)).max()  # |dV/dt| = O(1)
    assert float(scale) > 0.5
    assert float(jnp.abs(residual).max()) < 1e-11 * float(scale)  # round-off level (float64)
    # Stackelberg != Nash: a Nash leader ignores the reaction (drift gain b_a instead of
    # b_a + gamma b_r, cost rho_L instead of rho_L + gamma^2 q_r), so at the same value its mean
    # is smaller by the factor below, and the exact value does not solve the Nash system.
    nash = jax.jit(jax.vmap(lambda ti, xi: sj.policy_from_values(
        game.exact_value, game, ti, xi, concept="nash")))(t, x)  # fmt: skip
    stackelberg = jax.jit(jax.vmap(game.exact_policy))(t, x)
    factor = (game.b_a / game.rho_L) / (
        (game.b_a + game.gamma * game.b_r) / (game.rho_L + game.gamma**2 * game.q_r)
    )
    np.testing.assert_allclose(nash.mean_leader, factor * stackelberg.mean_leader, rtol=1e-10,
                               atol=1e-14)  # fmt: skip
    assert abs(float(factor) - 1.0) > 0.2
    nash_residual = jax.jit(
        jax.vmap(lambda ti, xi: sj.hjbi_residual(game.exact_value, game, ti, xi, concept="nash"))
    )(t, x)
    assert float(jnp.abs(nash_residual).max()) > 1e-6 * float(scale)
    terminal = jax.jit(jax.vmap(lambda xi: sj.terminal_residual(game.exact_value, game, xi)))(x)
    assert float(jnp.abs(terminal).max()) < 1e-12
    # The values are not quadratic in x: second differences along a line vary.
    line = game.x0[None, :] + jnp.linspace(-2.0, 2.0, 9)[:, None] * jnp.ones((1, d)) / np.sqrt(d)
    v = jax.jit(jax.vmap(lambda xi: game.exact_value(0.5, xi)))(line)[:, 0, 0]
    second = np.diff(np.asarray(v), 2)
    assert np.ptp(second) > 1e-2 * np.abs(second).max()


@pytest.mark.slow
def test_closed_form_policy_equals_pointwise_equilibrium_of_the_value():
    game = make_cole_hopf_game(4)
    t, x = _points(game, 16, seed=1)
    closed = jax.jit(jax.vmap(game.exact_policy))(t, x)
    derived = jax.jit(
        jax.vmap(lambda ti, xi: sj.policy_from_values(game.exact_value, game, ti, xi))
    )(t, x)
    for a, b in zip(jax.tree.leaves(closed), jax.tree.leaves(derived)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # Regimes change the control units: the leader's mean scales like 1 / s_i.
    ratio = closed.mean_leader[:, 1] / closed.mean_leader[:, 0]
    np.testing.assert_allclose(ratio, 1.0 / 1.5, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("regime0", [1])
def test_monte_carlo_of_equilibrium_play_matches_exact_value(regime0):
    game = make_cole_hopf_game(2)
    mean, stderr = jax.jit(
        lambda key: sj.monte_carlo_cost(
            game, game.exact_policy, key, regime0=regime0, num_paths=8000, num_steps=50
        )
    )(jax.random.key(regime0))
    exact = game.exact_value(0.0, game.x0)[:, regime0]
    # Euler's O(dt) bias at 50 steps is below 1 standard error here (checked at 200 steps).
    np.testing.assert_array_less(np.abs(np.asarray(mean - exact)), 4 * np.asarray(stderr))
    assert np.all(np.asarray(stderr) < 1e-2 * np.abs(np.asarray(exact)))


def test_invalid_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="`d` must be an integer >= 2"):
        make_cole_hopf_game(1)
    with pytest.raises(ValueError, match="`leader_scale` must have shape"):
        make_cole_hopf_game(2, leader_scale=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="`sigma` must be > 0"):
        make_cole_hopf_game(2, sigma=0.0)
    with pytest.raises(ValueError, match="`Gamma` has a negative off-diagonal rate"):
        make_cole_hopf_game(2, Gamma=[[1.0, -1.0], [1.0, -1.0]])


def test_registered_example():
    game = sj.examples.make_example("cole-hopf")
    assert isinstance(game, ColeHopfGame)
    assert (game.state_dim, game.num_regimes, game.leader_dim, game.follower_dim) == (10, 2, 5, 10)
    assert "cole-hopf" in sj.examples.NON_LQ_EXAMPLES  # no Riccati reference


@pytest.mark.slow
@pytest.mark.long_loops
def test_neural_solver_matches_exact_solution():
    game = make_cole_hopf_game(2)
    # 2000 Adam steps without Gauss-Newton: measured side by side, 2.4x less wall time than
    # 1000 Adam + 4 Gauss-Newton steps (whose compilation dominates) at the same accuracy.
    config = sj.SolverConfig(
        adam=sj.AdamConfig(steps=2000, batch_size=256),
        gauss_newton=sj.GaussNewtonConfig(steps=0),
        layout=sj.LayoutConfig(dtype="float32"),
    )
    exact = game.exact_solution()
    solution = sj.solve(
        game, jax.random.key(0), config, chunk_size=1000, verbose=False, diagnostic_points=0,
        reference_every=1, reference=exact,
    )  # fmt: skip
    assert not solution.diverged
    assert solution.controlled is False  # detected from the game's static flag
    err = sj.evaluate(solution, exact, jax.random.key(1), num_points=2048)
    assert np.all(np.asarray(err["value"]) <= 2e-2), err["value"]
    # The checks against the given exact solution, after each of the two chunks: the last one
    # (1024 points) agrees with the 2048-point evaluation above within sampling error.
    history = solution.history
    assert list(np.asarray(history["error_step"])) == [1000, 2000]
    np.testing.assert_allclose(history["value_error"][-1], err["value"], rtol=0.3)
    v0, v0_ref = solution.value(0.0, game.x0), game.exact_value(0.0, game.x0)
    # Measured: 1.5e-2 (value), 2.0e-2 pointwise at (0, x0) relative to the smallest |V| = 0.66.
    assert np.all(np.abs(np.asarray(v0 - v0_ref)) <= 2e-2 * np.abs(np.asarray(v0_ref)).max())

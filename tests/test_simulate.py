"""Monte Carlo simulator against the Riccati values and the chain's transition matrix (docs/math.md §9.5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

import stackjax as sj
from stackjax.examples import controlled_diffusion_game, cross_term_game, scalar_game, zero_sum_game

# (game, scheme, regime0): both schemes, both starting regimes, controlled diffusion, zero sum.
_CASES = {
    "scalar-sampled": (scalar_game, "sampled", 0),
    "cross-term-averaged": (cross_term_game, "averaged", 1),
    "controlled-diffusion-sampled": (controlled_diffusion_game, "sampled", 0),
    "zero-sum-averaged": (zero_sum_game, "averaged", 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_CASES))
def test_monte_carlo_cost_of_equilibrium_play_matches_value(name):
    """|J_MC - V_{k,i0}(0, x0)| <= 4 standard errors for both players (Euler bias at dt = 1/200 is
    well below the statistical error at these path counts)."""
    make, scheme, regime0 = _CASES[name]
    game = make()
    sol = sj.riccati_reference(game, num_times=41)
    mean, stderr = jax.jit(
        lambda k: sj.monte_carlo_cost(
            game, sol.policy, k, regime0=regime0, num_paths=20_000, num_steps=200, scheme=scheme
        )
    )(jax.random.key(42))
    value = sol.value(0.0, game.x0)[:, regime0]
    z = np.abs(np.asarray(mean - value)) / np.asarray(stderr)
    assert np.all(z < 4.0), (name, mean, value, stderr, z)
    assert np.all(np.asarray(stderr) < 0.02 * np.abs(np.asarray(value)) + 0.02)  # informative test


@pytest.mark.slow
def test_regime_chain_matches_transition_matrix():
    """Empirical law of alpha_T against expm(Gamma T)[i0] (exponential clocks, split steps)."""
    game = scalar_game()
    sol = sj.riccati_reference(game, num_times=5)
    traj = jax.jit(
        lambda k: sj.simulate(game, sol.policy, k, regime0=0, num_paths=40_000, num_steps=20)
    )(jax.random.key(3))
    final = np.asarray(traj.regimes[:, -1])
    empirical = np.bincount(final, minlength=2) / final.size
    exact = expm(np.asarray(game.Gamma) * float(game.T))[0]
    se = np.sqrt(exact * (1 - exact) / final.size)
    assert np.all(np.abs(empirical - exact) < 4 * se), (empirical, exact)
    # Intermediate time as well (t = T / 2 is step 10 of 20).
    mid = np.asarray(traj.regimes[:, 10])
    exact_mid = expm(np.asarray(game.Gamma) * float(game.T) / 2)[0]
    emp_mid = np.bincount(mid, minlength=2) / mid.size
    assert np.all(np.abs(emp_mid - exact_mid) < 4 * np.sqrt(exact_mid * (1 - exact_mid) / mid.size))


@pytest.mark.slow
def test_simulate_shapes_and_reproducibility():
    game = cross_term_game()
    sol = sj.riccati_reference(game, num_times=5)
    run = jax.jit(lambda k: sj.simulate(game, sol.policy, k, num_paths=7, num_steps=11))
    a, b = run(jax.random.key(0)), run(jax.random.key(0))
    assert a.states.shape == (7, 12, 2) and a.regimes.shape == (7, 12) and a.costs.shape == (7, 2)
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_allclose(a.states[:, 0], jnp.broadcast_to(game.x0, (7, 2)))
    c = run(jax.random.key(1))
    assert not np.allclose(a.states[:, -1], c.states[:, -1])


def test_simulate_rejects_bad_arguments():
    game = scalar_game()
    sol = sj.riccati_reference(game, num_times=5)
    with pytest.raises(ValueError, match="scheme"):
        sj.simulate(game, sol.policy, jax.random.key(0), scheme="milstein")
    with pytest.raises(ValueError, match="x0"):
        sj.simulate(game, sol.policy, jax.random.key(0), x0=jnp.zeros(3))
    with pytest.raises(ValueError, match="regime0"):
        sj.simulate(game, sol.policy, jax.random.key(0), regime0=5)


@pytest.mark.slow
def test_evaluate_reports_errors_against_reference():
    """Stackelberg vs Nash in the cross-term game: `evaluate`'s relative L2 value error equals a
    direct numpy computation on the same points; a solution against itself has zero error."""
    game = cross_term_game()
    st = sj.riccati_reference(game, num_times=11)
    na = sj.riccati_reference(game, concept="nash", num_times=11)
    key = jax.random.key(9)
    same = sj.evaluate(st, st, key, num_points=64)
    np.testing.assert_allclose(same["value"], 0.0, atol=1e-15)
    errors = sj.evaluate(na, st, key, num_points=64)
    t, x = sj._evaluate.sample_evaluation_points(game, key, 64)
    v_na = np.asarray(jax.vmap(na.value)(t, x))
    v_st = np.asarray(jax.vmap(st.value)(t, x))
    direct = np.sqrt(((v_na - v_st) ** 2).sum(0) / (v_st**2).sum(0))
    np.testing.assert_allclose(errors["value"], direct, rtol=1e-12)
    assert float(errors["mean_leader"].min()) > 1e-3

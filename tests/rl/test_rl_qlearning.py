"""Stackelberg q-learning against the exact Riccati equilibrium (the learner only sees an
environment); independent learners against the Nash equilibrium; determinism, vmap, compile
once, configuration errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax as sj
from stackjax import rl
from stackjax.examples import cross_term_game, scalar_game

from .._loops import long_loops
from ._user_env import user_env


def _cross_term_runs():
    """Stackelberg and independent (Nash) learners on the cross-term game, 3 rounds of 1500
    episodes at dt = 0.01 (small CI budget; benchmarks/rl.py reports larger budgets)."""
    game = cross_term_game()
    env = rl.sde_env(game, 0.01)
    out = {}
    for concept in ("stackelberg", "nash"):
        config = rl.Config(num_iterations=3, num_episodes=1500, concept=concept)
        with long_loops():
            out[concept] = rl.learn(env, jax.random.key(0), config, verbose=False)
    refs = {c: sj.riccati_reference(game, num_times=41, concept=c) for c in out}
    return out, refs


def _check_learned_q_coefficients_match_exact_pre_hamiltonian(cross_term_runs):
    """The last round's q-functions (of a policy pair already near equilibrium) against
    pre_hamiltonian at the Riccati value (y = 2(P x + p), M = 2P): quadratic blocks within 0.05
    (the Euler environment adds dt B^T P B = O(1e-2) to them), linear terms within 10% of their
    largest entry (statistical error of the fitted value gradient)."""
    runs, refs = cross_term_runs
    game, ref, result = cross_term_game(), refs["stackelberg"], runs["stackelberg"]
    for t, x in ((0.2, game.x0), (0.6, jnp.array([0.0, -0.5]))):
        P, p, _ = ref.coefficients(t)
        for i in range(2):
            learned = result.pre_hamiltonian(t, x, i)
            coef = game.coefficients(x, i)
            y = 2.0 * (jnp.einsum("kde,e->kd", P[:, i], x) + p[:, i])
            exact = sj.pre_hamiltonian(coef, y, sj.hessian_products(2.0 * P[:, i], coef))
            for name in ("R11", "R12", "R22"):
                np.testing.assert_allclose(
                    getattr(learned, name), getattr(exact, name), atol=0.05, err_msg=name
                )
            rho = np.concatenate([np.ravel(exact.rho1), np.ravel(exact.rho2)])
            got = np.concatenate([np.ravel(learned.rho1), np.ravel(learned.rho2)])
            assert np.max(np.abs(got - rho)) < 0.1 * np.max(np.abs(rho)), (t, i, got, rho)


def _check_stackelberg_learner_converges_to_riccati_equilibrium(cross_term_runs):
    """Relative L2 errors of the policy means (x ~ N(x0, I), t ~ U[0, T], both regimes) <= 0.1
    and of V_{k,i}(0, x0) <= 0.06 (measured 0.03-0.05 and 0.01-0.03 at this budget: the
    statistical floor of one round of 1500 episodes); the Nash equilibrium is > 1 away."""
    runs, refs = cross_term_runs
    ev = sj.evaluate(runs["stackelberg"], refs["stackelberg"], jax.random.key(1), num_points=512)
    assert np.all(np.asarray(ev["mean_leader"]) < 0.1), ev["mean_leader"]
    assert np.all(np.asarray(ev["mean_follower"]) < 0.1), ev["mean_follower"]
    assert np.all(np.asarray(ev["value_at_x0"]) < 0.06), ev["value_at_x0"]
    gap = sj.evaluate(refs["nash"], refs["stackelberg"], jax.random.key(1), num_points=512)
    assert np.all(np.asarray(gap["mean_leader"]) > 1.0)


def _check_independent_learners_find_nash_not_stackelberg(cross_term_runs):
    runs, refs = cross_term_runs
    to_nash = sj.evaluate(runs["nash"], refs["nash"], jax.random.key(1), num_points=512)
    to_stack = sj.evaluate(runs["nash"], refs["stackelberg"], jax.random.key(1), num_points=512)
    assert np.all(np.asarray(to_nash["mean_leader"]) < 0.1), to_nash["mean_leader"]
    assert np.all(np.asarray(to_nash["mean_follower"]) < 0.1), to_nash["mean_follower"]
    assert np.all(np.asarray(to_stack["mean_leader"]) > 0.8)


def _check_result_plugs_into_monte_carlo_cost(cross_term_runs):
    """The learned Stackelberg policy played in the true model costs the leader within 5% of
    the equilibrium value (4 standard errors of Monte Carlo on top)."""
    runs, refs = cross_term_runs
    game = cross_term_game()
    mean, se = sj.monte_carlo_cost(
        game, runs["stackelberg"].policy, jax.random.key(3), num_paths=4000, num_steps=50
    )
    value = refs["stackelberg"].value(0.0, game.x0)[:, 0]
    assert abs(float(mean[0] - value[0])) < 0.05 * abs(float(value[0])) + 4 * float(se[0])


@pytest.mark.slow
def test_cross_term_learners_against_riccati():
    """One test (not four sharing a fixture): under pytest-xdist a shared fixture is trained
    once per worker, and these two trainings are the file's main cost."""
    runs = _cross_term_runs()
    _check_learned_q_coefficients_match_exact_pre_hamiltonian(runs)
    _check_stackelberg_learner_converges_to_riccati_equilibrium(runs)
    _check_independent_learners_find_nash_not_stackelberg(runs)
    _check_result_plugs_into_monte_carlo_cost(runs)


@pytest.mark.slow
def test_same_key_same_result_vmap_matches_loop_and_compiles_once():
    env = user_env()._replace(dt=0.05)
    config = rl.Config(num_iterations=2, num_episodes=64, value_basis=3, q_basis=2)
    train = rl.make_train(env, config)
    keys = jax.random.split(jax.random.key(5), 2)
    batched = jax.jit(jax.vmap(train))(keys)
    once = jax.jit(chex.assert_max_traces(train, n=1))
    first = once(keys[0])
    again = once(keys[0])
    second = once(keys[1])
    chex.assert_trees_all_equal(first, again)
    for j, single in enumerate((first, second)):
        # float64 round-off: the batched and single programs order reductions differently.
        chex.assert_trees_all_close(
            jax.tree.map(lambda a: a[j], batched), single, rtol=1e-7, atol=1e-9
        )
    assert batched[1]["q_params"].shape[:2] == (2, 2)  # [seeds, num_iterations, ...]


@pytest.mark.slow
def test_learn_reuses_its_program_across_games_of_one_structure():
    """`sde_env` environments of games with other coefficients and temperatures (same shapes)
    share `learn`'s compiled program, and its result equals `make_train`'s own program."""
    from stackjax.rl._qlearning import _train_program

    config = rl.Config(num_iterations=2, num_episodes=48, value_basis=3, q_basis=2)
    first = rl.sde_env(cross_term_game(), 0.05)
    other = rl.sde_env(cross_term_game(lam=(0.0, 0.2)), 0.05)
    rl.learn(first, jax.random.key(0), config, verbose=False)
    compiled = _train_program._cache_size()
    result = rl.learn(other, jax.random.key(0), config, verbose=False)
    assert _train_program._cache_size() == compiled
    state, _ = jax.jit(rl.make_train(other, config))(jax.random.key(0))
    np.testing.assert_allclose(result.q_params, state.q_params, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(result.temperatures, [0.0, 0.2])


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="Config.num_episodes must be >= 1"):
        rl.Config(num_episodes=0)
    with pytest.raises(ValueError, match="Config.concept must be one of"):
        rl.Config(concept="cournot")
    with pytest.raises(ValueError, match="Config.exploration must be finite and >= 0"):
        rl.Config(exploration=-1.0)
    with pytest.raises(ValueError, match="temperature_decay"):
        rl.Config(temperature_decay=0.0)
    with pytest.raises(TypeError, match="stackjax.rl.Config"):
        rl.make_train(rl.sde_env(scalar_game(), 0.1), {"num_episodes": 3})

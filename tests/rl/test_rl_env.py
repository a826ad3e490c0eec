"""sde_env against closed-form one-step moments and the chain's transition matrix; validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

from stackjax import rl
from stackjax.examples import scalar_game

from ._user_env import user_env


def test_sde_env_one_step_moments_and_costs():
    """From (x, regime 0) with no jump in the step: E x' = x + (a x + u1 + 0.5 u2 + b) h,
    Var x' = (s + 0.2 x)^2 h (scalar_game's raw numbers), costs f_k(x, u) h exactly."""
    game = scalar_game()
    env = rl.sde_env(game, 0.02)
    x, u1, u2, h = 0.7, 0.3, -0.4, 0.02
    state = rl.SDEState(
        step_index=jnp.zeros((), jnp.int32), x=jnp.array([x]), regime=jnp.zeros((), jnp.int32),
        clock=jnp.array(np.inf),
    )  # fmt: skip
    keys = jax.random.split(jax.random.key(1), 20_000)
    _, obs, costs, done = jax.jit(
        jax.vmap(lambda k: env.step(k, state, jnp.array([u1]), jnp.array([u2])))
    )(keys)
    xs = np.asarray(obs.state[:, 0])
    mean = x + (-0.3 * x + u1 + 0.5 * u2 + 0.1) * h
    var = (0.3 + 0.2 * x) ** 2 * h
    se = np.sqrt(var / xs.size)
    assert abs(xs.mean() - mean) < 4 * se
    assert abs(xs.var() - var) < 4 * var * np.sqrt(2 / xs.size)
    leader = x**2 + u1**2 + 0.5 * u2**2 + 2 * 0.1 * x
    follower = 0.5 * x**2 + 0.2 * u1**2 + 2 * 0.3 * u1 * u2 + u2**2 + 2 * (-0.2) * x + 2 * 0.1 * u2
    np.testing.assert_allclose(np.asarray(costs[0]), [leader * h, follower * h], rtol=1e-12)
    assert not bool(done[0]) and float(obs.time[0]) == pytest.approx(h)


@pytest.mark.slow
def test_sde_env_regime_law_and_terminal_cost():
    """Law of the regime at T under zero actions against expm(Gamma T); the last step is done."""
    game = scalar_game()
    env = rl.sde_env(game, 0.1, initial_regime=0)

    def act(k, n, obs):
        return jnp.zeros(1), jnp.zeros(1)

    batch = jax.jit(lambda k: rl.rollout(env, act, k, 10_000))(jax.random.key(2))
    final = np.asarray(batch.regimes[:, -1])
    empirical = np.bincount(final, minlength=2) / final.size
    exact = expm(np.asarray(game.Gamma) * 1.0)[0]
    se = np.sqrt(exact * (1 - exact) / final.size)
    assert np.all(np.abs(empirical - exact) < 4 * se)
    assert bool(batch.done[:, -1].all()) and not bool(batch.done[:, :-1].any())
    # Terminal cost psi_k(X_T) = G_k X_T^2 (G = 1, 0.5; no linear terminal terms) is in the
    # last step's costs on top of the running cost f_k(X_{N-1}, 0) h.
    x_prev, x_T = np.asarray(batch.states[:, -2, 0]), np.asarray(batch.states[:, -1, 0])
    i_prev = np.asarray(batch.regimes[:, -2])
    no_jump = i_prev == final
    q_leader = np.where(i_prev == 0, 1.0, 2.0)
    expected = (q_leader * x_prev**2 + 0.2 * x_prev) * 0.1 + x_T**2
    np.testing.assert_allclose(
        np.asarray(batch.costs[no_jump, -1, 0]), expected[no_jump], rtol=1e-10
    )


def test_bad_input_names_the_field():
    game = scalar_game()
    with pytest.raises(ValueError, match="`dt` must be a finite float > 0"):
        rl.sde_env(game, 0.0)
    with pytest.raises(ValueError, match="`dt` must be a finite float > 0"):
        rl.sde_env(game, -0.1)
    with pytest.raises(ValueError, match="integer number of steps"):
        rl.sde_env(game, 0.3)
    with pytest.raises(ValueError, match="initial_regime"):
        rl.sde_env(game, 0.1, initial_regime=5)
    with pytest.raises(ValueError, match=r"`env.dt` must be > 0"):
        rl.check_environment(user_env()._replace(dt=-0.01))
    with pytest.raises(ValueError, match="leader_dim"):
        rl.check_environment(user_env(leader_dim=0))
    with pytest.raises(ValueError, match="temperatures"):
        rl.check_environment(user_env(temperatures=(0.1, -1.0)))
    with pytest.raises(TypeError, match="stackjax.rl.Environment"):
        rl.check_environment(object())


def test_user_environment_with_wrong_shapes_or_nan_costs_is_rejected():
    env = user_env()
    bad_state = env._replace(state_dim=2)
    with pytest.raises(ValueError, match=r"`obs.state` returned by env.reset must have shape"):
        rl.check_environment(bad_state)

    def nan_step(key, state, u1, u2):
        state, obs, costs, done = env.step(key, state, u1, u2)
        return state, obs, costs * jnp.nan, done

    with pytest.raises(ValueError, match="`costs` returned by env.step are not finite"):
        rl.check_environment(env._replace(step=nan_step))

    def wrong_costs(key, state, u1, u2):
        state, obs, costs, done = env.step(key, state, u1, u2)
        return state, obs, costs[:1], done

    with pytest.raises(ValueError, match=r"`costs` returned by env.step must have shape \[2\]"):
        rl.check_environment(env._replace(step=wrong_costs))

    def strict_step(key, state, u1, u2):  # a user simulator that needs 2 leader controls
        if u1.shape != (2,):
            raise ValueError(f"expected a leader action of shape (2,), got {u1.shape}")
        return env.step(key, state, u1, u2)

    with pytest.raises(ValueError, match="leader_dim = 1"):
        rl.check_environment(env._replace(step=strict_step))

"""The shared environment type: the Markov game adapter and the auto-reset wrapper."""

import jax
import jax.numpy as jnp
import numpy as np

from stackjax.discrete import auto_reset, markov_environment, random_markov_game


def test_markov_environment_follows_the_kernel():
    game = random_markov_game(
        jax.random.key(0), num_states=3, num_leader_actions=2, num_follower_actions=2, horizon=3
    )
    env = markov_environment(game)
    assert env.num_agents == 2 and env.num_actions == (2, 2) and env.num_observations == 3
    state, obs = env.reset(jax.random.key(1), env.params)
    actions = jnp.asarray([1, 0])
    keys = jax.random.split(jax.random.key(2), 4000)
    nxt = jax.vmap(lambda k: env.step(k, state, actions, env.params)[1])(keys)
    freq = np.bincount(np.asarray(nxt), minlength=3) / keys.shape[0]
    p = np.asarray(game.transition[int(obs), 1, 0])
    se = np.sqrt(p * (1 - p) / keys.shape[0])
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-12)
    _, _, rewards, done, _ = env.step(keys[0], state, actions, env.params)
    np.testing.assert_allclose(
        rewards, [game.leader_reward[obs, 1, 0], game.follower_reward[obs, 1, 0]]
    )
    assert not bool(done)


def test_auto_reset_starts_a_new_episode():
    game = random_markov_game(
        jax.random.key(0), num_states=3, num_leader_actions=2, num_follower_actions=2, horizon=2
    )
    env = auto_reset(markov_environment(game))
    state, _ = env.reset(jax.random.key(1), env.params)
    dones = []
    for i in range(6):
        state, obs, _, done, _ = env.step(
            jax.random.key(10 + i), state, jnp.asarray([0, 1]), env.params
        )
        dones.append(bool(done))
        assert int(state.step) == (0 if done else 1)
    assert dones == [False, True] * 3

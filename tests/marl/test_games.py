"""Matrix-game environments against the reference implementation's definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax.marl import (
    GAME_NAMES,
    battle_of_the_sexes,
    iterated_matrix_game,
    matrix_game,
    random_matrix_game,
)

# Transcribed from stackerlberg/envs/matrix_game.py (named_matrix_games) of the
# oracles_and_followers repository: matrix[a_leader][a_follower] = [r_leader, r_follower].
REFERENCE_PAYOFFS = {
    "prisoners_dilemma": [[[3, 3], [1, 4]], [[4, 1], [2, 2]]],
    "stag_hunt": [[[4, 4], [1, 3]], [[3, 1], [2, 2]]],
    "assurance": [[[4, 4], [1, 2]], [[2, 1], [3, 3]]],
    "coordination": [[[4, 4], [2, 1]], [[1, 2], [3, 3]]],
    "mixedharmony": [[[4, 4], [3, 1]], [[1, 3], [2, 2]]],
    "harmony": [[[4, 4], [3, 2]], [[2, 3], [1, 1]]],
    "noconflict": [[[4, 4], [2, 3]], [[3, 2], [1, 1]]],
    "deadlock": [[[2, 2], [1, 4]], [[4, 1], [3, 3]]],
    "prisoners_delight": [[[1, 1], [2, 4]], [[4, 2], [3, 3]]],
    "hero": [[[1, 1], [3, 4]], [[4, 3], [2, 2]]],
    "battle": [[[2, 2], [3, 4]], [[4, 3], [1, 1]]],
    "chicken": [[[3, 3], [2, 4]], [[4, 2], [1, 1]]],
}
# Same file, MatrixGameEnv.step: full memory observes 1 + a0 + 2 a1, small memory the other
# agent's action plus one; observation 0 on reset. Battle of the Sexes from
# stackerlberg/train/experiments/configurations.py ("bots_pg_tabularq").
BOTS = [[[2, 1], [0, 0]], [[0, 0], [1, 2]]]


def reference_episode(matrix, actions, memory, small_memory, offset):
    """Plain-Python port of the reference environment's reset/step loop."""
    obs = [(0, 0)]
    rewards = []
    for a0, a1 in actions:
        rewards.append((matrix[a0][a1][0] + offset, matrix[a0][a1][1] + offset))
        if not memory:
            obs.append((0, 0))
        elif not small_memory:
            obs.append((1 + a0 + 2 * a1,) * 2)
        else:
            obs.append((1 + a1, 1 + a0))
    return np.array(obs), np.array(rewards)


def run_episode(env, actions):
    state, obs = env.reset(jax.random.key(0), env.params)
    observations, rewards, dones = [np.asarray(obs)], [], []
    for a in actions:
        state, obs, r, done, _ = env.step(jax.random.key(1), state, jnp.asarray(a), env.params)
        observations.append(np.asarray(obs))
        rewards.append(np.asarray(r))
        dones.append(bool(done))
    return np.array(observations), np.array(rewards), dones


def test_names_and_payoffs_match_reference():
    assert len(GAME_NAMES) == 12
    for ref_name, matrix in REFERENCE_PAYOFFS.items():
        env = iterated_matrix_game(ref_name)
        np.testing.assert_array_equal(np.asarray(env.params.payoffs), np.asarray(matrix, float))
        snake = {"mixedharmony": "mixed_harmony", "noconflict": "no_conflict"}.get(
            ref_name, ref_name
        )
        assert snake in GAME_NAMES
        np.testing.assert_array_equal(
            np.asarray(iterated_matrix_game(snake).params.payoffs), np.asarray(matrix, float)
        )


@pytest.mark.parametrize(
    "memory,small_memory,length", [(True, False, 10), (True, True, 5), (False, False, 3)]
)
def test_dynamics_match_reference(memory, small_memory, length):
    rng = np.random.default_rng(0)
    for name, matrix in REFERENCE_PAYOFFS.items():
        env = iterated_matrix_game(
            name, episode_length=length, memory=memory, small_memory=small_memory
        )
        actions = rng.integers(0, 2, size=(length, 2))
        ref_obs, ref_rewards = reference_episode(matrix, actions, memory, small_memory, -2.5)
        obs, rewards, dones = run_episode(env, actions)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_allclose(rewards, ref_rewards, rtol=0, atol=1e-12)
        assert dones == [False] * (length - 1) + [True]
        assert env.num_observations == (5 if memory and not small_memory else 3 if memory else 1)
        assert env.horizon == length


def test_battle_of_the_sexes_one_shot():
    env = battle_of_the_sexes()
    for a0 in range(2):
        for a1 in range(2):
            obs, rewards, dones = run_episode(env, [(a0, a1)])
            np.testing.assert_array_equal(rewards[0], BOTS[a0][a1])
            np.testing.assert_array_equal(obs, [[0, 0], [0, 0]])
            assert dones == [True]


def test_random_game_shapes_and_vmap(key):
    env = random_matrix_game(key, 3, 4, episode_length=2, memory=True)
    assert env.num_actions == (3, 4) and env.num_observations == 13
    _, obs, r, _, _ = env.step(key, env.reset(key, env.params)[0], jnp.array([2, 3]), env.params)
    assert int(obs[0]) == 1 + 2 + 3 * 3
    np.testing.assert_allclose(r, env.params.payoffs[2, 3], rtol=0, atol=1e-12)
    # One compiled step over a batch of games.
    games = jax.vmap(lambda k: random_matrix_game(k, 3, 4).params)(jax.random.split(key, 5))
    step = jax.vmap(lambda p: env.step(key, env.reset(key, p)[0], jnp.array([1, 2]), p)[2])
    np.testing.assert_allclose(step(games), games.payoffs[:, 1, 2], rtol=0, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="payoffs"):
        matrix_game(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="payoffs"):
        matrix_game(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="payoffs"):
        matrix_game(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="name"):
        iterated_matrix_game("rock_paper")
    with pytest.raises(ValueError, match="episode_length"):
        iterated_matrix_game("hero", episode_length=0)
    with pytest.raises(TypeError, match="episode_length"):
        iterated_matrix_game("hero", episode_length=2.5)
    with pytest.raises(ValueError, match="small_memory"):
        matrix_game(np.zeros((2, 2, 2)), small_memory=True)
    with pytest.raises(ValueError, match="reward_offset"):
        matrix_game(np.zeros((2, 2, 2)), reward_offset=np.inf)

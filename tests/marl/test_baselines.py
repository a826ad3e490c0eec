"""Inner-loop Q-learning environment against a NumPy port of the reference's Q-learning loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax.marl import BaselineConfig, iterated_matrix_game, make_train_independent, matrix_game
from stackjax.marl._meta import inner_loop_environment


def reference_q_learning(payoffs, offset, horizon, leader, q, n_episodes, alpha, gamma):
    """The reference wrapper's loop (stackerlberg/wrappers/tabularq_wrapper.py), epsilon = 0:
    greedy follower, Q[o, b] += alpha (r + gamma max Q[o'] - Q[o, b]), no bootstrap at the end."""
    q = q.copy()
    for _ in range(n_episodes):
        obs = 0
        for t in range(horizon):
            a, b = leader[obs], int(np.argmax(q[obs]))
            r = payoffs[a, b, 1] + offset
            nxt = 1 + a + 2 * b
            target = r if t == horizon - 1 else r + gamma * q[nxt].max()
            q[obs, b] += alpha * (target - q[obs, b])
            obs = nxt
    obs, leader_return, follower_return = 0, 0.0, 0.0
    for _ in range(horizon):
        a, b = leader[obs], int(np.argmax(q[obs]))
        leader_return += payoffs[a, b, 0] + offset
        follower_return += payoffs[a, b, 1] + offset
        obs = 1 + a + 2 * b
    return q, leader_return, follower_return


@pytest.mark.parametrize("name", ["prisoners_dilemma", "chicken"])
def test_inner_loop_matches_reference_q_learning(name):
    env = iterated_matrix_game(name, episode_length=4)
    n_q = 6
    menv = inner_loop_environment(
        env,
        num_q_episodes=n_q,
        epsilon=0.0,
        alpha=0.5,
        gamma=0.9,
        tell_leader=True,
        hidden_queries=True,
    )
    assert menv.horizon == (n_q + 1) * 4 and menv.num_observations == 10
    leader = np.array([1, 0, 0, 1, 1])
    step = jax.jit(menv.step)
    state, obs = menv.reset(jax.random.key(3), menv.params)
    q0 = np.asarray(state.q)
    total, follower, hidden = 0.0, 0.0, []
    for t in range(menv.horizon):
        o = int(obs[0])
        assert (o >= 5) == (t < n_q * 4)  # the leader is told about the learning phase
        state, obs, r, done, info = step(
            jax.random.key(t), state, jnp.array([leader[o % 5]]), menv.params
        )
        total += float(r[0])
        follower += float(info["follower_reward"])
        hidden.append(bool(info["hidden"]))
    assert bool(done) and hidden == [True] * (n_q * 4) + [False] * 4
    payoffs = np.asarray(env.params.payoffs)
    q, ref_leader, ref_follower = reference_q_learning(payoffs, -2.5, 4, leader, q0, n_q, 0.5, 0.9)
    np.testing.assert_allclose(np.asarray(state.q), q, rtol=0, atol=1e-12)
    np.testing.assert_allclose([total, follower], [ref_leader, ref_follower], rtol=0, atol=1e-12)


def test_exploration_rate_matches_epsilon():
    env = iterated_matrix_game("stag_hunt", episode_length=10)
    menv = inner_loop_environment(
        env,
        num_q_episodes=400,
        epsilon=0.3,
        alpha=0.0 + 1e-12,
        gamma=0.9,
        tell_leader=False,
        hidden_queries=False,
    )

    def run(key):
        state, obs = menv.reset(key, menv.params)
        greedy = jnp.argmax(state.q, axis=-1)

        def body(carry, k):
            state, obs = carry
            o_f = obs[0]
            state, obs, _, _, _ = menv.step(k, state, jnp.array([0]), menv.params)
            b = (state.last - 1) // 2
            return (state, obs), (b != greedy[o_f]) & (state.last > 0)

        keys = jax.random.split(key, 4000)
        return jax.lax.scan(body, (state, obs), keys)[1]

    off_greedy = np.asarray(jax.jit(run)(jax.random.key(0)))
    # Random action with probability 0.3, uniform over 2 actions: off-greedy rate 0.15.
    # The round's last step resets the previous action and is not counted (4000 - 400 steps).
    rate = off_greedy.sum() / (4000 - 400)
    se = np.sqrt(0.15 * 0.85 / 3600)
    assert abs(rate - 0.15) < 4 * se


def test_bad_input():
    with pytest.raises(ValueError, match="epsilon"):
        BaselineConfig(epsilon=1.5)
    with pytest.raises(ValueError, match="num_q_episodes"):
        BaselineConfig(num_q_episodes=0)
    with pytest.raises(ValueError, match="alpha"):
        BaselineConfig(alpha=0.0)
    with pytest.raises(TypeError, match="config"):
        make_train_independent(iterated_matrix_game("hero"), {"num_updates": 2})
    with pytest.raises(ValueError, match="env"):
        make_train_independent(matrix_game(np.zeros((2, 3, 2))))

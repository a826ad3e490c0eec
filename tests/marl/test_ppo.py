"""The tabular PPO learner: steps an environment marks hidden never move the policy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax.marl import iterated_matrix_game
from stackjax.marl._meta import query_environment
from stackjax.marl._ppo import PPOHyperparameters, make_ppo

HP = PPOHyperparameters(
    num_envs=8,
    update_epochs=2,
    num_minibatches=2,
    learning_rate=0.1,
    clip_eps=0.2,
    gamma=0.99,
    gae_lambda=0.95,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
)


@pytest.mark.parametrize("hidden_queries", [True, False])
def test_hidden_query_steps_leave_the_query_rows_of_the_policy_unchanged(hidden_queries):
    """With the leader told which steps are queries, query observations occupy their own
    policy rows ``[O_L, 2 O_L)``. Hidden: those rows get exactly zero gradient, so two updates
    leave them at zero while the play rows move; not hidden: the query rows move too."""
    env = iterated_matrix_game("prisoners_dilemma", episode_length=3)
    logits = jnp.zeros((32, 5, 2)).at[:, :, 1].set(1.0)  # the follower always cooperates
    qenv = query_environment(
        env,
        (0, 1, 2, 3, 4),
        follower="learned",
        tell_leader=True,
        hidden_queries=hidden_queries,
        follower_logits=logits,
    )
    init, update = make_ppo(qenv, 1, qenv.num_observations, 2, HP, jnp.float32)
    state = init(jax.random.key(0))
    step = jax.jit(update)
    for k in jax.random.split(jax.random.key(1), 2):
        state, _ = step(state, k, qenv.params)
    table = np.asarray(state.logits[0])  # [10, 2]: play rows 0..4, query rows 5..9
    assert np.abs(table[:5]).max() > 1e-3
    query_moved = np.abs(table[5:]).max()
    if hidden_queries:
        assert query_moved == 0.0
    else:
        assert query_moved > 1e-3

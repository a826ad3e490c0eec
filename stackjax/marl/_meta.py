"""The leader's single-agent environments that embed a follower oracle.

`query_environment`: the query oracle of the contextual design. An episode is a *query phase*
(the leader is asked for its action on each observation of a fixed list, reward 0), then the
*play phase* (one episode of the game against a follower that conditions on the answers).

`inner_loop_environment`: the baseline design. An episode is ``num_q_episodes`` episodes of the
game during which a fresh tabular Q-learning follower learns against the leader (reward 0 to
the leader), then one episode against the greedy follower (the leader's reward).

Both are `Environment`s for one agent: observations ``[1]`` int (the leader's game observation,
shifted by ``O_L`` when the leader is told that a step is a query or learning step), actions
``[1]``, rewards ``[1]``, ``info["hidden"]`` on steps the leader must not learn from
(the inner-loop environment also reports the final episode's ``info["follower_reward"]``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from stackjax.discrete._env import Environment
from stackjax.discrete._response import soft_backward

from ._games import MatrixGameParams
from ._oracle import _follower_mdp

__all__ = [
    "InnerLoopParams",
    "QueryParams",
    "context_index",
    "inner_loop_environment",
    "query_environment",
]


class QueryParams(struct.PyTreeNode):
    """Parameters of the query environment.

    Attributes:
      game: the matrix game.
      follower_logits: ``[C, O_F, A_F]`` the contextual follower's logits per answer context
        (it plays the greedy action); unused by the quantal follower.
      temperature: [] the quantal follower's temperature; unused by the learned follower.
    """

    game: MatrixGameParams
    follower_logits: jax.Array
    temperature: jax.Array


class _QueryState(struct.PyTreeNode):
    step: jax.Array
    answers: jax.Array  # [Q]
    last: jax.Array  # previous joint action of the game


def context_index(answers: jax.Array, num_leader_actions: int) -> jax.Array:
    """Index ``sum_q answers[q] A_L**q`` of an answer vector ``[..., Q]``."""
    powers = num_leader_actions ** jnp.arange(answers.shape[-1], dtype=answers.dtype)
    return answers @ powers


def leader_table_from_answers(answers, queries, num_observations):
    """The leader table the answers reveal (observations not queried map to action 0)."""
    table = jnp.zeros(answers.shape[:-1] + (num_observations,), answers.dtype)
    return table.at[..., jnp.asarray(queries)].set(answers)


def quantal_state_policy(game: MatrixGameParams, horizon, table, temperature):
    """``[H, S, A_F]`` the quantal follower's response to a leader table."""
    reward, kernel = _follower_mdp(game, horizon, table)
    return soft_backward(reward, lambda h: kernel, temperature)[0]


def query_environment(
    game_env: Environment,
    queries: tuple[int, ...],
    *,
    follower: str,
    tell_leader: bool,
    hidden_queries: bool,
    follower_logits: jax.Array | None = None,
    temperature: float | None = None,
) -> Environment:
    """The leader's environment: query phase, then the game against the follower oracle.

    Args:
      game_env: a matrix-game environment.
      queries: the leader observations asked, in order.
      follower: ``"learned"`` (greedy in ``follower_logits`` of the answer context and its
        observation) or ``"quantal"`` (samples its soft response to the revealed table; the
        queries must cover every leader observation).
      tell_leader: shift query observations by ``O_L`` so the leader can tell them apart.
      hidden_queries: mark query steps hidden (left out of the leader's loss).
      follower_logits: ``[C, O_F, A_F]`` for the learned follower.
      temperature: ``tau > 0`` for the quantal follower.
    """
    game = game_env.params
    horizon = game_env.horizon
    num_queries = len(queries)
    num_obs_l = game.observation_counts[0]
    a_l = game.num_leader_actions
    obs_table = game.observation_table()
    query_obs = np.asarray(queries, np.int32) + (num_obs_l if tell_leader else 0)
    dtype = game.payoffs.dtype
    if follower_logits is None:
        follower_logits = jnp.zeros((1, 1, game.num_follower_actions), dtype)
    params = QueryParams(
        game=game,
        follower_logits=follower_logits,
        temperature=jnp.asarray(0.0 if temperature is None else temperature, dtype),
    )

    def leader_obs(state):
        in_query = state.step < num_queries
        query = jnp.asarray(query_obs)[jnp.minimum(state.step, num_queries - 1)]
        return jnp.where(in_query, query, jnp.asarray(obs_table[:, 0])[state.last])[None]

    def reset(key, params):
        del key, params
        state = _QueryState(
            step=jnp.zeros((), jnp.int32),
            answers=jnp.zeros((num_queries,), jnp.int32),
            last=jnp.zeros((), jnp.int32),
        )
        return state, leader_obs(state)

    def follower_action(key, state, params):
        obs_f = jnp.asarray(obs_table[:, 1])[state.last]
        if follower == "learned":
            c = context_index(state.answers, a_l)
            return jnp.argmax(params.follower_logits[c, obs_f])
        table = leader_table_from_answers(state.answers, queries, num_obs_l)
        policy = quantal_state_policy(params.game, horizon, table, params.temperature)
        t = jnp.clip(state.step - num_queries, 0, horizon - 1)
        return jax.random.categorical(key, jnp.log(policy[t, state.last]))

    def step(key, state, actions, params):
        a = actions[0].astype(jnp.int32)
        in_query = state.step < num_queries
        answers = jnp.where(in_query & (jnp.arange(num_queries) == state.step), a, state.answers)
        b = follower_action(key, state.replace(answers=answers), params)
        g = params.game
        reward = jnp.where(in_query, 0.0, g.payoffs[a, b, 0] + g.reward_offset)
        last = jnp.where(in_query, state.last, 1 + a + a_l * b).astype(jnp.int32)
        state = _QueryState(step=state.step + 1, answers=answers, last=last)
        done = state.step >= num_queries + horizon
        info = {"hidden": in_query & hidden_queries}
        return state, leader_obs(state), reward.astype(dtype)[None], done, info

    return Environment(
        reset=reset,
        step=step,
        params=params,
        num_actions=(a_l,),
        num_observations=num_obs_l * (2 if tell_leader else 1),
        horizon=num_queries + horizon,
    )


class InnerLoopParams(struct.PyTreeNode):
    """Parameters of the inner-loop environment.

    Attributes:
      game: the matrix game.
      epsilon: [] exploration rate of the Q-learning follower.
      alpha: [] its learning rate.
      gamma: [] its discount.
    """

    game: MatrixGameParams
    epsilon: jax.Array
    alpha: jax.Array
    gamma: jax.Array


class _InnerState(struct.PyTreeNode):
    step: jax.Array
    q: jax.Array  # [O_F, A_F]
    last: jax.Array


def inner_loop_environment(
    game_env: Environment,
    *,
    num_q_episodes: int,
    epsilon: float,
    alpha: float,
    gamma: float,
    tell_leader: bool,
    hidden_queries: bool,
) -> Environment:
    """The leader's environment of the inner-loop design (module docstring).

    The follower's Q-table starts at N(0, 0.01^2) noise every episode, acts epsilon-greedily on
    its observation during learning, updates ``Q[o, b] += alpha (r + gamma max Q[o'] - Q[o, b])``
    (no bootstrap on the last round), and plays greedily in the final episode.
    """
    game = game_env.params
    horizon = game_env.horizon
    learn_steps = num_q_episodes * horizon
    num_obs_l, num_obs_f = game.observation_counts
    a_l, a_f = game.num_leader_actions, game.num_follower_actions
    obs_table = game.observation_table()
    dtype = game.payoffs.dtype
    params = InnerLoopParams(
        game=game,
        epsilon=jnp.asarray(epsilon, dtype),
        alpha=jnp.asarray(alpha, dtype),
        gamma=jnp.asarray(gamma, dtype),
    )

    def leader_obs(state):
        shift = jnp.where(tell_leader & (state.step < learn_steps), num_obs_l, 0)
        return (jnp.asarray(obs_table[:, 0])[state.last] + shift)[None]

    def reset(key, params):
        q = 0.01 * jax.random.normal(key, (num_obs_f, a_f), dtype)
        state = _InnerState(step=jnp.zeros((), jnp.int32), q=q, last=jnp.zeros((), jnp.int32))
        return state, leader_obs(state)

    def step(key, state, actions, params):
        k_explore, k_random = jax.random.split(key)
        a = actions[0].astype(jnp.int32)
        learning = state.step < learn_steps
        obs_f = jnp.asarray(obs_table[:, 1])[state.last]
        greedy = jnp.argmax(state.q[obs_f])
        explore = learning & (jax.random.uniform(k_explore, dtype=dtype) < params.epsilon)
        b = jnp.where(explore, jax.random.randint(k_random, (), 0, a_f), greedy)
        g = params.game
        rewards = g.payoffs[a, b] + g.reward_offset
        next_last = (1 + a + a_l * b).astype(jnp.int32)
        round_end = (state.step + 1) % horizon == 0
        next_obs_f = jnp.asarray(obs_table[:, 1])[next_last]
        bootstrap = jnp.where(round_end, 0.0, params.gamma * jnp.max(state.q[next_obs_f]))
        target = rewards[1] + bootstrap
        q_new = state.q.at[obs_f, b].add(params.alpha * (target - state.q[obs_f, b]))
        q = jnp.where(learning, q_new, state.q)
        last = jnp.where(round_end, 0, next_last).astype(jnp.int32)
        state = _InnerState(step=state.step + 1, q=q, last=last)
        done = state.step >= learn_steps + horizon
        reward = jnp.where(learning, 0.0, rewards[0])
        info = {
            "hidden": learning & hidden_queries,
            "follower_reward": jnp.where(learning, 0.0, rewards[1]).astype(dtype),
        }
        return state, leader_obs(state), reward.astype(dtype)[None], done, info

    return Environment(
        reset=reset,
        step=step,
        params=params,
        num_actions=(a_l,),
        num_observations=num_obs_l * (2 if tell_leader else 1),
        horizon=learn_steps + horizon,
    )

"""One environment type for every discrete-time learner (gymnax-style pure functions).

An `Environment` is a pair of pure functions plus static metadata. Multi-agent actions and
rewards carry a leading agent axis (0 = leader, 1 = follower, then further agents). The
environment's parameters (payoffs, kernels, ...) are a separate pytree, passed to every call,
so one compiled learner serves a whole batch of games under ``jax.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Environment", "Transition", "auto_reset", "markov_environment"]


class Environment(NamedTuple):
    """A discrete-time multi-agent environment.

    Attributes:
      reset: ``(key, params) -> (state, obs)``; the key is consumed.
      step: ``(key, state, actions [num_agents] int, params) -> (state, obs, rewards
        [num_agents], done [] bool, info dict)``; the key is consumed.
      params: the default parameters (a pytree) passed to ``reset`` and ``step``.
      num_actions: static actions per agent, ``(A_leader, A_follower, ...)``.
      num_observations: static number of distinct (integer) observations, or ``None`` when
        observations are arrays.
      horizon: static episode length (``done`` is true after this many steps).
    """

    reset: Callable[..., tuple[Any, Any]]
    step: Callable[..., tuple[Any, Any, jax.Array, jax.Array, dict]]
    params: Any
    num_actions: tuple[int, ...]
    num_observations: int | None
    horizon: int

    @property
    def num_agents(self) -> int:
        return len(self.num_actions)


class Transition(NamedTuple):
    """One step of experience (leaves carry the batch / time axes the learner adds).

    Attributes:
      obs: observation before the step.
      actions: [num_agents] actions taken.
      rewards: [num_agents] rewards received.
      done: [] whether the episode ended with this step.
      log_probs: [num_agents] log-probabilities of the actions under the acting policies.
      values: [num_agents] value estimates at ``obs`` (0 where a learner has none).
    """

    obs: Any
    actions: jax.Array
    rewards: jax.Array
    done: jax.Array
    log_probs: jax.Array
    values: jax.Array


def auto_reset(env: Environment) -> Environment:
    """The same environment whose ``step`` starts a new episode when one ends.

    On ``done`` the returned state and observation are those of a fresh ``reset`` (drawn from
    the step's key), while ``rewards``, ``done`` and ``info`` are the finished step's.
    """

    def step(key, state, actions, params):
        k_step, k_reset = jax.random.split(key)
        state, obs, rewards, done, info = env.step(k_step, state, actions, params)
        fresh_state, fresh_obs = env.reset(k_reset, params)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh_state, state)
        obs = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh_obs, obs)
        return state, obs, rewards, done, info

    return env._replace(step=step)


def markov_environment(game) -> Environment:
    """The leader-follower `MarkovGame` as an `Environment` (observation: the state index).

    Rewards are ``[r_L, r_F]``; ``params`` is the game itself.
    """
    from ._markov import reset, step

    def env_reset(key, params):
        obs, state = reset(key, params)
        return state, obs

    def env_step(key, state, actions, params):
        obs, state, rewards, done, info = step(key, state, actions, params)
        return state, obs, rewards, done, info

    return Environment(
        reset=env_reset,
        step=env_step,
        params=game,
        num_actions=(game.num_leader_actions, game.num_follower_actions),
        num_observations=game.num_states,
        horizon=game.horizon,
    )

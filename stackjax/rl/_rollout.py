"""Batched episodes of an `Environment`: ``lax.scan`` over time, ``vmap`` over episodes."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from .._validation import as_key
from ._env import Environment

__all__ = ["Batch", "rollout", "gaussian_log_density"]


class Batch(struct.PyTreeNode):
    """``B`` episodes of ``N`` steps.

    Attributes:
      times: [N + 1] grid ``t_n = n dt``.
      states: [B, N + 1, d].
      regimes: [B, N + 1] int32.
      leader_actions: [B, N, k1].
      follower_actions: [B, N, k2].
      costs: [B, N, 2] environment costs (no entropy terms).
      done: [B, N] bool (true at the last step).
      counterfactual: ``None``, or a dict of the paired steps taken from the same states with
        the same environment keys (common random numbers) and other actions:
        ``leader_actions``, ``follower_actions`` [B, N, k], ``next_states`` [B, N, d],
        ``next_regimes`` [B, N], ``costs`` [B, N, 2].
    """

    times: jax.Array
    states: jax.Array
    regimes: jax.Array
    leader_actions: jax.Array
    follower_actions: jax.Array
    costs: jax.Array
    done: jax.Array
    counterfactual: dict | None = None

    @property
    def num_transitions(self) -> int:
        return self.costs.shape[0] * self.costs.shape[1]


def rollout(
    env: Environment,
    act: Callable,
    key: jax.Array,
    num_episodes: int,
    counterfactual: Callable | None = None,
) -> Batch:
    """Runs ``num_episodes`` episodes.

    Args:
      env: the environment.
      act: ``act(key, n, obs) -> (leader_action [k1], follower_action [k2])`` at step ``n``.
      key: PRNG key (consumed).
      num_episodes: ``B`` (static).
      counterfactual: optional second ``act``; its actions are applied to the same state with
        the same environment key (the environment is a pure function, so both steps share the
        noise) and recorded in ``Batch.counterfactual``; the episode continues with ``act``.
    """
    key = as_key(key)
    N = env.num_steps

    def episode(k):
        reset_key, steps_key = jax.random.split(k)
        state, obs = env.reset(reset_key)

        def body(carry, inputs):
            state, obs = carry
            n, k_step = inputs
            k_act, k_env = jax.random.split(k_step)
            u1, u2 = act(k_act, n, obs)
            cf = None
            if counterfactual is not None:
                v1, v2 = counterfactual(jax.random.fold_in(k_act, 1), n, obs)
                _, cf_obs, cf_costs, _ = env.step(k_env, state, v1, v2)
                cf = {
                    "leader_actions": v1, "follower_actions": v2, "next_states": cf_obs.state,
                    "next_regimes": jnp.asarray(cf_obs.regime, jnp.int32), "costs": cf_costs,
                }  # fmt: skip
            state, new_obs, costs, done = env.step(k_env, state, u1, u2)
            out = (new_obs.state, new_obs.regime, u1, u2, costs, done, cf)
            return (state, new_obs), out

        keys = jax.random.split(steps_key, N)
        _, (xs, regimes, u1, u2, costs, done, cf) = jax.lax.scan(
            body, (state, obs), (jnp.arange(N), keys)
        )
        states = jnp.concatenate([obs.state[None], xs], axis=0)
        regimes = jnp.concatenate([jnp.asarray(obs.regime, jnp.int32)[None], regimes], axis=0)
        return states, regimes.astype(jnp.int32), u1, u2, costs, done, cf

    states, regimes, u1, u2, costs, done, cf = jax.vmap(episode)(
        jax.random.split(key, int(num_episodes))
    )
    dtype = states.dtype
    times = jnp.arange(N + 1, dtype=dtype) * jnp.asarray(env.dt, dtype)
    return Batch(
        times=times, states=states, regimes=regimes, leader_actions=u1, follower_actions=u2,
        costs=costs, done=done.astype(bool), counterfactual=cf,
    )  # fmt: skip


def gaussian_log_density(u: jax.Array, mean: jax.Array, cov: jax.Array) -> jax.Array:
    """``log N(u; mean, cov)``; 0 when ``cov`` is exactly zero (a deterministic policy)."""
    k = u.shape[-1]
    zero = jnp.all(cov == 0)
    safe = jnp.where(zero, jnp.eye(k, dtype=cov.dtype), cov)
    factor = jnp.linalg.cholesky(0.5 * (safe + safe.T))
    xi = jax.scipy.linalg.solve_triangular(factor, u - mean, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))
    value = -0.5 * (k * jnp.log(2.0 * jnp.pi) + logdet) - 0.5 * xi @ xi
    return jnp.where(zero, 0.0, value)

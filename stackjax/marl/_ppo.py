"""Tabular PPO for independent learners on fixed-length episodic environments (PureJaxRL-style).

Every agent has a softmax policy table ``[O, A]`` over its integer observation and a value table
``[T, O]`` over (step of the episode, observation); the step is counted by the learner, the
policy does not see it. One update collects one full episode in each of ``num_envs`` parallel
environments (``vmap`` over environments, ``lax.scan`` over the ``T`` steps), computes GAE
advantages and takes ``update_epochs`` passes of clipped-surrogate Adam steps. Steps the
environment marks ``info["hidden"]`` (e.g. hidden queries) are left out of the loss.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from stackjax._validation import check_settings
from stackjax.discrete._env import Environment

__all__ = ["PPOHyperparameters", "PPOState", "make_ppo", "ppo_settings"]


class PPOHyperparameters(NamedTuple):
    """Static PPO settings (hashable)."""

    num_envs: int
    update_epochs: int
    num_minibatches: int
    learning_rate: float
    clip_eps: float
    gamma: float
    gae_lambda: float
    ent_coef: float
    vf_coef: float
    max_grad_norm: float


# Each PPO setting's kind and minimum for `check_setting`.
_PPO_CHECKS = {
    "num_envs": ("int", 1),
    "update_epochs": ("int", 1),
    "num_minibatches": ("int", 1),
    "learning_rate": ("positive", None),
    "clip_eps": ("rate", None),
    "gamma": ("fraction", None),
    "gae_lambda": ("fraction", None),
    "ent_coef": ("nonnegative", None),
    "vf_coef": ("nonnegative", None),
    "max_grad_norm": ("positive", None),
}


def ppo_settings(config) -> PPOHyperparameters:
    """The PPO fields of a learner's settings object, each checked (`check_setting`)."""
    check_settings(config, _PPO_CHECKS)
    return PPOHyperparameters(**{name: getattr(config, name) for name in _PPO_CHECKS})


class PPOState(struct.PyTreeNode):
    """Learner state.

    Attributes:
      logits: ``[N, O, A]`` policy logits of the ``N`` agents.
      values: ``[N, T, O]`` value tables.
      opt_state: Adam state of ``(logits, values)``.
    """

    logits: jax.Array
    values: jax.Array
    opt_state: optax.OptState


class _Batch(NamedTuple):
    obs: jax.Array  # [T, E, N]
    actions: jax.Array  # [T, E, N]
    log_probs: jax.Array  # [T, E, N]
    values: jax.Array  # [T, E, N]
    rewards: jax.Array  # [T, E, N]
    trainable: jax.Array  # [T, E, N]


def make_ppo(
    env: Environment,
    num_agents: int,
    num_observations: int,
    num_actions: int,
    hp: PPOHyperparameters,
    dtype=None,
):
    """``(init(key) -> PPOState, update(state, key, params) -> (state, metrics))``.

    ``env`` must end every episode after exactly ``env.horizon`` steps, return observations
    ``[N]`` int and rewards ``[N]``, and take actions ``[N]``. ``metrics`` has the mean
    episode return ``[N]`` of the (stochastic) policies.
    """
    horizon = env.horizon
    dtype = jnp.result_type(float) if dtype is None else dtype
    optimizer = optax.chain(
        optax.clip_by_global_norm(hp.max_grad_norm), optax.adam(hp.learning_rate)
    )
    agents = jnp.arange(num_agents)

    def init(key):
        del key  # uniform initial policies, zero values
        logits = jnp.zeros((num_agents, num_observations, num_actions), dtype)
        values = jnp.zeros((num_agents, horizon, num_observations), dtype)
        return PPOState(logits, values, optimizer.init((logits, values)))

    def episode(state, key, params):
        k_reset, k_steps = jax.random.split(key)
        env_state, obs = env.reset(k_reset, params)

        def body(carry, xs):
            env_state, obs = carry
            t, k = xs
            k_act, k_env = jax.random.split(k)
            logits = state.logits[agents, obs]  # [N, A]
            actions = jax.random.categorical(k_act, logits)
            log_probs = jax.nn.log_softmax(logits)[agents, actions]
            values = state.values[agents, t, obs]
            env_state, next_obs, rewards, _, info = env.step(k_env, env_state, actions, params)
            hidden = jnp.broadcast_to(info.get("hidden", False), (num_agents,))
            step = (obs, actions, log_probs, values, rewards.astype(dtype), ~hidden)
            return (env_state, next_obs), step

        xs = (jnp.arange(horizon), jax.random.split(k_steps, horizon))
        _, steps = jax.lax.scan(body, (env_state, obs), xs)
        return steps

    def advantages(values, rewards):
        """GAE over one batch of complete episodes ``[T, E, N]`` (value 0 after the end)."""

        def back(carry, xs):
            gae, next_value = carry
            value, reward = xs
            delta = reward + hp.gamma * next_value - value
            gae = delta + hp.gamma * hp.gae_lambda * gae
            return (gae, value), gae

        zeros = jnp.zeros_like(values[0])
        _, adv = jax.lax.scan(back, (zeros, zeros), (values, rewards), reverse=True)
        return adv, adv + values

    def loss_fn(tables, batch, adv, targets):
        logits, value_table = tables
        obs_hot = jax.nn.one_hot(batch.obs, num_observations, dtype=logits.dtype)  # [B, N, O]
        all_logp = jax.nn.log_softmax(jnp.einsum("bno,noa->bna", obs_hot, logits))
        act_hot = jax.nn.one_hot(batch.actions, num_actions, dtype=logits.dtype)
        logp = jnp.sum(all_logp * act_hot, axis=-1)
        n = jnp.broadcast_to(agents, batch.obs.shape)
        values = value_table[n, batch.step, batch.obs]
        weight = batch.trainable.astype(logits.dtype)
        denom = jnp.maximum(jnp.sum(weight), 1.0)
        norm_adv = (adv - jnp.mean(adv, 0, keepdims=True)) / (jnp.std(adv, 0, keepdims=True) + 1e-8)
        ratio = jnp.exp(logp - batch.log_probs)
        clipped = jnp.clip(ratio, 1.0 - hp.clip_eps, 1.0 + hp.clip_eps)
        surrogate = jnp.minimum(ratio * norm_adv, clipped * norm_adv)
        entropy = -jnp.sum(jnp.exp(all_logp) * all_logp, axis=-1)
        policy_loss = -jnp.sum(weight * (surrogate + hp.ent_coef * entropy)) / denom
        value_loss = 0.5 * jnp.mean((values - targets) ** 2)
        return policy_loss + hp.vf_coef * value_loss

    def update(state, key, params):
        k_roll, k_perm = jax.random.split(key)
        steps = jax.vmap(episode, in_axes=(None, 0, None), out_axes=1)(
            state, jax.random.split(k_roll, hp.num_envs), params
        )
        obs, actions, log_probs, values, rewards, trainable = steps  # [T, E, N]
        adv, targets = advantages(values, rewards)
        step_index = jnp.broadcast_to(jnp.arange(horizon)[:, None, None], obs.shape)
        flat = _Batch(obs, actions, log_probs, values, rewards, trainable)
        flat = jax.tree.map(lambda x: x.reshape(-1, num_agents), flat)
        flat_step = step_index.reshape(-1, num_agents)
        flat_adv, flat_targets = adv.reshape(-1, num_agents), targets.reshape(-1, num_agents)
        full = _StepBatch(*flat, step=flat_step)
        size = flat.obs.shape[0]
        mb = size // hp.num_minibatches

        def epoch(carry, k):
            tables, opt_state = carry
            if hp.num_minibatches == 1:  # full batch: no shuffling needed
                perm = jnp.arange(size)[None]
            else:
                perm = jax.random.permutation(k, size)[: mb * hp.num_minibatches]
                perm = perm.reshape(hp.num_minibatches, mb)

            def minibatch(carry, idx):
                tables, opt_state = carry
                if hp.num_minibatches == 1:
                    batch, mb_adv, mb_targets = full, flat_adv, flat_targets
                else:
                    batch = _StepBatch(*(x[idx] for x in full))
                    mb_adv, mb_targets = flat_adv[idx], flat_targets[idx]
                grads = jax.grad(loss_fn)(tables, batch, mb_adv, mb_targets)
                updates, opt_state = optimizer.update(grads, opt_state, tables)
                return (optax.apply_updates(tables, updates), opt_state), None

            return jax.lax.scan(minibatch, (tables, opt_state), perm)[0], None

        keys = jax.random.split(k_perm, hp.update_epochs)
        (tables, opt_state), _ = jax.lax.scan(
            epoch, ((state.logits, state.values), state.opt_state), keys
        )
        state = PPOState(logits=tables[0], values=tables[1], opt_state=opt_state)
        return state, {"episode_return": jnp.mean(jnp.sum(rewards, axis=0), axis=0)}

    return init, update


class _StepBatch(NamedTuple):
    obs: jax.Array
    actions: jax.Array
    log_probs: jax.Array
    values: jax.Array
    rewards: jax.Array
    trainable: jax.Array
    step: jax.Array

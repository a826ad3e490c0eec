"""Baselines without a contextual follower, trained and evaluated like the contextual design.

- Inner-loop design (`make_train_inner_loop`): the leader's PPO environment runs a fresh tabular
  Q-learning follower for ``num_q_episodes`` episodes inside every leader episode
  (`inner_loop_environment`); the leader's return is that of the last, greedy episode.
- Independent PPO (`make_train_independent`): both agents learn at the same time by PPO on the
  game itself, with no Stackelberg structure.

Both return ``train(key, params=None) -> (PPOState, metrics)`` with the metrics of
`stackjax.marl.make_train` (``leader_return``, ``follower_return``, ``episode_return``,
``samples``) per update.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from stackjax._validation import as_key, check_settings
from stackjax.discrete._env import Environment

from ._meta import InnerLoopParams, inner_loop_environment
from ._oracle import _check_environment, _state_policy, policy_returns
from ._ppo import PPOHyperparameters, make_ppo, ppo_settings

__all__ = ["BaselineConfig", "make_train_independent", "make_train_inner_loop"]


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """Settings of the baselines (frozen, hashable, validated).

    Attributes:
      num_q_episodes: Q-learning episodes of the inner-loop follower per leader episode.
      epsilon: its exploration rate.
      alpha: its learning rate (the reference's default: its experiment's ``q_alpha`` key
        does not reach the environment).
      q_gamma: its discount.
      tell_leader: whether the leader sees that a step belongs to the learning phase.
      hidden_queries: whether learning-phase steps are left out of the leader's loss.
      num_eval_episodes: inner-loop episodes (each with a fresh Q-learner) that evaluate the
        greedy leader after every update.
      num_updates, num_envs, update_epochs, num_minibatches, learning_rate, clip_eps, gamma,
      gae_lambda, ent_coef, vf_coef, max_grad_norm: PPO settings as in `ContextualConfig`.
    """

    num_q_episodes: int = 80
    epsilon: float = 0.1
    alpha: float = 0.1
    q_gamma: float = 0.9
    tell_leader: bool = False
    hidden_queries: bool = False
    num_eval_episodes: int = 8
    num_updates: int = 60
    num_envs: int = 16
    update_epochs: int = 4
    num_minibatches: int = 1
    learning_rate: float = 0.05
    clip_eps: float = 0.2
    gamma: float = 1.0
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 10.0

    def __post_init__(self):
        checks = {
            "num_q_episodes": ("int", 1),
            "num_eval_episodes": ("int", 1),
            "num_updates": ("int", 1),
            "tell_leader": ("bool", None),
            "hidden_queries": ("bool", None),
            "epsilon": ("fraction", None),
            "alpha": ("rate", None),
            "q_gamma": ("fraction", None),
        }
        check_settings(self, checks)
        ppo_settings(self)

    def ppo(self) -> PPOHyperparameters:
        return ppo_settings(self)


def _config(config) -> BaselineConfig:
    config = BaselineConfig() if config is None else config
    if not isinstance(config, BaselineConfig):
        raise TypeError(
            f"`config` must be a BaselineConfig; got {type(config).__name__}. "
            "Pass BaselineConfig(...)."
        )
    return config


def make_train_inner_loop(env: Environment, config: BaselineConfig | None = None):
    """``train(key, params=None)`` of the inner-loop design (module docstring).

    ``leader_return`` is the mean return of the greedy leader over ``num_eval_episodes``
    inner-loop episodes (each with its own Q-learning follower); ``follower_return`` likewise.
    ``samples`` counts the leader's environment steps, learning phase included. ``key`` must be
    a PRNG key (checked at trace time only: no run-time work under ``jit``/``vmap``).
    """
    config = _config(config)
    _check_environment(env)
    menv = inner_loop_environment(
        env,
        num_q_episodes=config.num_q_episodes,
        epsilon=config.epsilon,
        alpha=config.alpha,
        gamma=config.q_gamma,
        tell_leader=config.tell_leader,
        hidden_queries=config.hidden_queries,
    )
    a_l = env.params.num_leader_actions
    dtype = env.params.payoffs.dtype
    init, update = make_ppo(menv, 1, menv.num_observations, a_l, config.ppo(), dtype)
    samples_per_update = config.num_envs * menv.horizon

    def evaluate(logits, key, mparams):
        greedy = jnp.argmax(logits, axis=-1)

        def episode(key):
            k_reset, k_steps = jax.random.split(key)
            state, obs = menv.reset(k_reset, mparams)

            def body(carry, xs):
                state, obs = carry
                _, k = xs
                state, obs, reward, _, info = menv.step(k, state, greedy[obs], mparams)
                return (state, obs), (reward[0], info["follower_reward"])

            xs = (jnp.arange(menv.horizon), jax.random.split(k_steps, menv.horizon))
            _, (rewards, follower_rewards) = jax.lax.scan(body, (state, obs), xs)
            return jnp.sum(rewards), jnp.sum(follower_rewards)

        leader, follower = jax.vmap(episode)(jax.random.split(key, config.num_eval_episodes))
        return jnp.mean(leader), jnp.mean(follower)

    def train(key, params=None):
        key = as_key(key)
        game = env.params if params is None else params
        mparams = InnerLoopParams(
            game=game,
            epsilon=menv.params.epsilon,
            alpha=menv.params.alpha,
            gamma=menv.params.gamma,
        )
        k_init, k_train = jax.random.split(key)

        def body(carry, k):
            state, i = carry
            k_update, k_eval = jax.random.split(k)
            state, stats = update(state, k_update, mparams)
            leader, follower = evaluate(state.logits[0], k_eval, mparams)
            metrics = {
                "leader_return": leader,
                "follower_return": follower,
                "episode_return": stats["episode_return"][0],
                "samples": (i + 1) * samples_per_update,
            }
            return (state, i + 1), metrics

        keys = jax.random.split(k_train, config.num_updates)
        (state, _), metrics = jax.lax.scan(body, (init(k_init), jnp.zeros((), jnp.int32)), keys)
        return state, metrics

    return train


def make_train_independent(env: Environment, config: BaselineConfig | None = None):
    """``train(key, params=None)``: both agents learn by PPO on the game (no Stackelberg).

    ``leader_return`` / ``follower_return`` are the exact returns of the two greedy tables;
    ``samples`` counts environment steps. Needs ``A_L == A_F`` and equal observation counts
    (the two agents share one table layout). ``key`` must be a PRNG key (checked at trace
    time only: no run-time work under ``jit``/``vmap``).
    """
    config = _config(config)
    params = _check_environment(env)
    num_obs = params.observation_counts
    if params.num_leader_actions != params.num_follower_actions or num_obs[0] != num_obs[1]:
        raise ValueError(
            "`env` must give both agents the same numbers of actions and observations for "
            f"independent PPO; got actions {env.num_actions} and observations {num_obs}. "
            "Use a square game without small memory."
        )
    a = params.num_leader_actions
    horizon = env.horizon
    dtype = params.payoffs.dtype
    init, update = make_ppo(env, 2, num_obs[0], a, config.ppo(), dtype)
    samples_per_update = config.num_envs * horizon

    def train(key, params=None):
        key = as_key(key)
        game = env.params if params is None else params
        k_init, k_train = jax.random.split(key)

        def body(carry, k):
            state, i = carry
            state, stats = update(state, k, game)
            greedy = jnp.argmax(state.logits, axis=-1)
            returns = policy_returns(
                game,
                horizon,
                _state_policy(game, horizon, greedy[0], 0, a),
                _state_policy(game, horizon, greedy[1], 1, a),
            )
            metrics = {
                "leader_return": returns[0],
                "follower_return": returns[1],
                "episode_return": stats["episode_return"][0],
                "samples": (i + 1) * samples_per_update,
            }
            return (state, i + 1), metrics

        keys = jax.random.split(k_train, config.num_updates)
        (state, _), metrics = jax.lax.scan(body, (init(k_init), jnp.zeros((), jnp.int32)), keys)
        return state, metrics

    return train

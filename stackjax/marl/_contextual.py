"""The contextual-follower design: pretrain a follower against random leaders, then train the
leader by PPO against the frozen follower through the query oracle.

Follower pretraining (``follower="learned"``): the follower's policy is a softmax table over
(answer context, its observation) ``[C, O_F, A_F]`` with ``C = A_L**Q`` answer vectors of the
``Q`` queries. Each iteration draws a batch of uniformly random deterministic leader tables
(``vmap``), reveals their answers, plays one episode per leader and takes a REINFORCE step with
a tabular baseline over (context, round, observation). The follower is then frozen and plays
greedily.

The quantal follower (``follower="quantal"``) needs no pretraining: it samples its
entropy-regularized response (`stackjax.discrete.soft_backward`, temperature ``tau``) to the
leader table its answers reveal.

Deterministic evaluation: the leader's greedy table answers the queries and plays; the returns
are exact expectations (`policy_returns`), so a leader that reaches the restricted-class
Stackelberg value does so to rounding.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from stackjax.discrete._env import Environment

from .._validation import as_key, check_settings
from .._xla_flags import loop_jit
from ._games import matrix_game
from ._meta import (
    QueryParams,
    context_index,
    leader_table_from_answers,
    quantal_state_policy,
    query_environment,
)
from ._oracle import (
    StackelbergValue,
    _check_environment,
    _state_policy,
    check_follower_class,
    exact_stackelberg,
    policy_returns,
)
from ._ppo import PPOHyperparameters, PPOState, make_ppo, ppo_settings

__all__ = [
    "ContextualConfig",
    "ContextualResult",
    "ContextualState",
    "evaluate_leader",
    "make_train",
    "pretrain_follower",
    "train_contextual",
]

_MAX_FOLLOWER_TABLE = 2**20


@dataclasses.dataclass(frozen=True)
class ContextualConfig:
    """Settings of the contextual-follower design (frozen, hashable, validated).

    Attributes:
      follower: ``"learned"`` (pretrained contextual policy, greedy once frozen) or
        ``"quantal"`` (soft response to the revealed leader table at ``temperature``).
      temperature: the quantal follower's ``tau > 0``; ``None`` for the learned follower.
      queries: leader observations asked in the query phase, in order; ``None`` asks every
        observation ``0 .. O_L - 1``.
      tell_leader: whether the leader sees that a step is a query (its query observations are
        shifted by ``O_L``, so it can answer differently from how it plays).
      hidden_queries: whether query steps are left out of the leader's PPO loss.
      pretrain_iterations: follower pretraining iterations (REINFORCE steps).
      pretrain_batch: random leaders (one episode each) per pretraining iteration.
      pretrain_learning_rate: Adam step size of the follower's logits and baseline.
      pretrain_ent_coef: initial entropy bonus of the follower, annealed linearly to 0.
      num_updates: leader PPO updates.
      num_envs: episodes per PPO update.
      update_epochs: passes over each batch.
      num_minibatches: minibatches per pass.
      learning_rate: Adam step size of the leader's tables.
      clip_eps: PPO ratio clipping.
      gamma: discount of the leader's return (1: the undiscounted episode return).
      gae_lambda: GAE parameter.
      ent_coef: entropy bonus of the leader.
      vf_coef: value-loss weight.
      max_grad_norm: global gradient-norm clipping.
    """

    follower: str = "learned"
    temperature: float | None = None
    queries: tuple[int, ...] | None = None
    tell_leader: bool = False
    hidden_queries: bool = False
    pretrain_iterations: int = 600
    pretrain_batch: int = 256
    pretrain_learning_rate: float = 0.1
    pretrain_ent_coef: float = 0.5
    num_updates: int = 60
    num_envs: int = 32
    update_epochs: int = 4
    num_minibatches: int = 1
    learning_rate: float = 0.1
    clip_eps: float = 0.2
    gamma: float = 1.0
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 10.0

    def __post_init__(self):
        if self.follower not in ("learned", "quantal"):
            raise ValueError(
                f"`follower` must be 'learned' or 'quantal'; got {self.follower!r}. "
                "Pick one of the two follower oracles."
            )
        check_follower_class(
            "quantal" if self.follower == "quantal" else "stationary", self.temperature
        )
        if self.queries is not None:
            if not isinstance(self.queries, tuple) or not self.queries:
                raise ValueError(
                    f"`queries` must be a non-empty tuple of observation indices or None; got "
                    f"{self.queries!r}. Pass e.g. queries=(0, 1, 2, 3, 4)."
                )
            if any(
                isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 0
                for q in self.queries
            ):
                raise ValueError(
                    f"`queries` must hold non-negative int observations; got {self.queries!r}. "
                    "Pass leader observation indices."
                )
            if len(set(self.queries)) != len(self.queries):
                raise ValueError(
                    f"`queries` must not repeat an observation; got {self.queries!r}. "
                    "Ask each observation once."
                )
        checks = {
            "tell_leader": ("bool", None),
            "hidden_queries": ("bool", None),
            "pretrain_iterations": ("int", 1),
            "pretrain_batch": ("int", 1),
            "num_updates": ("int", 1),
            "pretrain_learning_rate": ("positive", None),
            "pretrain_ent_coef": ("nonnegative", None),
        }
        check_settings(self, checks)
        ppo_settings(self)

    def ppo(self) -> PPOHyperparameters:
        return ppo_settings(self)


class ContextualState(struct.PyTreeNode):
    """Trained state.

    Attributes:
      leader: the leader's PPO state (``logits [1, O, A_L]``).
      follower_logits: ``[C, O_F, A_F]`` the frozen follower (zeros for the quantal one).
      pretrain_return: ``[pretrain_iterations]`` mean follower return per pretraining
        iteration (empty for the quantal follower).
    """

    leader: PPOState
    follower_logits: jax.Array
    pretrain_return: jax.Array


def resolve_queries(env: Environment, config: ContextualConfig) -> tuple[int, ...]:
    """The query list of ``config`` checked against ``env``'s leader observations."""
    num_obs_l = env.params.observation_counts[0]
    queries = tuple(range(num_obs_l)) if config.queries is None else config.queries
    if max(queries) >= num_obs_l:
        raise ValueError(
            f"`queries` must be leader observations 0..{num_obs_l - 1} of this game; got "
            f"{queries}. Drop the out-of-range entries."
        )
    if config.follower == "quantal" and set(queries) != set(range(num_obs_l)):
        raise ValueError(
            f"`queries` must cover every leader observation 0..{num_obs_l - 1} for the quantal "
            f"follower (it responds to the whole revealed table); got {queries}. "
            "Pass queries=None."
        )
    size = env.params.num_leader_actions ** len(queries) * env.params.observation_counts[1]
    if size > _MAX_FOLLOWER_TABLE:
        raise ValueError(
            f"`queries` give a follower table of {size} rows, more than {_MAX_FOLLOWER_TABLE}; "
            f"got {len(queries)} queries. Ask fewer observations."
        )
    return queries


def pretrain_follower(
    key: jax.Array,
    game,
    horizon: int,
    queries: tuple[int, ...],
    config: ContextualConfig,
) -> tuple[jax.Array, jax.Array]:
    """REINFORCE pretraining of the contextual follower against random leader tables.

    ``key``: a PRNG key (consumed). Inputs are validated when concrete; traced inputs are not.

    Returns:
      ``(logits [C, O_F, A_F], mean_return [pretrain_iterations])``.
    """
    key = as_key(key)
    dtype = game.payoffs.dtype
    a_l, a_f = game.num_leader_actions, game.num_follower_actions
    num_obs_l, num_obs_f = game.observation_counts
    num_contexts = a_l ** len(queries)
    obs_table = jnp.asarray(game.observation_table())
    queries_arr = jnp.asarray(queries)
    optimizer = optax.adam(config.pretrain_learning_rate)
    tables = (
        jnp.zeros((num_contexts, num_obs_f, a_f), dtype),
        jnp.zeros((num_contexts, horizon, num_obs_f), dtype),
    )

    def episode(logits, key):
        k_leader, k_play = jax.random.split(key)
        leader = jax.random.randint(k_leader, (num_obs_l,), 0, a_l)
        c = context_index(leader[queries_arr], a_l)

        def body(last, k):
            a = leader[obs_table[last, 0]]
            o_f = obs_table[last, 1]
            b = jax.random.categorical(k, logits[c, o_f])
            r = game.payoffs[a, b, 1] + game.reward_offset
            return (1 + a + a_l * b).astype(jnp.int32), (o_f, b, r)

        _, (obs_f, actions, rewards) = jax.lax.scan(
            body, jnp.zeros((), jnp.int32), jax.random.split(k_play, horizon)
        )
        return c, obs_f, actions, rewards

    def loss_fn(tables, c, obs_f, actions, returns, ent_coef):
        logits, baseline = tables
        cc = jnp.broadcast_to(c[:, None], obs_f.shape)
        tt = jnp.broadcast_to(jnp.arange(horizon)[None, :], obs_f.shape)
        all_logp = jax.nn.log_softmax(logits[cc, obs_f])
        logp = jnp.take_along_axis(all_logp, actions[..., None], -1)[..., 0]
        entropy = -jnp.sum(jnp.exp(all_logp) * all_logp, axis=-1)
        values = baseline[cc, tt, obs_f]
        adv = jax.lax.stop_gradient(returns - values)
        value_loss = 0.5 * jnp.mean((values - returns) ** 2)
        return -jnp.mean(logp * adv + ent_coef * entropy) + value_loss

    def iteration(carry, xs):
        tables, opt_state = carry
        key, i = xs
        # Entropy bonus annealed linearly to 0: explore early, converge to a greedy response.
        ent_coef = config.pretrain_ent_coef * (1.0 - i / config.pretrain_iterations)
        c, obs_f, actions, rewards = jax.vmap(episode, in_axes=(None, 0))(
            tables[0], jax.random.split(key, config.pretrain_batch)
        )
        returns = jnp.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]
        grads = jax.grad(loss_fn)(tables, c, obs_f, actions, returns, ent_coef)
        updates, opt_state = optimizer.update(grads, opt_state, tables)
        return (optax.apply_updates(tables, updates), opt_state), jnp.mean(returns[:, 0])

    xs = (jax.random.split(key, config.pretrain_iterations), jnp.arange(config.pretrain_iterations))
    (tables, _), curve = jax.lax.scan(iteration, (tables, optimizer.init(tables)), xs)
    return tables[0], curve


def evaluate_leader(
    params: QueryParams,
    leader_logits: jax.Array,
    horizon: int,
    queries: tuple[int, ...],
    follower: str,
    tell_leader: bool,
) -> jax.Array:
    """Exact returns ``[2]`` of the greedy leader against the frozen follower.

    The leader's greedy action on each query observation is its answer, its greedy action on
    each game observation is how it plays.
    """
    game = params.game
    num_obs_l = game.observation_counts[0]
    a_l, a_f = game.num_leader_actions, game.num_follower_actions
    greedy = jnp.argmax(leader_logits, axis=-1)  # [O]
    play = greedy[:num_obs_l]
    answers = greedy[jnp.asarray(queries) + (num_obs_l if tell_leader else 0)]
    if follower == "learned":
        table = jnp.argmax(params.follower_logits[context_index(answers, a_l)], axis=-1)
        follower_policy = _state_policy(game, horizon, table, 1, a_f)
    else:
        revealed = leader_table_from_answers(answers, queries, num_obs_l)
        follower_policy = quantal_state_policy(game, horizon, revealed, params.temperature)
    leader_policy = _state_policy(game, horizon, play, 0, a_l)
    return policy_returns(game, horizon, leader_policy, follower_policy)


def make_train(
    env: Environment,
    config: ContextualConfig | None = None,
    callback: Callable[[int, dict], None] | None = None,
):
    """``train(key, params=None) -> (ContextualState, metrics)``, pure and jit-able.

    Args:
      env: a matrix-game environment.
      config: settings; default `ContextualConfig()`.
      callback: optional host function ``callback(update, metrics)`` called after every
        leader update (through ``jax.debug.callback``; leave ``None`` for full speed).

    ``train`` runs pretraining and all leader updates in one ``lax.scan`` each; ``params``
    (default ``env.params``) may be another game of the same shape, so ``jax.vmap`` over
    ``(keys, stacked params)`` trains a batch of games in one compiled call. ``metrics`` leaves
    have a leading ``[num_updates]`` axis: ``leader_return`` and ``follower_return`` (exact,
    greedy leader after the update), ``episode_return`` (mean stochastic return of the batch)
    and ``samples`` (leader environment steps so far, queries included). ``key`` must be a PRNG
    key; the check runs at trace time only (no run-time work under ``jit``/``vmap``).
    """
    config = ContextualConfig() if config is None else config
    if not isinstance(config, ContextualConfig):
        raise TypeError(
            f"`config` must be a ContextualConfig; got {type(config).__name__}. "
            "Pass ContextualConfig(...)."
        )
    _check_environment(env)
    queries = resolve_queries(env, config)
    horizon = env.horizon
    qenv = query_environment(
        env,
        queries,
        follower=config.follower,
        tell_leader=config.tell_leader,
        hidden_queries=config.hidden_queries,
        temperature=config.temperature,
    )
    a_l = env.params.num_leader_actions
    dtype = env.params.payoffs.dtype
    init, update = make_ppo(qenv, 1, qenv.num_observations, a_l, config.ppo(), dtype)
    samples_per_update = config.num_envs * qenv.horizon

    def train(key, params=None):
        key = as_key(key)
        game = env.params if params is None else params
        k_pre, k_init, k_train = jax.random.split(key, 3)
        if config.follower == "learned":
            follower_logits, pretrain_return = pretrain_follower(
                k_pre, game, horizon, queries, config
            )
        else:
            follower_logits = jnp.zeros((1, 1, game.num_follower_actions), dtype)
            pretrain_return = jnp.zeros((0,), dtype)
        qparams = QueryParams(
            game=game,
            follower_logits=jax.lax.stop_gradient(follower_logits),
            temperature=qenv.params.temperature,
        )

        def body(carry, k):
            state, i = carry
            state, stats = update(state, k, qparams)
            returns = evaluate_leader(
                qparams, state.logits[0], horizon, queries, config.follower, config.tell_leader
            )
            metrics = {
                "leader_return": returns[0],
                "follower_return": returns[1],
                "episode_return": stats["episode_return"][0],
                "samples": (i + 1) * samples_per_update,
            }
            if callback is not None:
                jax.debug.callback(callback, i, metrics)
            return (state, i + 1), metrics

        keys = jax.random.split(k_train, config.num_updates)
        (state, _), metrics = jax.lax.scan(body, (init(k_init), jnp.zeros((), jnp.int32)), keys)
        return ContextualState(state, follower_logits, pretrain_return), metrics

    return train


class ContextualResult(struct.PyTreeNode):
    """Outcome of `train_contextual`.

    Attributes:
      leader_return: [] exact return of the greedy leader against the frozen follower.
      follower_return: [] the follower's return in the same evaluation.
      leader_policy: ``[O]`` the greedy leader table (query observations shifted by ``O_L``
        when the leader is told about queries).
      reference: the exact restricted-class Stackelberg value the design targets (stationary
        follower for the learned follower, quantal for the quantal one).
      samples_to_success: [] leader environment steps until the greedy leader first reached
        ``reference.leader_return`` within 1e-6 (-1 if it did not).
      state: the trained `ContextualState`.
      metrics: per-update metrics of `make_train`.
    """

    leader_return: jax.Array
    follower_return: jax.Array
    leader_policy: jax.Array
    reference: StackelbergValue
    samples_to_success: jax.Array
    state: ContextualState
    metrics: dict


def samples_to_success(metrics: dict, target: jax.Array, atol: float = 1e-6) -> jax.Array:
    """First ``samples`` at which ``leader_return >= target - atol`` (-1 if never).

    ``metrics`` leaves are ``[..., num_updates]``; ``target`` broadcasts against ``[...]``.
    """
    target = jnp.asarray(target)
    hit = metrics["leader_return"] >= (target - atol)[..., None]
    first = jnp.argmax(hit, axis=-1)
    samples = jnp.take_along_axis(metrics["samples"], first[..., None], -1)[..., 0]
    return jnp.where(jnp.any(hit, axis=-1), samples, -1)


@functools.lru_cache(maxsize=32)
def _compiled_train(structure, config: ContextualConfig):
    """One jitted ``train`` per game structure and config: games of equal shape share it."""
    a_l, a_f, memory, horizon, dtype = structure
    template = matrix_game(
        jnp.zeros((a_l, a_f, 2), dtype),
        episode_length=horizon,
        memory=memory != "none",
        small_memory=memory == "small",
    )
    return loop_jit(make_train(template, config))


def train_contextual(
    env: Environment, key: jax.Array, config: ContextualConfig | None = None
) -> ContextualResult:
    """Train the contextual design on ``env`` and evaluate the greedy leader exactly.

    Games of the same shape and ``config`` share one compiled ``train``. ``key``: a PRNG key
    (consumed). Inputs are validated when concrete; traced inputs are not.
    """
    key = as_key(key)
    config = ContextualConfig() if config is None else config
    params = _check_environment(env)
    structure = (
        params.num_leader_actions,
        params.num_follower_actions,
        params.memory,
        env.horizon,
        jnp.dtype(params.payoffs.dtype).name,
    )
    make_train(env, config)  # validates the configuration against this game
    state, metrics = _compiled_train(structure, config)(key, params)
    if config.follower == "quantal":
        reference = exact_stackelberg(env, follower="quantal", temperature=config.temperature)
    else:
        reference = exact_stackelberg(env)
    return ContextualResult(
        leader_return=metrics["leader_return"][-1],
        follower_return=metrics["follower_return"][-1],
        leader_policy=jnp.argmax(state.leader.logits[0], axis=-1),
        reference=reference,
        samples_to_success=samples_to_success(metrics, reference.leader_return),
        state=state,
        metrics=metrics,
    )

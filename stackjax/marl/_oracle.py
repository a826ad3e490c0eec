r"""Exact restricted-class Stackelberg values of matrix-game environments by enumeration.

The leader commits to a deterministic memory-1 policy, a table ``obs_L -> a_L`` (the class a
contextual follower can read completely through queries on every observation). The follower
responds in one of three classes:

- ``"stationary"``: the best deterministic table ``obs_F -> a_F`` (the follower of the
  benchmark sees its observation and the leader's answers, not the round number), found by
  enumerating all tables; ties go to the leader (strong Stackelberg).
- ``"markov"``: the best time-dependent response over the full state (round, previous joint
  action), by backward induction over the follower's MDP induced by the leader's table; ties
  are split uniformly (`stackjax.discrete.soft_response` at temperature 0).
- ``"quantal"``: the entropy-regularized response at temperature :math:`\tau > 0` over the same
  MDP (`stackjax.discrete.soft_backward`), i.e. the logit follower.

Returns are the expected undiscounted sums over the episode, offsets included, computed exactly
by propagating the state distribution (`stackjax.discrete.forward_flow`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from stackjax.discrete._env import Environment
from stackjax.discrete._response import forward_flow, soft_backward

from ._games import MatrixGameParams, enumeration_size

__all__ = [
    "FOLLOWER_CLASSES",
    "StackelbergValue",
    "deterministic_tables",
    "exact_stackelberg",
    "policy_returns",
]

FOLLOWER_CLASSES = ("stationary", "markov", "quantal")
_MAX_ENUMERATION = 2**22


class StackelbergValue(struct.PyTreeNode):
    """Restricted-class Stackelberg equilibrium of a matrix-game environment.

    Attributes:
      leader_return: [] leader's expected episode return (offsets included).
      follower_return: [] follower's expected episode return.
      leader_policy: ``[O_L]`` int, the leader's optimal table ``obs_L -> a_L``.
      follower_policy: ``[H, S, A_F]`` the follower's response to it, per round and state
        (one-hot for the ``"stationary"`` class).
      leader_values: ``[N_L]`` the leader's return against the follower's response, for every
        leader table of `deterministic_tables` (the landscape the leader optimizes).
    """

    leader_return: jax.Array
    follower_return: jax.Array
    leader_policy: jax.Array
    follower_policy: jax.Array
    leader_values: jax.Array


def deterministic_tables(num_observations: int, num_actions: int) -> jax.Array:
    """All ``num_actions ** num_observations`` tables ``obs -> action``, ``[N, O]`` int.

    Table ``n`` has action ``(n // num_actions**o) % num_actions`` at observation ``o``.
    """
    n = np.arange(num_actions**num_observations)[:, None]
    return jnp.asarray((n // num_actions ** np.arange(num_observations)) % num_actions, jnp.int32)


def _joint_kernel(params: MatrixGameParams, dtype) -> jax.Array:
    """``[S, J, S]`` kernel over joint actions ``j = a_L + A_L a_F`` (next state ``1 + j``)."""
    num_joint = params.num_leader_actions * params.num_follower_actions
    kernel = jax.nn.one_hot(1 + jnp.arange(num_joint), params.num_states, dtype=dtype)
    return jnp.broadcast_to(kernel[None], (params.num_states, num_joint, params.num_states))


def policy_returns(
    params: MatrixGameParams, horizon: int, leader_policy: jax.Array, follower_policy: jax.Array
) -> jax.Array:
    """Exact expected episode returns ``[2]`` (leader, follower) of two state policies.

    Args:
      params: the game.
      horizon: rounds per episode.
      leader_policy: ``[H, S, A_L]`` probabilities per round and state.
      follower_policy: ``[H, S, A_F]`` probabilities per round and state.
    """
    dtype = params.payoffs.dtype
    a_l, a_f = params.num_leader_actions, params.num_follower_actions
    # Joint action j = a_L + A_L a_F, so a_L is the fast index.
    joint = (follower_policy[..., :, None] * leader_policy[..., None, :]).reshape(
        horizon, params.num_states, a_l * a_f
    )
    rewards = (jnp.swapaxes(params.payoffs, 0, 1) + params.reward_offset).reshape(a_l * a_f, 2)
    initial = jax.nn.one_hot(0, params.num_states, dtype=dtype)
    kernel = _joint_kernel(params, dtype)
    flow = forward_flow(initial, joint, lambda h: kernel)[:-1]  # [H, S]
    return jnp.einsum("hs,hsj,jk->k", flow, joint, rewards)


def _state_policy(params: MatrixGameParams, horizon: int, table: jax.Array, agent: int, n: int):
    """A deterministic observation table as ``[H, S, n]`` one-hot state probabilities."""
    obs = jnp.asarray(params.observation_table()[:, agent])
    probs = jax.nn.one_hot(table[obs], n, dtype=params.payoffs.dtype)
    return jnp.broadcast_to(probs[None], (horizon, *probs.shape))


def _follower_mdp(params: MatrixGameParams, horizon: int, leader_table: jax.Array):
    """Reward ``[H, S, A_F]`` and kernel ``[S, A_F, S]`` the follower faces under a leader table."""
    a_l, a_f = params.num_leader_actions, params.num_follower_actions
    leader_action = leader_table[jnp.asarray(params.observation_table()[:, 0])]  # [S]
    reward = params.payoffs[leader_action, :, 1] + params.reward_offset  # [S, A_F]
    next_state = 1 + leader_action[:, None] + a_l * jnp.arange(a_f)[None, :]
    kernel = jax.nn.one_hot(next_state, params.num_states, dtype=params.payoffs.dtype)
    return jnp.broadcast_to(reward[None], (horizon, *reward.shape)), kernel


def _check_environment(env) -> MatrixGameParams:
    if not isinstance(env, Environment) or not isinstance(env.params, MatrixGameParams):
        raise TypeError(
            "`env` must be a matrix-game Environment (from matrix_game, iterated_matrix_game, "
            f"battle_of_the_sexes or random_matrix_game); got {type(env).__name__} with params "
            f"{type(getattr(env, 'params', None)).__name__}. Build the game with those functions."
        )
    if env.params.payoffs.ndim != 3:
        raise ValueError(
            f"`env` must hold one game (payoffs [A_L, A_F, 2]); got payoffs of shape "
            f"{tuple(env.params.payoffs.shape)}. Call exact_stackelberg per game or under vmap."
        )
    return env.params


def check_follower_class(follower: str, temperature) -> None:
    """Validates the follower class and its temperature (``ValueError`` naming the argument)."""
    if follower not in FOLLOWER_CLASSES:
        raise ValueError(
            f"`follower` must be one of {FOLLOWER_CLASSES}; got {follower!r}. "
            "Pick 'stationary' (best table), 'markov' (best time-dependent) or 'quantal'."
        )
    if follower == "quantal":
        if temperature is None or not np.isfinite(float(temperature)) or float(temperature) <= 0:
            raise ValueError(
                f"`temperature` must be a finite number > 0 for the quantal follower; got "
                f"{temperature!r}. Pass e.g. temperature=0.5, or follower='markov' for the "
                "best response."
            )
    elif temperature is not None:
        raise ValueError(
            f"`temperature` applies to follower='quantal' only; got temperature={temperature!r} "
            f"with follower={follower!r}. Drop it or use follower='quantal'."
        )


def exact_stackelberg(
    env: Environment, *, follower: str = "stationary", temperature: float | None = None
) -> StackelbergValue:
    """The leader-optimal deterministic memory-1 commitment and the follower's response.

    Args:
      env: a matrix-game environment (`matrix_game`, `iterated_matrix_game`, ...).
      follower: the follower's response class (module docstring).
      temperature: the quantal follower's :math:`\\tau > 0` (``follower="quantal"`` only).

    Returns:
      A `StackelbergValue`; for the prisoners' dilemma of `iterated_matrix_game` (10 rounds,
      offset -2.5) with the stationary follower, ``leader_return`` is 6.0.
    """
    params = _check_environment(env)
    check_follower_class(follower, temperature)
    horizon = env.horizon
    counts = params.observation_counts
    a_l, a_f = params.num_leader_actions, params.num_follower_actions
    size = enumeration_size(counts[:1], (a_l,))
    if follower == "stationary":
        size = enumeration_size(counts, (a_l, a_f))
    if size > _MAX_ENUMERATION:
        raise ValueError(
            f"`env` has {size} policy combinations to enumerate, more than {_MAX_ENUMERATION}; "
            f"got {a_l}x{a_f} actions with observation counts {counts}. Use fewer actions, "
            "memory=False, or follower='markov' (no enumeration of follower tables)."
        )
    tau = jnp.asarray(0.0 if temperature is None else temperature, params.payoffs.dtype)
    return _solve(params, horizon, follower, tau)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _solve(params: MatrixGameParams, horizon: int, follower: str, tau) -> StackelbergValue:
    counts = params.observation_counts
    a_l, a_f = params.num_leader_actions, params.num_follower_actions
    leader_tables = deterministic_tables(counts[0], a_l)
    leader_probs = jax.vmap(lambda t: _state_policy(params, horizon, t, 0, a_l))(leader_tables)
    if follower == "stationary":
        follower_tables = deterministic_tables(counts[1], a_f)
        follower_probs = jax.vmap(lambda t: _state_policy(params, horizon, t, 1, a_f))(
            follower_tables
        )
        returns = jax.vmap(
            lambda lp: jax.vmap(lambda fp: policy_returns(params, horizon, lp, fp))(follower_probs)
        )(leader_probs)  # [N_L, N_F, 2]
        best = jnp.max(returns[..., 1], axis=1, keepdims=True)
        scale = 1.0 + jnp.abs(best)
        is_best = returns[..., 1] >= best - 1e-9 * scale
        leader_values = jnp.max(jnp.where(is_best, returns[..., 0], -jnp.inf), axis=1)
        response = jnp.argmax(jnp.where(is_best, returns[..., 0], -jnp.inf), axis=1)
        i = jnp.argmax(leader_values)
        value = returns[i, response[i]]
        follower_policy = follower_probs[response[i]]
    else:

        def respond(table, probs):
            reward, kernel = _follower_mdp(params, horizon, table)
            policy, _, _ = soft_backward(reward, lambda h: kernel, tau)
            return policy, policy_returns(params, horizon, probs, policy)

        responses, returns = jax.vmap(respond)(leader_tables, leader_probs)
        leader_values = returns[:, 0]
        i = jnp.argmax(leader_values)
        value = returns[i]
        follower_policy = responses[i]
    return StackelbergValue(
        leader_return=value[0],
        follower_return=value[1],
        leader_policy=leader_tables[i],
        follower_policy=follower_policy,
        leader_values=leader_values,
    )

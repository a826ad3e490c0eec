r"""Finite-horizon mean-field games with an optional leader (MFGLib's conventions).

Time steps are :math:`t = 0, \dots, T` (``horizon = T + 1`` decisions). The population is
described by its *joint* state-action distribution :math:`L_t(s, a)` (MFGLib's mean field);
rewards and kernels are pure functions of ``(params, t, L_t, leader)``:

.. math::

    r_t(s, a) = r(t, s, a, L_t, \omega), \qquad P_t(s' \mid s, a) = P(t, s, a, s', L_t, \omega).

The flow of a policy :math:`\pi` (MFGLib's ``mean_field_from_policy``) is
:math:`L_0 = \mu_0 \pi_0`, :math:`L_{t+1}(s', a') = \pi_{t+1}(a' | s') \sum_{s, a} L_t(s, a)
P_t(s' | s, a)`. A representative follower maximizes :math:`\mathbb{E} \sum_t r_t + \tau
\mathcal{H}(\pi_t)` against a fixed flow (soft backward induction of
`stackjax.discrete.soft_backward`; :math:`\tau = 0` is MFGLib's greedy best response). A
mean-field equilibrium is a policy that is a (soft) best response to its own flow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ..discrete._response import soft_backward
from ..discrete._validation import check_probability, check_shape, is_concrete

__all__ = [
    "MeanFieldGame",
    "best_response",
    "exploitability",
    "leader_objective",
    "make_mean_field_game",
    "mean_field",
    "policy_evaluation",
    "population",
    "rewards_and_kernels",
    "uniform_policy",
]

# (params, t [] int, joint [S, A], leader [K]) -> [S, A] rewards / [S, A, S] kernel / [] reward.
RewardFn = Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]


class MeanFieldGame(struct.PyTreeNode):
    """A finite mean-field game, optionally with a leader parameter vector.

    Build with `make_mean_field_game` or an environment constructor (`beach_bar`, ...).

    Attributes:
      initial: ``[S]`` initial state distribution ``mu_0``.
      params: pytree of the environment's constants (arrays; vmappable).
      temperature: [] the followers' entropy temperature ``tau >= 0`` (0: exact best
        responses, as in MFGLib).
      leader_init: ``[K]`` default leader parameters (``K = 0`` for a plain MFG).
      leader_lower, leader_upper: ``[K]`` box bounds of the leader parameters.
      reward_fn: ``(params, t, joint [S, A], leader [K]) -> [S, A]`` followers' rewards.
      transition_fn: ``(params, t, joint, leader) -> [S, A, S]`` kernels ``P(s' | s, a)``.
      leader_reward_fn: ``(params, t, joint, leader) -> []`` the leader's reward at step
        ``t``, or ``None`` for a game without a leader.
      horizon: number of decision steps ``T + 1``.
      state_shape, action_shape: MFGLib's (possibly multi-dimensional) ``S`` and ``A``;
        states and actions are flattened row-major.
      name: label.
    """

    initial: jax.Array
    params: Any
    temperature: jax.Array
    leader_init: jax.Array
    leader_lower: jax.Array
    leader_upper: jax.Array
    reward_fn: RewardFn = struct.field(pytree_node=False)
    transition_fn: RewardFn = struct.field(pytree_node=False)
    leader_reward_fn: RewardFn | None = struct.field(pytree_node=False, default=None)
    horizon: int = struct.field(pytree_node=False, default=1)
    state_shape: tuple[int, ...] = struct.field(pytree_node=False, default=())
    action_shape: tuple[int, ...] = struct.field(pytree_node=False, default=())
    name: str = struct.field(pytree_node=False, default="mean_field_game")

    @property
    def num_states(self) -> int:
        return int(np.prod(self.state_shape))

    @property
    def num_actions(self) -> int:
        return int(np.prod(self.action_shape))

    @property
    def leader_dim(self) -> int:
        return int(self.leader_init.shape[0])


def make_mean_field_game(
    *,
    initial,
    reward_fn: RewardFn,
    transition_fn: RewardFn,
    horizon: int,
    action_shape: tuple[int, ...] | int,
    state_shape: tuple[int, ...] | int | None = None,
    params: Any = None,
    temperature: float = 0.0,
    leader_reward_fn: RewardFn | None = None,
    leader_init=None,
    leader_lower=None,
    leader_upper=None,
    name: str = "mean_field_game",
    dtype=None,
) -> MeanFieldGame:
    """Validates the inputs and builds a `MeanFieldGame` (see its attributes).

    ``initial`` may have MFGLib's state shape; it is flattened. Raises ``ValueError`` for
    an ``initial`` that is not a distribution, a negative ``temperature``, a non-positive
    ``horizon`` or leader arrays of mismatched sizes.
    """
    dtype = dtype or jnp.result_type(float)
    initial = jnp.asarray(initial, dtype)
    if state_shape is None:
        state_shape = tuple(initial.shape)
    state_shape = (state_shape,) if isinstance(state_shape, int) else tuple(state_shape)
    action_shape = (action_shape,) if isinstance(action_shape, int) else tuple(action_shape)
    if int(np.prod(initial.shape)) != int(np.prod(state_shape)):
        raise ValueError(
            f"`initial` must hold one probability per state ({int(np.prod(state_shape))} for "
            f"state shape {state_shape}); got shape {tuple(initial.shape)}. Pass mu_0 over "
            "all states."
        )
    initial = initial.reshape(-1)
    check_probability(initial, "initial")
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(
            f"`horizon` must be a positive int (number of decision steps T + 1); got "
            f"{horizon!r}. Pass T + 1 for MFGLib's T."
        )
    temperature = jnp.asarray(temperature, dtype)
    check_shape(temperature, "temperature", ndim=0)
    if is_concrete(temperature) and not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(
            f"`temperature` must be finite and >= 0; got {float(temperature)}. Pass 0 for "
            "exact best responses or a positive entropy weight."
        )
    leader_init = jnp.zeros((0,), dtype) if leader_init is None else leader_init
    leader_init = jnp.atleast_1d(jnp.asarray(leader_init, dtype))
    check_shape(leader_init, "leader_init", ndim=1)
    k = leader_init.shape[0]
    lower = jnp.full((k,), -jnp.inf, dtype) if leader_lower is None else leader_lower
    upper = jnp.full((k,), jnp.inf, dtype) if leader_upper is None else leader_upper
    lower = jnp.broadcast_to(jnp.asarray(lower, dtype), (k,))
    upper = jnp.broadcast_to(jnp.asarray(upper, dtype), (k,))
    if k and is_concrete((lower, upper)) and not bool(np.all(np.asarray(lower) < upper)):
        raise ValueError(
            f"`leader_lower` must be below `leader_upper`; got {lower} and {upper}. Fix the "
            "bounds of the leader parameters."
        )
    if k and leader_reward_fn is None:
        raise ValueError(
            "`leader_reward_fn` is required when `leader_init` has entries; got None. Pass "
            "the leader's reward (params, t, joint, leader) -> []."
        )
    return MeanFieldGame(
        initial=initial,
        params=params,
        temperature=temperature,
        leader_init=leader_init,
        leader_lower=lower,
        leader_upper=upper,
        reward_fn=reward_fn,
        transition_fn=transition_fn,
        leader_reward_fn=leader_reward_fn,
        horizon=int(horizon),
        state_shape=state_shape,
        action_shape=action_shape,
        name=name,
    )


def _leader(game: MeanFieldGame, leader) -> jax.Array:
    """The leader parameters as a ``[K]`` array (the game's default when ``None``)."""
    if leader is None:
        return game.leader_init
    leader = jnp.asarray(leader, game.initial.dtype)
    if leader.ndim != 1 or leader.shape[0] != game.leader_dim:
        raise ValueError(
            f"`leader` must have shape ({game.leader_dim},) for {game.name}; got "
            f"{tuple(leader.shape)}. Pass one value per leader parameter (vmap for batches)."
        )
    return leader


def _check_policy(game: MeanFieldGame, policy) -> jax.Array:
    policy = jnp.asarray(policy, game.initial.dtype)
    shape = (game.horizon, game.num_states, game.num_actions)
    if policy.shape != shape:
        if int(np.prod(policy.shape)) == int(np.prod(shape)) and policy.shape[0] == shape[0]:
            policy = policy.reshape(shape)  # MFGLib's [T + 1, *S, *A] layout
        else:
            raise ValueError(
                f"`policy` must have shape {shape} ([horizon, states, actions]) or MFGLib's "
                f"[T + 1, *S, *A]; got {tuple(policy.shape)}. Build it for this game."
            )
    check_probability(policy, "policy", axis=-1)
    return policy


def uniform_policy(game: MeanFieldGame) -> jax.Array:
    """``[H, S, A]`` uniform policy (MFGLib's default initial policy)."""
    shape = (game.horizon, game.num_states, game.num_actions)
    return jnp.full(shape, 1.0 / game.num_actions, game.initial.dtype)


def mean_field(game: MeanFieldGame, policy: jax.Array, leader=None) -> jax.Array:
    """``[H, S, A]`` joint flow ``L_t`` of the population following ``policy``.

    The kernel at step ``t`` depends on ``L_t`` itself, so the recursion is its own scan
    (``discrete.forward_flow`` takes kernels fixed in advance).

    Args:
      game: the game.
      policy: ``[H, S, A]`` ``pi_t(a | s)``.
      leader: ``[K]`` leader parameters (default ``game.leader_init``).
    """
    policy = _check_policy(game, policy)
    leader = _leader(game, leader)
    return _flow(game, policy, leader)


def _flow(game: MeanFieldGame, policy: jax.Array, leader: jax.Array) -> jax.Array:
    joint0 = game.initial[:, None] * policy[0]

    def forward(joint, t):
        kernel = game.transition_fn(game.params, t, joint, leader)  # [S, A, S]
        mu_next = jnp.einsum("sa,sat->t", joint, kernel)
        joint_next = mu_next[:, None] * policy[t + 1]
        return joint_next, joint_next

    _, rest = jax.lax.scan(forward, joint0, jnp.arange(game.horizon - 1))
    return jnp.concatenate([joint0[None], rest], axis=0)


def population(joint: jax.Array) -> jax.Array:
    """``[H, S]`` state distributions ``mu_t`` of a joint flow ``[H, S, A]``."""
    return jnp.sum(joint, axis=-1)


def rewards_and_kernels(
    game: MeanFieldGame, joint: jax.Array, leader=None
) -> tuple[jax.Array, jax.Array]:
    """Rewards ``[H, S, A]`` and kernels ``[H, S, A, S]`` along a joint flow ``[H, S, A]``."""
    leader = _leader(game, leader)
    steps = jnp.arange(game.horizon)
    rewards = jax.vmap(game.reward_fn, in_axes=(None, 0, 0, None))(
        game.params, steps, joint, leader
    )
    kernels = jax.vmap(game.transition_fn, in_axes=(None, 0, 0, None))(
        game.params, steps, joint, leader
    )
    return rewards, kernels


def best_response(
    game: MeanFieldGame, joint: jax.Array, leader=None, temperature=None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Soft best response of one follower to a fixed flow (MFGLib's greedy at ``tau = 0``).

    Args:
      game: the game.
      joint: ``[H, S, A]`` the population's joint flow.
      leader: ``[K]`` leader parameters.
      temperature: [] ``tau`` (default ``game.temperature``).

    Returns:
      ``(policy [H, S, A], q [H, S, A], values [H + 1, S])``; ``q`` is MFGLib's optimal
      Q-function at ``tau = 0`` and the soft one otherwise.
    """
    tau = game.temperature if temperature is None else jnp.asarray(temperature)
    rewards, kernels = rewards_and_kernels(game, joint, leader)
    return soft_backward(rewards, kernels, tau)


def policy_evaluation(
    game: MeanFieldGame, policy: jax.Array, joint: jax.Array, leader=None, temperature=None
) -> tuple[jax.Array, jax.Array]:
    r"""Value of ``policy`` for one follower against a fixed flow, entropy included.

    :math:`Q_t = r_t + P_t V_{t+1}`, :math:`V_t(s) = \sum_a \pi_t(a|s) (Q_t(s, a) - \tau
    \log \pi_t(a|s))`, :math:`V_H = 0` (MFGLib's ``QFn.for_policy`` at ``tau = 0``).

    Returns:
      ``(q [H, S, A], values [H + 1, S])``.
    """
    tau = game.temperature if temperature is None else jnp.asarray(temperature)
    rewards, kernels = rewards_and_kernels(game, joint, leader)

    def backward(v_next, t):
        q = rewards[t] + kernels[t] @ v_next
        pi = policy[t]
        log_pi = jnp.log(jnp.where(pi > 0, pi, 1.0))
        v = jnp.sum(pi * (q - tau * log_pi), axis=-1)
        return v, (q, v)

    v_terminal = jnp.zeros((game.num_states,), rewards.dtype)
    _, (q, values) = jax.lax.scan(backward, v_terminal, jnp.arange(game.horizon), reverse=True)
    return q, jnp.concatenate([values, v_terminal[None]], axis=0)


def exploitability(game: MeanFieldGame, policy, leader=None, temperature=None) -> jax.Array:
    r"""Exploitability of ``policy``: what one follower gains by deviating from it.

    :math:`\sum_s \mu_0(s) (V^*_0(s) - V^\pi_0(s))` with both values computed against the
    flow of ``policy`` (MFGLib's ``exploitability_score`` at ``tau = 0``; with ``tau > 0``
    the entropy-regularized one, zero exactly at the regularized equilibrium).
    """
    policy = _check_policy(game, policy)
    leader = _leader(game, leader)
    joint = _flow(game, policy, leader)
    _, _, v_star = best_response(game, joint, leader, temperature)
    _, v_pi = policy_evaluation(game, policy, joint, leader, temperature)
    return game.initial @ (v_star[0] - v_pi[0])


def leader_objective(game: MeanFieldGame, joint: jax.Array, leader=None) -> jax.Array:
    r"""The leader's total reward :math:`\sum_t r^L(t, L_t, \omega)` along a joint flow."""
    if game.leader_reward_fn is None:
        raise ValueError(
            f"{game.name} has no leader (`leader_reward_fn` is None); got a request for the "
            "leader's objective. Use a Stackelberg game such as left_right_toll."
        )
    leader = _leader(game, leader)
    steps = jnp.arange(game.horizon)
    per_step = jax.vmap(game.leader_reward_fn, in_axes=(None, 0, 0, None))(
        game.params, steps, joint, leader
    )
    return jnp.sum(per_step)

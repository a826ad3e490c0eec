r"""Stackelberg mean-field games: the exact oracle by implicit differentiation.

A leader with parameters :math:`\omega \in \mathbb{R}^K` (box-bounded) enters the followers'
rewards and/or kernels; the followers play the entropy-regularized MFE :math:`\pi^*(\omega)`,
the fixed point of :math:`G(\pi, \omega) = \mathrm{BR}_\tau(L(\pi, \omega), \omega)`; the
leader maximizes :math:`\Phi(\omega) = J(L(\pi^*(\omega), \omega), \omega)`. By the implicit
function theorem

.. math::

    \nabla \Phi = \partial_\omega J + \partial_\omega G^\top (I - \partial_\pi G)^{-\top}
    \partial_\pi J^{\mathrm{tot}},

implemented as a ``jax.custom_vjp`` on the fixed point (one dense transposed solve). At
:math:`\tau = 0` the response is not differentiable; the oracle then follows the logit
equilibrium down a temperature ladder to ``temperature_floor`` (the exact-best-response
limit, reached to :math:`O(\tau_{floor})`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ..discrete._validation import as_key, is_concrete
from ._game import (
    MeanFieldGame,
    _flow,
    _leader,
    exploitability,
    leader_objective,
    make_mean_field_game,
    uniform_policy,
)
from ._solvers import _newton, equilibrium_map, fictitious_play

__all__ = [
    "StackelbergMFGResult",
    "equilibrium_policy",
    "left_right_toll",
    "stackelberg_equilibrium",
    "stackelberg_objective",
]


# ---------------------------------------------------------------- the toll game


def _toll_reward(params, t, joint, leader):
    mu = joint.sum(-1)
    per_state = jnp.stack([jnp.zeros_like(mu[0]), -mu[1], -2.0 * mu[2] - leader[0]])
    return jnp.broadcast_to(per_state[:, None], joint.shape)


def _toll_kernel(params, t, joint, leader):
    return params["kernel"].astype(joint.dtype)


def _toll_revenue(params, t, joint, leader):
    return leader[0] * jnp.sum(joint[2])


def left_right_toll(temperature: float = 0.0, *, max_toll: float = 2.0) -> MeanFieldGame:
    r"""The left-right game with a toll :math:`\theta` on "right" levied by a leader.

    MFGLib's left-right (``T = 1``; start, left, right) where followers pay :math:`\mu_L` at
    left and :math:`2 \mu_R + \theta` at right; the leader earns :math:`\theta \mu_R`. With
    exact best responses :math:`\mu_R = (1 - \theta) / 3`, so :math:`\theta^* = 1/2`,
    :math:`\mu_R = 1/6`, revenue :math:`1/12`; with logit followers
    :math:`\mu_R = \sigma((1 - 3 \mu_R - \theta) / \tau)`.

    Args:
      temperature: the followers' logit temperature ``tau >= 0`` (0: exact best responses).
      max_toll: upper bound of ``theta`` (lower bound 0).
    """
    kernel = np.zeros((3, 2, 3))
    kernel[:, 0, 1] = kernel[:, 1, 2] = 1.0
    return make_mean_field_game(
        initial=(1.0, 0.0, 0.0),
        params={"kernel": jnp.asarray(kernel)},
        reward_fn=_toll_reward,
        transition_fn=_toll_kernel,
        leader_reward_fn=_toll_revenue,
        horizon=2,
        action_shape=(2,),
        temperature=temperature,
        leader_init=[0.25],
        leader_lower=[0.0],
        leader_upper=[max_toll],
        name="left_right_toll",
    )


# ---------------------------------------------------------------- the implicit fixed point


class _Settings(struct.PyTreeNode):
    num_rungs: int = struct.field(pytree_node=False)
    temperature_floor: float = struct.field(pytree_node=False)
    num_warmup: int = struct.field(pytree_node=False)
    num_newton: int = struct.field(pytree_node=False)


_LADDER_START, _LADDER_RATIO = 0.5, 0.7


def _settings(game: MeanFieldGame, temperature_floor: float, num_newton: int) -> _Settings:
    """Static solver settings; the ladder is as short as a concrete temperature allows."""
    if not temperature_floor > 0:
        raise ValueError(
            f"`temperature_floor` must be > 0; got {temperature_floor}. It stands for exact "
            "best responses (e.g. 1e-9)."
        )
    lowest = temperature_floor
    if is_concrete(game.temperature) and float(game.temperature) > 0:
        lowest = max(float(game.temperature), temperature_floor)
    rungs = 1
    if lowest < _LADDER_START:
        rungs += math.ceil(math.log(lowest / _LADDER_START) / math.log(_LADDER_RATIO))
    return _Settings(
        num_rungs=rungs,
        temperature_floor=float(temperature_floor),
        num_warmup=100,
        num_newton=num_newton,
    )


def _target_temperature(game, settings):
    tau = game.temperature
    return jnp.where(
        tau > 0, jnp.maximum(tau, settings.temperature_floor), settings.temperature_floor
    )


def _solve(game: MeanFieldGame, settings: _Settings, leader, policy):
    """Warm-started regularized MFE down the temperature ladder (damped fixed point, then
    Newton on every rung ``max(tau, 0.5 * 0.7^k)``)."""
    target = _target_temperature(game, settings).astype(policy.dtype)
    rungs = jnp.maximum(target, _LADDER_START * _LADDER_RATIO ** jnp.arange(settings.num_rungs))
    first = game.replace(temperature=rungs[0])
    policy = fictitious_play(
        first, leader, num_iterations=settings.num_warmup, alpha=0.2, policy_init=policy
    ).policy

    def rung(policy, tau):
        return _newton(game.replace(temperature=tau), leader, policy, settings.num_newton), None

    policy, _ = jax.lax.scan(rung, policy, rungs)
    return policy


def _final_game(game, settings):
    return game.replace(temperature=_target_temperature(game, settings).astype(game.initial.dtype))


def _make_equilibrium(game: MeanFieldGame, settings: _Settings):
    final = _final_game(game, settings)

    @jax.custom_vjp
    def solve(leader, policy_init):
        return _solve(game, settings, leader, policy_init)

    def fwd(leader, policy_init):
        policy = _solve(game, settings, leader, policy_init)
        return policy, (leader, policy)

    def bwd(res, cotangent):
        leader, policy = res
        shape = policy.shape
        flat = policy.reshape(-1)
        g_pi = jax.jacfwd(lambda p: equilibrium_map(final, p.reshape(shape), leader).reshape(-1))(
            flat
        )
        eye = jnp.eye(flat.size, dtype=flat.dtype)
        u = jnp.linalg.solve((eye - g_pi).T, cotangent.reshape(-1))
        _, vjp_leader = jax.vjp(lambda w: equilibrium_map(final, policy, w), leader)
        (grad_leader,) = vjp_leader(u.reshape(shape))
        return grad_leader, jnp.zeros_like(policy)

    solve.defvjp(fwd, bwd)
    return solve


def equilibrium_policy(
    game: MeanFieldGame,
    leader=None,
    policy_init=None,
    *,
    temperature_floor: float = 1e-9,
    num_newton: int = 4,
) -> jax.Array:
    """``[H, S, A]`` the followers' regularized MFE policy, differentiable in ``leader``.

    Reverse-mode derivatives use the implicit function theorem (module docstring), not the
    solver's iterations. ``policy_init`` warm-starts the solve (no derivative).
    """
    leader = _leader(game, leader)
    policy_init = uniform_policy(game) if policy_init is None else policy_init
    settings = _settings(game, temperature_floor, num_newton)
    return _make_equilibrium(game, settings)(leader, policy_init)


def stackelberg_objective(
    game: MeanFieldGame, leader=None, policy_init=None, **options
) -> jax.Array:
    r"""The leader's objective :math:`\Phi(\omega)` at the followers' MFE (differentiable)."""
    leader = _leader(game, leader)
    policy = equilibrium_policy(game, leader, policy_init, **options)
    return leader_objective(game, _flow(game, policy, leader), leader)


# ---------------------------------------------------------------- the oracle


class StackelbergMFGResult(struct.PyTreeNode):
    """The exact Stackelberg mean-field equilibrium found by `stackelberg_equilibrium`.

    Attributes:
      leader_params: ``[K]`` the leader's optimal parameters.
      leader_value: [] the leader's objective there.
      policy: ``[H, S, A]`` the followers' equilibrium policy.
      joint: ``[H, S, A]`` its joint flow.
      population: ``[H, S]`` its state distributions.
      exploitability: [] the followers' exploitability at the returned point (regularized
        when ``game.temperature > 0``, MFGLib's otherwise).
      gradient_norm: [] norm of the projected gradient of the objective there.
      restart_values: ``[R]`` the objective reached by every restart.
    """

    leader_params: jax.Array
    leader_value: jax.Array
    policy: jax.Array
    joint: jax.Array
    population: jax.Array
    exploitability: jax.Array
    gradient_norm: jax.Array
    restart_values: jax.Array


def stackelberg_equilibrium(
    game: MeanFieldGame,
    key: jax.Array,
    *,
    num_restarts: int = 4,
    num_steps: int = 100,
    learning_rate: float = 1.0,
    temperature_floor: float = 1e-9,
    num_newton: int = 4,
) -> StackelbergMFGResult:
    """Exact Stackelberg equilibrium: projected gradient ascent on ``Phi`` with restarts.

    The first restart starts at ``game.leader_init``, the others uniformly in the leader's
    box (infinite bounds: the default parameters plus a standard normal); each ascends the
    implicit gradient for ``num_steps`` (the followers' MFE warm-started from the previous
    step), and the best restart wins.

    Args:
      game: a game with a leader (``leader_reward_fn``).
      key: PRNG key, consumed for the restarts.
      num_restarts: static number of restarts.
      num_steps: static ascent steps per restart.
      learning_rate: ascent step size.
      temperature_floor: the temperature standing for exact best responses when
        ``game.temperature == 0``.
      num_newton: Newton steps per rung of the temperature ladder.

    Inputs are validated when concrete; traced inputs are not.

    Returns:
      `StackelbergMFGResult`.
    """
    key = as_key(key)
    if game.leader_reward_fn is None or game.leader_dim == 0:
        raise ValueError(
            f"`game` ({game.name}) has no leader parameters; got leader_dim = {game.leader_dim}. "
            "Build a Stackelberg game (e.g. left_right_toll) or pass leader_init and "
            "leader_reward_fn."
        )
    for name, value in (("num_restarts", num_restarts), ("num_steps", num_steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
    settings = _settings(game, temperature_floor, num_newton)
    return _oracle(game, key, settings, num_restarts, num_steps, jnp.asarray(learning_rate))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _oracle(game, key, settings, num_restarts, num_steps, learning_rate):
    solve = _make_equilibrium(game, settings)
    lower, upper = game.leader_lower, game.leader_upper
    finite = jnp.isfinite(lower) & jnp.isfinite(upper)
    k = game.leader_dim
    uniform = jax.random.uniform(key, (num_restarts, k), game.initial.dtype)
    normal = jax.random.normal(jax.random.fold_in(key, 1), (num_restarts, k), game.initial.dtype)
    span = jnp.where(finite, upper - lower, 1.0)
    starts = jnp.where(
        finite[None],
        jnp.where(finite, lower, 0.0)[None] + uniform * span[None],
        game.leader_init[None] + normal,
    )
    starts = starts.at[0].set(game.leader_init)  # the default parameters are always tried

    def objective(leader, policy_init):
        policy = solve(leader, policy_init)
        value = leader_objective(game, _flow(game, policy, leader), leader)
        return value, policy

    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def ascend(start):
        def step(carry, _):
            leader, policy = carry
            (value, policy), grad = grad_fn(leader, policy)
            leader = jnp.clip(leader + learning_rate * grad, lower, upper)
            return (leader, policy), value

        carry = (start, uniform_policy(game))
        (leader, policy), _ = jax.lax.scan(step, carry, None, length=num_steps)
        (value, policy), grad = grad_fn(leader, policy)
        projected = jnp.clip(leader + grad, lower, upper) - leader
        return leader, value, policy, jnp.linalg.norm(projected)

    leaders, values, policies, grad_norms = jax.vmap(ascend)(starts)
    best = jnp.argmax(values)
    leader, policy = leaders[best], policies[best]
    joint = _flow(game, policy, leader)
    return StackelbergMFGResult(
        leader_params=leader,
        leader_value=values[best],
        policy=policy,
        joint=joint,
        population=joint.sum(-1),
        exploitability=exploitability(game, policy, leader),
        gradient_norm=grad_norms[best],
        restart_values=values,
    )

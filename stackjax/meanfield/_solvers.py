r"""Mean-field equilibrium (MFE) solvers, each one ``lax.scan`` (jit- and vmap-able).

Named after MFGLib's algorithms and identical to them at temperature 0:

- `fictitious_play` (MFGLib ``FictitiousPlay(alpha)``): mixes the best response to the
  current flow into the policy, weighted by the state distributions,
  :math:`\pi \leftarrow \frac{(1 - \alpha_n) \mu \pi + \alpha_n \mu^{br} \pi^{br}}{(1 -
  \alpha_n) \mu + \alpha_n \mu^{br}}`, :math:`\alpha_n = 1 / (n + 2)` when ``alpha = 0``.
- `fixed_point`: the damped fixed-point iteration, i.e. fictitious play with a constant
  ``alpha = damping`` (``damping = 1`` is the plain iteration :math:`\pi \leftarrow
  \mathrm{BR}(L(\pi))`).
- `online_mirror_descent` (MFGLib ``OnlineMirrorDescent(alpha)``): :math:`y \leftarrow (1 -
  \alpha \tau) y + \alpha Q^{\pi}`, :math:`\pi = \mathrm{softmax}(y)` (MFGLib's rule at
  :math:`\tau = 0`; with :math:`\tau > 0` its fixed point is the regularized MFE).

With ``game.temperature > 0`` the best responses are soft and exploitability is the
entropy-regularized one. `newton_equilibrium` polishes any of them to machine precision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from ..discrete._validation import is_concrete
from ._game import (
    MeanFieldGame,
    _check_policy,
    _flow,
    _leader,
    best_response,
    exploitability,
    policy_evaluation,
    uniform_policy,
)

__all__ = [
    "MFESolution",
    "fictitious_play",
    "fixed_point",
    "newton_equilibrium",
    "online_mirror_descent",
]


class MFESolution(struct.PyTreeNode):
    """Result of an MFE solver.

    Attributes:
      policy: ``[H, S, A]`` the last iterate.
      joint: ``[H, S, A]`` its flow.
      exploitability: ``[num_iterations + 1]`` exploitability of every iterate, the initial
        policy first (MFGLib's ``expls``).
    """

    policy: jax.Array
    joint: jax.Array
    exploitability: jax.Array


def _start(game, leader, policy_init):
    leader = _leader(game, leader)
    policy = uniform_policy(game) if policy_init is None else _check_policy(game, policy_init)
    return leader, policy


def _check_iterations(num_iterations):
    if not isinstance(num_iterations, int) or num_iterations < 0:
        raise ValueError(
            f"`num_iterations` must be a non-negative int; got {num_iterations!r}. It is static "
            "(the scan length)."
        )


def _fp_step(game, leader, policy, alpha):
    joint = _flow(game, policy, leader)
    policy_br, _, _ = best_response(game, joint, leader)
    joint_br = _flow(game, policy_br, leader)
    mu = joint.sum(-1, keepdims=True)
    mu_br = joint_br.sum(-1, keepdims=True)
    numer = (1 - alpha) * mu * policy + alpha * mu_br * policy_br
    denom = (1 - alpha) * mu + alpha * mu_br
    safe = jnp.where(denom > 0, denom, 1.0)
    return jnp.where(denom > 0, numer / safe, 1.0 / game.num_actions)


def _run(game, leader, carry, policy_of, step, num_iterations):
    def body(carry, i):
        carry = step(carry, i)
        return carry, exploitability(game, policy_of(carry), leader)

    initial = exploitability(game, policy_of(carry), leader)
    carry, expl = jax.lax.scan(body, carry, jnp.arange(num_iterations))
    policy = policy_of(carry)
    return MFESolution(
        policy=policy,
        joint=_flow(game, policy, leader),
        exploitability=jnp.concatenate([initial[None], expl]),
    )


def fictitious_play(
    game: MeanFieldGame,
    leader=None,
    *,
    num_iterations: int = 100,
    alpha: float = 0.0,
    policy_init=None,
) -> MFESolution:
    """Damped fictitious play (MFGLib ``FictitiousPlay``; module docstring).

    Args:
      game: the game (its ``temperature`` sets the best response).
      leader: ``[K]`` leader parameters (default ``game.leader_init``).
      num_iterations: static number of iterations.
      alpha: mixing weight in ``[0, 1]``; 0 uses ``1 / (n + 2)`` at iteration ``n``.
      policy_init: ``[H, S, A]`` initial policy (default uniform).

    Returns:
      `MFESolution`.
    """
    _check_iterations(num_iterations)
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1]; got {alpha}. Pass 0 for 1/(n + 2) steps.")
    leader, policy = _start(game, leader, policy_init)
    alpha = jnp.asarray(alpha, policy.dtype)

    def step(policy, i):
        a = jnp.where(alpha > 0, alpha, 1.0 / (i + 2.0))
        return _fp_step(game, leader, policy, a)

    return _run(game, leader, policy, lambda p: p, step, num_iterations)


def fixed_point(
    game: MeanFieldGame,
    leader=None,
    *,
    num_iterations: int = 100,
    damping: float = 1.0,
    policy_init=None,
) -> MFESolution:
    """Damped fixed-point iteration ``pi <- mix(pi, BR(L(pi)), damping)`` (module docstring).

    ``damping`` in ``(0, 1]``; 1 is the undamped iteration (MFGLib ``FictitiousPlay(1)``).
    """
    if not 0.0 < float(damping) <= 1.0:
        raise ValueError(f"`damping` must be in (0, 1]; got {damping}. Pass 1 for no damping.")
    return fictitious_play(
        game, leader, num_iterations=num_iterations, alpha=damping, policy_init=policy_init
    )


def online_mirror_descent(
    game: MeanFieldGame,
    leader=None,
    *,
    num_iterations: int = 100,
    alpha: float = 1.0,
    policy_init=None,
) -> MFESolution:
    """Online mirror descent (MFGLib ``OnlineMirrorDescent``; module docstring).

    Args:
      alpha: learning rate ``> 0`` (with ``tau > 0`` also ``alpha tau <= 1``).
    """
    _check_iterations(num_iterations)
    if not float(alpha) > 0:
        raise ValueError(f"`alpha` must be > 0; got {alpha}. Pass a positive learning rate.")
    leader, policy = _start(game, leader, policy_init)
    tau = game.temperature
    # MFGLib starts from y = 0 whatever pi_0 is; log pi_0 keeps a non-uniform start.
    y0 = jnp.zeros_like(policy) if policy_init is None else jnp.log(jnp.maximum(policy, 1e-300))

    def step(carry, i):
        y, policy = carry
        joint = _flow(game, policy, leader)
        q, _ = policy_evaluation(game, policy, joint, leader)
        y = (1.0 - alpha * tau) * y + alpha * q
        return y, jax.nn.softmax(y, axis=-1)

    return _run(game, leader, (y0, policy), lambda c: c[1], step, num_iterations)


def equilibrium_map(game: MeanFieldGame, policy: jax.Array, leader: jax.Array) -> jax.Array:
    """``G(pi, omega) = BR_tau(L(pi, omega), omega)``: an MFE is a fixed point of ``G``."""
    return best_response(game, _flow(game, policy, leader), leader)[0]


def newton_equilibrium(
    game: MeanFieldGame,
    leader=None,
    *,
    policy_init=None,
    num_warmup: int = 200,
    damping: float = 0.2,
    num_newton: int = 12,
) -> jax.Array:
    """Regularized MFE to machine precision: damped fixed point, then Newton on ``pi - G(pi)``.

    Needs ``game.temperature > 0`` (``G`` is then smooth). The Newton system is dense,
    ``(H S A)^2``: meant for the small games of the Stackelberg oracle.

    Returns:
      ``[H, S, A]`` the equilibrium policy.
    """
    if is_concrete(game.temperature) and not float(game.temperature) > 0:
        raise ValueError(
            f"`game.temperature` must be > 0 for newton_equilibrium; got "
            f"{float(game.temperature)}. Use fictitious_play for exact best responses."
        )
    leader, policy = _start(game, leader, policy_init)
    policy = fictitious_play(
        game, leader, num_iterations=num_warmup, alpha=damping, policy_init=policy
    ).policy
    return _newton(game, leader, policy, num_newton)


def _newton(game, leader, policy, num_newton, num_halvings: int = 12):
    """Newton steps on ``pi - G(pi)`` with a backtracking line search on the residual norm."""
    shape = policy.shape

    def project(flat):
        # Keep a probability vector: clip tiny negatives, renormalize per state.
        p = jnp.clip(flat.reshape(shape), 0.0, None)
        return (p / jnp.sum(p, axis=-1, keepdims=True)).reshape(-1)

    def residual(flat):
        return flat - equilibrium_map(game, flat.reshape(shape), leader).reshape(-1)

    steps = 0.5 ** jnp.arange(num_halvings, dtype=policy.dtype)

    def body(flat, _):
        r = residual(flat)
        direction = jnp.linalg.solve(jax.jacfwd(residual)(flat), r)
        candidates = jax.vmap(lambda a: project(flat - a * direction))(steps)
        norms = jax.vmap(lambda c: jnp.linalg.norm(residual(c)))(candidates)
        better = norms < jnp.linalg.norm(r)
        first = jnp.argmax(better)  # the longest step that reduces the residual
        return jnp.where(jnp.any(better), candidates[first], flat), None

    flat, _ = jax.lax.scan(body, policy.reshape(-1), None, length=num_newton)
    return flat.reshape(shape)

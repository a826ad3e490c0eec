r"""The soft (quantal, entropy-regularized) response and the finite-horizon recursions.

Every discrete-time learner of stackjax uses these: the quantal follower of a normal-form or
Markov game, the contextual follower of `stackjax.marl`, the mean-field population of
`stackjax.meanfield`. Rewards are maximized. With temperature :math:`\tau > 0`,

.. math::

    \pi(a) = \frac{\exp(q(a) / \tau)}{\sum_b \exp(q(b) / \tau)}, \qquad
    V = \tau \log \sum_a \exp(q(a) / \tau)
      = \max_\pi \Big( \sum_a \pi(a) q(a) + \tau \mathcal{H}(\pi) \Big),

and at :math:`\tau = 0` the exact best response (uniform over the maximizers, so that ties
are split symmetrically) with :math:`V = \max_a q(a)`.

Finite-horizon soft Bellman recursion (one agent, time-indexed reward and kernel; a
mean-field game feeds the reward and kernel of a fixed population flow):

.. math::

    V_H = 0, \quad Q_h(s, a) = r_h(s, a) + \sum_{s'} P_h(s' | s, a) V_{h+1}(s'), \quad
    (\pi_h(\cdot | s), V_h(s)) = \mathrm{soft}(Q_h(s, \cdot), \tau).

Forward flow of a state distribution under a policy: :math:`\mu_{h+1}(s') = \sum_{s, a}
\mu_h(s) \pi_h(a | s) P_h(s' | s, a)`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._validation import check_positive, check_probability, is_concrete

__all__ = ["forward_flow", "soft_backward", "soft_response"]


def _check_temperature(temperature) -> None:
    """A concrete ``temperature`` is finite and ``>= 0``."""
    check_positive(
        temperature,
        "temperature",
        allow_zero=True,
        fix="Fix: pass a temperature >= 0 (0 gives the exact best response).",
    )


def _check_no_nan(x, name: str) -> None:
    """A concrete ``x`` holds no NaN (infinite entries are allowed: ``-inf`` masks actions)."""
    if is_concrete(x) and bool(np.any(np.isnan(np.asarray(x)))):
        raise ValueError(
            f"`{name}` must not contain NaN, got NaN entries. Fix: replace the NaN entries of "
            f"`{name}` (use -inf to exclude an action)."
        )


def soft_response(
    q: jax.Array, temperature: jax.Array, axis: int = -1
) -> tuple[jax.Array, jax.Array]:
    r"""Soft (logit) response to action values ``q`` and its soft value.

    Inputs are validated when concrete; traced inputs are not.

    Args:
      q: ``[..., A]`` action values (rewards: larger is better); ``axis`` selects the action
        axis. No NaN.
      temperature: [] ``tau >= 0`` (may be traced); 0 gives the exact best response.
      axis: the action axis of ``q``.

    Returns:
      ``(policy, value)``: ``policy`` of ``q``'s shape summing to 1 along ``axis``;
      ``value`` with ``axis`` removed, ``tau logsumexp(q / tau)`` (``max q`` at ``tau = 0``).
      Differentiable in ``q`` and, for ``tau > 0``, in ``tau``.

    Raises:
      ValueError: if a concrete ``q`` has NaN entries or a concrete ``temperature`` is
        negative or not finite.
    """
    _check_no_nan(q, "q")
    _check_temperature(temperature)
    return _soft_response(q, temperature, axis)


def _soft_response(q, temperature, axis: int = -1):
    """:func:`soft_response` without validation (for internal hot loops)."""
    q = jnp.asarray(q)
    if not jnp.issubdtype(q.dtype, jnp.floating):  # an integer tau would truncate
        q = q.astype(jnp.result_type(float))
    tau = jnp.asarray(temperature, q.dtype)
    positive = tau > 0
    safe_tau = jnp.where(positive, tau, jnp.ones_like(tau))
    soft_policy = jax.nn.softmax(q / safe_tau, axis=axis)
    soft_value = safe_tau * jax.nn.logsumexp(q / safe_tau, axis=axis)
    best = jnp.max(q, axis=axis, keepdims=True)
    ties = (q >= jax.lax.stop_gradient(best)).astype(q.dtype)
    hard_policy = ties / jnp.sum(ties, axis=axis, keepdims=True)
    policy = jnp.where(positive, soft_policy, hard_policy)
    value = jnp.where(positive, soft_value, jnp.squeeze(best, axis))
    return policy, value


Kernel = jax.Array | Callable[[jax.Array], jax.Array]


def _kernel_at(transition: Kernel, h: jax.Array) -> jax.Array:
    return transition(h) if callable(transition) else transition[h]


def _check_recursion(shape, transition, name: str) -> None:
    """``shape`` is ``[H, S, A]`` and an array ``transition`` is ``[H, S, A, S]``."""
    if len(shape) != 3:
        raise ValueError(f"`{name}` must have shape [H, S, A], got {tuple(shape)}.")
    expected = (*shape, shape[1])
    if not callable(transition) and tuple(jnp.shape(transition)) != expected:
        raise ValueError(
            f"`transition` must have shape [H, S, A, S] = {expected} (from `{name}`), got "
            f"{tuple(jnp.shape(transition))}."
        )


def soft_backward(
    reward: jax.Array, transition: Kernel, temperature: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""Entropy-regularized backward induction over a finite horizon (module docstring).

    Inputs are validated when concrete; traced inputs are not.

    Args:
      reward: ``[H, S, A]`` rewards ``r_h(s, a)``.
      transition: ``[H, S, A, S]`` kernels ``P_h(s' | s, a)``, or a function ``h -> [S, A, S]``
        (traced ``h``) for kernels that are cheaper to build per step.
      temperature: [] ``tau >= 0``.

    Returns:
      ``(policy [H, S, A], q [H, S, A], values [H + 1, S])`` with ``values[H] = 0``.

    Raises:
      ValueError: on inconsistent shapes, kernel rows off the simplex (array kernels), or a
        negative or non-finite ``temperature``.
    """
    _check_recursion(reward.shape, transition, "reward")
    if not callable(transition):
        check_probability(transition, "transition")
    _check_temperature(temperature)
    horizon, num_states, _ = reward.shape

    def backward(v_next, h):
        q = reward[h] + _kernel_at(transition, h) @ v_next
        policy, v = _soft_response(q, temperature)
        return v, (policy, q, v)

    v_terminal = jnp.zeros((num_states,), reward.dtype)
    _, (policy, q, values) = jax.lax.scan(backward, v_terminal, jnp.arange(horizon), reverse=True)
    return policy, q, jnp.concatenate([values, v_terminal[None]], axis=0)


def forward_flow(initial: jax.Array, policy: jax.Array, transition: Kernel) -> jax.Array:
    r"""State distributions ``mu_0 .. mu_H`` of an agent following ``policy``.

    Inputs are validated when concrete; traced inputs are not.

    Args:
      initial: ``[S]`` ``mu_0``.
      policy: ``[H, S, A]`` ``pi_h(a | s)``.
      transition: ``[H, S, A, S]`` kernels, or a function ``h -> [S, A, S]``.

    Returns:
      ``[H + 1, S]`` distributions (``flow[0] = initial``).

    Raises:
      ValueError: on inconsistent shapes, or ``initial``, the rows of ``policy`` or of an
        array ``transition`` off the simplex.
    """

    _check_recursion(policy.shape, transition, "policy")
    if initial.shape != policy.shape[1:2]:
        raise ValueError(
            f"`initial` must have shape [S] = {policy.shape[1:2]} (S from `policy`), got "
            f"{initial.shape}."
        )
    check_probability(initial, "initial")
    check_probability(policy, "policy")
    if not callable(transition):
        check_probability(transition, "transition")

    def forward(mu, h):
        joint = mu[:, None] * policy[h]  # [S, A]
        mu_next = jnp.einsum("sa,sat->t", joint, _kernel_at(transition, h))
        return mu_next, mu_next

    horizon = policy.shape[0]
    _, flow = jax.lax.scan(forward, initial, jnp.arange(horizon))
    return jnp.concatenate([initial[None], flow], axis=0)

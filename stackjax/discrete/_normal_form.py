r"""Normal-form Stackelberg oracles: strong Stackelberg (multiple LPs) and quantal Stackelberg.

Conventions: the leader plays rows (``m`` actions) and commits to a mixed strategy
:math:`x \in \Delta_m`; the follower plays columns (``n`` actions). ``A[i, j]`` / ``B[i, j]`` are
the leader's / follower's payoffs. Both players maximize.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ._lp import solve_standard_form_lp
from ._optim import project_to_simplex, projected_ascent
from ._response import soft_response
from ._validation import (
    as_float_array,
    check_finite,
    check_positive,
    check_probability,
    check_shape,
)

__all__ = [
    "QuantalStackelbergSolution",
    "StackelbergSolution",
    "project_to_simplex",
    "quantal_response",
    "quantal_stackelberg",
    "simplex_grid",
    "strong_stackelberg",
]


class StackelbergSolution(struct.PyTreeNode):
    """Strong Stackelberg equilibrium of a bimatrix game (batched under ``vmap``).

    Attributes:
        leader_strategy: ``(m,)`` the leader's optimal mixed commitment.
        follower_action: int scalar, the follower's best response (ties broken for the leader).
        leader_value: scalar, ``x^T A[:, j]``.
        follower_value: scalar, ``x^T B[:, j]``.
    """

    leader_strategy: jax.Array
    follower_action: jax.Array
    leader_value: jax.Array
    follower_value: jax.Array


class QuantalStackelbergSolution(struct.PyTreeNode):
    """Quantal Stackelberg equilibrium of a bimatrix game (batched under ``vmap``).

    Attributes:
        leader_strategy: ``(m,)`` the leader's optimal mixed commitment ``x``.
        follower_action: int scalar, the follower's most likely action ``argmax_j q_j``.
        follower_response: ``(n,)`` logit response ``q = softmax(B^T x / temperature)``.
        leader_value: scalar ``sum_j q_j (x^T A)_j``.
        follower_value: scalar expected follower payoff ``sum_j q_j (x^T B)_j`` (without the
            entropy bonus; add ``temperature * H(q)`` for the regularized value).
        optimality_gap_bound: scalar certificate: ``leader_value`` is within this amount of the
            global optimum (a Lipschitz bound over the evaluation grid; conservative, see
            :func:`quantal_stackelberg`).
    """

    leader_strategy: jax.Array
    follower_action: jax.Array
    follower_response: jax.Array
    leader_value: jax.Array
    follower_value: jax.Array
    optimality_gap_bound: jax.Array


def _check_bimatrix(A, B):
    A = as_float_array(A, "leader_payoff")
    B = as_float_array(B, "follower_payoff")
    dtype = jnp.result_type(A, B)
    A, B = A.astype(dtype), B.astype(dtype)
    check_shape(A, "leader_payoff", ndim=2)
    check_shape(B, "follower_payoff", ndim=2)
    if A.shape != B.shape:
        raise ValueError(
            f"`follower_payoff` must have the same shape as `leader_payoff` {tuple(A.shape)} "
            f"(leader actions x follower actions); received {tuple(B.shape)}. "
            "Pass payoff matrices of matching shapes."
        )
    check_finite(A, "leader_payoff")
    check_finite(B, "follower_payoff")
    return A, B


def _spread(M):
    spread = jnp.max(M) - jnp.min(M)
    return jnp.where(spread > 0, spread, jnp.ones_like(spread))


@functools.lru_cache(maxsize=64)
def _simplex_grid_np(num_actions: int, resolution: int) -> np.ndarray:
    """All points ``k / resolution`` of the simplex with integer ``k`` (stars and bars)."""
    from itertools import combinations

    points = []
    for bars in combinations(range(resolution + num_actions - 1), num_actions - 1):
        edges = (-1, *bars, resolution + num_actions - 1)
        points.append([edges[i + 1] - edges[i] - 1 for i in range(num_actions)])
    return np.asarray(points, dtype=np.float64) / resolution


def simplex_grid(num_actions: int, resolution: int, dtype=None) -> jax.Array:
    """Regular grid ``{k / resolution : k in N^m, sum k = resolution}`` on the simplex.

    Args:
        num_actions: simplex dimension ``m``.
        resolution: ``K`` >= 1.
        dtype: float dtype (default float dtype).

    Returns:
        ``(C(K + m - 1, m - 1), m)`` array of grid points.
    """
    if num_actions < 1 or resolution < 1:
        raise ValueError(
            f"`num_actions` and `resolution` must be >= 1; received {num_actions}, {resolution}."
        )
    dtype = jnp.result_type(float) if dtype is None else dtype
    return jnp.asarray(_simplex_grid_np(num_actions, resolution), dtype=dtype)


def _default_resolution(num_actions: int, max_points: int) -> int:
    if num_actions == 1:
        return 1
    resolution = 1
    while math.comb(resolution + 1 + num_actions - 1, num_actions - 1) <= max_points:
        resolution += 1
    return resolution


# ----------------------------------------------------------------------------------------------
# Strong Stackelberg equilibrium
# ----------------------------------------------------------------------------------------------


def _strong_stackelberg_impl(A, B):
    m, n = A.shape
    dtype = A.dtype
    a_scale = _spread(A)
    b_scale = _spread(B)

    def lp_for(j):
        D = (B - B[:, j][:, None]).T / b_scale  # (n, m): row k is B[:, k] - B[:, j]
        top = jnp.concatenate([D, jnp.eye(n, dtype=dtype)], axis=1)
        bottom = jnp.concatenate([jnp.ones((1, m), dtype), jnp.zeros((1, n), dtype)], axis=1)
        M = jnp.concatenate([top, bottom], axis=0)
        b = jnp.zeros((n + 1,), dtype).at[n].set(1.0)
        c = jnp.concatenate([A[:, j] / a_scale, jnp.zeros((n,), dtype)])
        result = solve_standard_form_lp(c, M, b)
        x = result.solution[:m]
        x = x / jnp.sum(x)
        return x, result.feasible

    strategies, feasible = jax.vmap(lp_for)(jnp.arange(n))
    values = jnp.sum(strategies * A.T, axis=1)  # (n,) leader value of each LP
    masked = jnp.where(feasible, values, -jnp.inf)
    j_star = jnp.argmax(masked)
    x = strategies[j_star]
    return StackelbergSolution(
        leader_strategy=x,
        follower_action=j_star,
        leader_value=x @ A[:, j_star],
        follower_value=x @ B[:, j_star],
    )


_strong_stackelberg_jit = jax.jit(_strong_stackelberg_impl)


def strong_stackelberg(leader_payoff, follower_payoff) -> StackelbergSolution:
    r"""Exact strong Stackelberg equilibrium by the multiple-LP method (Conitzer & Sandholm 2006).

    For each follower action :math:`j` solve the linear program

    .. math::
        v_j = \max_{x \in \Delta_m} x^\top A_{:, j}
        \quad \text{s.t.} \quad x^\top (B_{:, j} - B_{:, k}) \ge 0 \;\; \forall k,

    and return the :math:`j^\star = \arg\max_{j \text{ feasible}} v_j` together with its
    maximizer. Because the incentive constraints are weak inequalities, a follower indifferent
    between several actions is credited with the one the leader prefers (strong Stackelberg).

    The LPs are solved by a pure-JAX dense two-phase simplex method with Bland's rule
    (:func:`stackjax.discrete.solve_standard_form_lp`), so the function is ``jit``-able and
    ``vmap``-able over batches of games of one shape (values are then not validated).

    Args:
        leader_payoff: ``(m, n)`` leader payoff matrix ``A``.
        follower_payoff: ``(m, n)`` follower payoff matrix ``B``.

    Returns:
        :class:`StackelbergSolution` with ``leader_strategy`` of shape ``(m,)``.

    Raises:
        ValueError: if the shapes differ / are not 2-D or payoffs are not finite.
    """
    A, B = _check_bimatrix(leader_payoff, follower_payoff)
    return _strong_stackelberg_jit(A, B)


# ----------------------------------------------------------------------------------------------
# Quantal Stackelberg equilibrium
# ----------------------------------------------------------------------------------------------


def quantal_response(leader_strategy, follower_payoff, temperature) -> jax.Array:
    r"""Logit response :math:`q = \mathrm{softmax}(B^\top x / \tau)`.

    Inputs are validated when concrete; traced inputs are not.

    Args:
        leader_strategy: ``(m,)`` leader mixed strategy ``x`` (on the simplex).
        follower_payoff: ``(m, n)`` finite follower payoffs ``B``.
        temperature: scalar ``tau >= 0`` (``0``: the exact best response, ties split evenly).

    Returns:
        ``(n,)`` response distribution.

    Raises:
        TypeError: on non-real inputs.
        ValueError: on mismatched shapes, ``leader_strategy`` off the simplex, non-finite
            payoffs or a negative or non-finite ``temperature``.
    """
    x = as_float_array(leader_strategy, "leader_strategy")
    B = as_float_array(follower_payoff, "follower_payoff")
    dtype = jnp.result_type(x, B)
    x, B = x.astype(dtype), B.astype(dtype)
    check_shape(x, "leader_strategy", ndim=1)
    check_shape(B, "follower_payoff", shape=(x.shape[0], None))
    check_probability(x, "leader_strategy")
    check_finite(B, "follower_payoff")
    tau = as_float_array(temperature, "temperature", dtype=dtype)
    check_shape(tau, "temperature", ndim=0)
    return soft_response(x @ B, tau)[0]


def _qse_value(x, A, B, tau):
    q = jax.nn.softmax(x @ B / tau)
    return q @ (x @ A)


def _qse_value_and_grad(x, A, B, tau):
    """``f(x)`` and its analytic gradient ``A q + B (q * (v - f)) / tau`` with ``v = A^T x``."""
    q = jax.nn.softmax(x @ B / tau)
    v = x @ A
    f = q @ v
    return f, A @ q + B @ (q * (v - f)) / tau


@functools.partial(jax.jit, static_argnames=("resolution", "num_starts", "num_iterations"))
def _quantal_stackelberg_impl(A, B, tau, resolution, num_starts, num_iterations):
    m, n = A.shape
    dtype = A.dtype
    a_min, a_scale = jnp.min(A), _spread(A)
    b_min, b_scale = jnp.min(B), _spread(B)
    An = (A - a_min) / a_scale
    Bn = (B - b_min) / b_scale
    tau_n = tau / b_scale
    objective = functools.partial(_qse_value, A=An, B=Bn, tau=tau_n)

    grid = simplex_grid(m, resolution, dtype)
    grid_values = jax.vmap(objective)(grid)
    k = min(num_starts, grid.shape[0])
    _, top = jax.lax.top_k(grid_values, k)
    starts = jnp.concatenate(
        [jnp.eye(m, dtype=dtype), jnp.full((1, m), 1.0 / m, dtype), grid[top]], axis=0
    )
    initial_step = tau_n / (1.0 + tau_n)
    value_and_grad = functools.partial(_qse_value_and_grad, A=An, B=Bn, tau=tau_n)
    xs, fs = jax.vmap(
        lambda x0: projected_ascent(objective, x0, num_iterations, initial_step, value_and_grad)
    )(starts)
    best = jnp.argmax(fs)
    x = xs[best]
    f_best = fs[best]
    # Certificate: f is L-Lipschitz in l1 on the simplex with L = 1/2 + 1/(4 tau_n) for payoffs
    # normalized to [0, 1], and every simplex point is within l1 distance m / (2K) of the grid.
    lipschitz = 0.5 + 0.25 / tau_n
    covering = m / (2.0 * resolution)
    upper = jnp.max(grid_values) + lipschitz * covering
    gap = a_scale * jnp.maximum(upper - f_best, 0.0)
    q = jax.nn.softmax(x @ B / tau)
    return QuantalStackelbergSolution(
        leader_strategy=x,
        follower_action=jnp.argmax(q),
        follower_response=q,
        leader_value=q @ (x @ A),
        follower_value=q @ (x @ B),
        optimality_gap_bound=gap,
    )


def quantal_stackelberg(
    leader_payoff,
    follower_payoff,
    temperature,
    *,
    grid_resolution: int | None = None,
    num_starts: int = 8,
    num_iterations: int = 80,
) -> QuantalStackelbergSolution:
    r"""Leader's globally optimal commitment against a logit (quantal-response) follower.

    Solves

    .. math::
        \max_{x \in \Delta_m} f(x) = \sum_j q_j(x)\, (x^\top A)_j,
        \qquad q(x) = \mathrm{softmax}(B^\top x / \tau),

    which is smooth but non-concave. **How the global optimum is sought and certified.**
    Payoffs are first normalized to ``[0, 1]`` (an affine change that leaves the maximizer
    unchanged; the follower's scale is absorbed into ``tau``). Then

    1. ``f`` is evaluated on the deterministic grid ``{k / K : sum k = K}`` of the simplex
       (``K = grid_resolution``);
    2. projected gradient ascent with an adaptive, monotone (accept-if-not-worse) step is run
       from every vertex, the barycentre and the ``num_starts`` best grid points;
    3. the best end point is returned, so the value is never below the best grid point.

    The returned ``optimality_gap_bound`` is a *certificate*: for payoffs in ``[0, 1]``,
    ``|f(x) - f(y)| <= L ||x - y||_1`` with ``L = 1/2 + 1/(4 tau)`` (from
    ``grad f = A q + Cov_q(B^T d, A^T x)/tau`` and Popoviciu's bound ``|Cov| <= range*range/4``),
    and every point of the simplex is within ``l1`` distance ``m / (2K)`` of the grid (largest-
    remainder rounding), hence ``max f <= max_grid f + L m / (2K)``. The bound is tight for two
    leader actions (``K`` is then large: ~500 by default, gap ``O(1/(tau K))``) and loose for
    larger ``m`` or tiny ``tau``; in those regimes the multi-start ascent is a heuristic that the
    tests check against brute-force grids, not a proof.

    ``jit``/``vmap``-compatible: ``jax.vmap(quantal_stackelberg)(A, B, tau)`` solves a batch of
    games of one shape in one call (input values are then not validated).

    Args:
        leader_payoff: ``(m, n)`` leader payoffs ``A``.
        follower_payoff: ``(m, n)`` follower payoffs ``B``.
        temperature: scalar ``tau > 0``.
        grid_resolution: static ``K``; default: largest ``K`` with at most 512 grid points.
        num_starts: static number of best grid points used as extra starts.
        num_iterations: static number of ascent iterations per start.

    Returns:
        :class:`QuantalStackelbergSolution`; ``follower_response`` has shape ``(n,)``.

    Raises:
        ValueError: on mismatched shapes, non-finite payoffs or ``temperature <= 0``.
    """
    A, B = _check_bimatrix(leader_payoff, follower_payoff)
    tau = as_float_array(temperature, "temperature", dtype=A.dtype)
    check_shape(tau, "temperature", ndim=0)
    check_positive(tau, "temperature")
    m = A.shape[0]
    if grid_resolution is None:
        grid_resolution = _default_resolution(m, 512)
    if grid_resolution < 1 or num_starts < 0 or num_iterations < 0:
        raise ValueError(
            "`grid_resolution` must be >= 1 and `num_starts`, `num_iterations` >= 0; received "
            f"{grid_resolution}, {num_starts}, {num_iterations}."
        )
    return _quantal_stackelberg_impl(
        A, B, tau, int(grid_resolution), int(num_starts), int(num_iterations)
    )

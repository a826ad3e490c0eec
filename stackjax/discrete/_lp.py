"""A small dense linear-programming solver in pure JAX (two-phase tableau simplex, Bland's rule).

Solves ``max c^T z  s.t.  M z = b, z >= 0`` for small dense problems. Everything runs in
``jax.lax.while_loop`` with static shapes, so the solver is ``jit``- and ``vmap``-compatible
(under ``vmap`` every problem in the batch iterates until the slowest one terminates).
Bland's smallest-index rule guarantees termination on degenerate problems.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

__all__ = ["LinearProgramResult", "solve_standard_form_lp"]


class LinearProgramResult(struct.PyTreeNode):
    """Result of :func:`solve_standard_form_lp`.

    Attributes:
        solution: ``(n,)`` optimal ``z`` (meaningful only if ``feasible``).
        value: scalar optimal objective ``c^T z`` (``-inf`` if infeasible).
        feasible: boolean scalar, whether ``M z = b, z >= 0`` has a solution.
        bounded: boolean scalar, ``False`` if the objective was found unbounded above.
        iterations: int scalar, total number of pivots (both phases).
    """

    solution: jax.Array
    value: jax.Array
    feasible: jax.Array
    bounded: jax.Array
    iterations: jax.Array


def _simplex_phase(tableau, basis, cost, blocked, artificial_start, tol, max_iter, iters0):
    """Runs simplex pivots (maximization, Bland's rule) until optimal / unbounded / max_iter.

    Args:
        tableau: ``(r, k + 1)`` tableau ``[B^{-1} M_ext | B^{-1} b]``.
        basis: ``(r,)`` int indices of the basic columns.
        cost: ``(k,)`` objective coefficients over all columns.
        blocked: ``(k,)`` bool, columns that may not enter the basis.
        artificial_start: columns ``>= artificial_start`` are artificial; a basic artificial at
            level zero is pivoted out whenever the entering column has a non-zero entry in its row.
        tol: pivoting tolerance.
        max_iter: iteration cap.
        iters0: iteration counter carried over from a previous phase.
    """
    num_rows, width = tableau.shape
    num_cols = width - 1
    col_index = jnp.arange(num_cols)
    big = jnp.asarray(num_cols + 1, basis.dtype)

    def reduced_costs(tab, bas):
        return cost - cost[bas] @ tab[:, :num_cols]

    def cond(carry):
        _, _, it, done, _ = carry
        return jnp.logical_and(~done, it < max_iter)

    def body(carry):
        tab, bas, it, _, bounded = carry
        red = reduced_costs(tab, bas)
        candidates = jnp.logical_and(red > tol, ~blocked)
        any_candidate = jnp.any(candidates)
        entering = jnp.argmax(candidates)  # first True index: Bland's rule
        column = tab[:, entering]
        rhs = tab[:, -1]
        positive = column > tol
        artificial_row = jnp.logical_and(bas >= artificial_start, jnp.abs(column) > tol)
        ratio = jnp.where(positive, rhs / jnp.where(positive, column, 1.0), jnp.inf)
        ratio = jnp.where(artificial_row, 0.0, ratio)
        valid = jnp.logical_or(positive, artificial_row)
        any_valid = jnp.any(valid)
        best = jnp.min(ratio)
        ties = jnp.logical_and(valid, ratio <= best + tol)
        leaving = jnp.argmin(jnp.where(ties, bas, big))  # Bland: smallest basic index
        pivot_row = tab[leaving] / tab[leaving, entering]
        factors = tab[:, entering].at[leaving].set(0.0)
        new_tab = tab - factors[:, None] * pivot_row[None, :]
        new_tab = new_tab.at[leaving].set(pivot_row)
        new_bas = bas.at[leaving].set(entering)
        do_pivot = jnp.logical_and(any_candidate, any_valid)
        tab = jnp.where(do_pivot, new_tab, tab)
        bas = jnp.where(do_pivot, new_bas, bas)
        unbounded = jnp.logical_and(any_candidate, ~any_valid)
        done = ~do_pivot
        return tab, bas, it + do_pivot.astype(it.dtype), done, jnp.logical_and(bounded, ~unbounded)

    init = (tableau, basis, iters0, jnp.asarray(False), jnp.asarray(True))
    tableau, basis, iters, _, bounded = jax.lax.while_loop(cond, body, init)
    del col_index
    return tableau, basis, iters, bounded


@functools.partial(jax.jit, static_argnames=("max_iter", "tol"))
def solve_standard_form_lp(c, M, b, max_iter: int | None = None, tol=None) -> LinearProgramResult:
    """Solves ``max c^T z`` subject to ``M z = b``, ``z >= 0`` by the two-phase simplex method.

    Phase 1 adds one artificial variable per row and minimizes their sum (rows with
    ``b < 0`` are negated first); phase 2 optimizes ``c`` with the artificial columns barred
    from re-entering. Bland's rule prevents cycling on degenerate vertices.

    Args:
        c: ``(n,)`` objective.
        M: ``(r, n)`` equality-constraint matrix.
        b: ``(r,)`` right-hand side.
        max_iter: static cap on pivots per phase (default ``50 * (r + n)``).
        tol: pivoting / feasibility tolerance (default ``eps ** 0.7`` of the dtype, relative
            to the scale of ``M`` and ``b``, which the caller should normalize to O(1)).

    Returns:
        A :class:`LinearProgramResult`.
    """
    num_rows, num_vars = M.shape
    dtype = jnp.result_type(c, M, b)
    if tol is None:
        tol = float(jnp.finfo(dtype).eps) ** 0.7
    if max_iter is None:
        max_iter = 50 * (num_rows + num_vars)
    sign = jnp.where(b < 0, -1.0, 1.0).astype(dtype)
    M = M * sign[:, None]
    b = b * sign
    tableau = jnp.concatenate([M, jnp.eye(num_rows, dtype=dtype), b[:, None]], axis=1)
    basis = jnp.arange(num_vars, num_vars + num_rows)
    num_cols = num_vars + num_rows
    never = jnp.zeros((num_cols,), dtype=bool)
    phase1_cost = jnp.concatenate([jnp.zeros((num_vars,), dtype), -jnp.ones((num_rows,), dtype)])
    tableau, basis, iters, _ = _simplex_phase(
        tableau, basis, phase1_cost, never, num_cols + 1, tol, max_iter, jnp.asarray(0)
    )
    infeasibility = jnp.sum(jnp.where(basis >= num_vars, tableau[:, -1], 0.0))
    feasible = infeasibility <= tol * (1.0 + num_rows)
    phase2_cost = jnp.concatenate([c.astype(dtype), jnp.zeros((num_rows,), dtype)])
    blocked = jnp.arange(num_cols) >= num_vars
    tableau, basis, iters, bounded = _simplex_phase(
        tableau, basis, phase2_cost, blocked, num_vars, tol, iters + max_iter, iters
    )
    z = jnp.zeros((num_cols,), dtype).at[basis].set(jnp.maximum(tableau[:, -1], 0.0))[:num_vars]
    value = jnp.where(feasible, c.astype(dtype) @ z, -jnp.inf)
    return LinearProgramResult(
        solution=z, value=value, feasible=feasible, bounded=bounded, iterations=iters
    )

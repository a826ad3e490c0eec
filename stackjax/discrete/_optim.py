"""Projected gradient ascent over products of simplices (used by all discrete solvers)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["projected_ascent", "project_to_simplex"]


def project_to_simplex(v: jax.Array) -> jax.Array:
    r"""Euclidean projection onto the probability simplex along the last axis.

    :math:`\Pi(v) = \max(v - \theta, 0)` with the scalar :math:`\theta` (one per row) chosen so
    that the result sums to one; :math:`\theta = \max_k (\sum_{i \le k} v_{(i)} - 1) / k`
    over the decreasing order statistics (the sequence rises up to the support size and falls
    after it), computed by pairwise comparisons in :math:`O(k^2)` without a sort.

    Args:
        v: ``(..., k)`` array.

    Returns:
        ``(..., k)`` array whose rows lie on the simplex.
    """
    # theta = max_k (sum of the k largest entries - 1) / k; evaluated without sorting through
    # pairwise comparisons (O(k^2), faster than a sort for the small k used here).
    geq = (v[..., None, :] >= v[..., :, None]).astype(v.dtype)  # [i, j] = v_j >= v_i
    count = jnp.sum(geq, axis=-1)
    total = jnp.sum(geq * v[..., None, :], axis=-1)
    theta = jnp.max((total - 1.0) / count, axis=-1, keepdims=True)
    return jnp.maximum(v - theta, 0.0)


def projected_ascent(
    objective: Callable[[jax.Array], jax.Array],
    x0: jax.Array,
    num_iterations: int,
    initial_step,
    value_and_grad: Callable[[jax.Array], tuple[jax.Array, jax.Array]] | None = None,
) -> tuple[jax.Array, jax.Array]:
    r"""Monotone projected gradient ascent on a product of simplices (last axis).

    Iterates :math:`y = \Pi(x + \eta \nabla f(x))`; the step is accepted if
    :math:`f(y) \ge f(x)` (then :math:`\eta \leftarrow 2\eta`), otherwise rejected
    (:math:`\eta \leftarrow \eta / 2`); the step is capped at ``1e4 * initial_step`` to keep
    the projection accurate. The objective value is therefore non-decreasing.
    Runs a fixed number of iterations in ``lax.scan`` (``jit``/``vmap`` friendly).

    Args:
        objective: differentiable scalar function of ``x``.
        x0: ``(..., k)`` start, rows on the simplex.
        num_iterations: static number of iterations.
        initial_step: scalar initial step ``eta``.
        value_and_grad: optional function returning ``(f(x), grad f(x))`` (e.g. analytic);
            default ``jax.value_and_grad(objective)``.

    Returns:
        ``(x, f(x))`` at the end.
    """
    if value_and_grad is None:
        value_and_grad = jax.value_and_grad(objective)
    f0, g0 = value_and_grad(x0)
    step0 = jnp.asarray(initial_step, dtype=x0.dtype)
    max_step = 1e4 * step0

    def body(carry, _):
        x, fx, gx, step = carry
        y = project_to_simplex(x + step * gx)
        y = y / jnp.sum(y, axis=-1, keepdims=True)
        fy, gy = value_and_grad(y)
        accept = jnp.logical_and(fy >= fx, jnp.isfinite(fy))
        x = jnp.where(accept, y, x)
        fx = jnp.where(accept, fy, fx)
        gx = jnp.where(accept, gy, gx)
        step = jnp.where(accept, 2.0 * step, 0.5 * step)
        step = jnp.clip(step, jnp.finfo(x0.dtype).eps, max_step)
        return (x, fx, gx, step), None

    (x, fx, _, _), _ = jax.lax.scan(body, (x0, f0, g0, step0), None, length=num_iterations)
    return x, fx

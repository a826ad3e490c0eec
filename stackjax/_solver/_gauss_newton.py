"""Gauss-Newton (Levenberg-Marquardt) refinement with matrix-free conjugate gradients."""

from __future__ import annotations

import jax
import jax.flatten_util
import jax.numpy as jnp

from .._xla_flags import loop_jit
from ._defaults import resolve_config
from ._step import data_mesh, sample_batch
from ._value import network_value

__all__ = ["linearized_residuals", "pcg", "refine"]


def pcg(matvec, rhs: jax.Array, diag: jax.Array, num_iterations: int, unroll: int = 1) -> jax.Array:
    """``num_iterations`` Jacobi-preconditioned conjugate-gradient steps from zero.

    A plain unrolled loop (no early exit, no implicit-function derivative): ``jax.grad``
    through the refinement differentiates the iterations actually run, so it agrees with
    finite differences of `solve` (``jax.scipy.sparse.linalg.cg`` would differentiate the
    exact solve, which a truncated CG is not).

    Args:
      matvec: symmetric positive definite ``v [P] -> [P]``.
      rhs: [P].  diag: [P] positive preconditioner (an approximate diagonal of the matrix).
      num_iterations: static.  unroll: static, loop iterations per XLA loop trip (the
        benchmarks unroll fully: XLA's cost analysis counts a loop body once, not per trip).
    """
    tiny = jnp.finfo(rhs.dtype).tiny

    def body(_, carry):
        x, r, p, rz = carry
        ap = matvec(p)
        alpha = rz / jnp.maximum(p @ ap, tiny)
        x, r = x + alpha * p, r - alpha * ap
        z = r / diag
        rz_new = r @ z
        return x, r, z + (rz_new / jnp.maximum(rz, tiny)) * p, rz_new

    z = rhs / diag
    x0 = jnp.zeros_like(rhs)
    x, _, _, _ = jax.lax.fori_loop(
        0, num_iterations, body, (x0, rhs, z, rhs @ z), unroll=max(1, min(unroll, num_iterations))
    )  # fmt: skip
    return x


def linearized_residuals(network, unravel, flat, t, x, keys):
    """The refinement's residual vector and its linearisation at ``flat``.

    Args:
      network: the `NetworkValue` (its parameters are replaced by ``unravel(theta)``).
      unravel: ``flat [P] -> params`` (from ``jax.flatten_util.ravel_pytree``).
      flat: [P] parameters at which to linearise.
      t, x, keys: one batch from `sample_batch` (R residual rows in all).

    Returns:
      ``(r, jvp, vjp)``: ``r [R]`` the residual vector at ``flat`` scaled by
      ``1/sqrt(#residuals)`` so that ``|r|^2`` is the training loss, ``jvp: [P] -> [R]``
      (``J v``) and ``vjp: [R] -> [P]`` (``J^T u``). No Jacobian is formed; ``vjp(jvp(v))``
      is the Gauss-Newton product ``J^T J v``.
    """

    def residual_vector(theta):
        r, vec = network.replace(params=unravel(theta)).residual_vector(t, x, keys)
        return vec / jnp.sqrt(jnp.asarray(r.size, r.dtype))

    r, jvp_fn = jax.linearize(residual_vector, flat)
    transpose = jax.linear_transpose(jvp_fn, flat)
    return r, jvp_fn, lambda u: transpose(u)[0]


@loop_jit(static_argnames=("config", "controlled", "num", "cg_unroll"))
def refine(game, state, base_key, *, config, controlled, num, cg_unroll=1):
    """``num`` Levenberg-Marquardt iterations on the normalised residual vector.

    Iteration ``j`` draws ``GaussNewtonConfig.batch_size`` points from ``fold_in(key, j)``,
    linearises the residual vector ``r(theta)`` (scaled so that the loss is ``|r|^2``), solves
    ``(J^T J + mu I) delta = -J^T r`` by conjugate gradients with Jacobian-vector and
    vector-Jacobian products (no Jacobian is formed). The step is accepted if it lowers the
    loss on the batch (then ``mu /= 3``), otherwise rejected (``mu *= 4``). ``cg_unroll``
    (static) is passed to `pcg` as ``unroll``; the result does not depend on it.

    Every iterate is also scored on one fixed evaluation batch (as many points, from
    ``fold_in(key, int32 max)``); ``state.best_params`` keeps the best iterate so far (the starting
    parameters count as iteration ``-1``), which `solve` returns.

    Returns:
      ``(state, (loss_before [num], loss_after [num], evaluation_loss [num]))``.
    """
    config = resolve_config(game, config)
    network = network_value(game, config, state.params, state.norm, controlled=controlled)
    mesh = data_mesh(config)
    flat, unravel = jax.flatten_util.ravel_pytree(state.params)
    best_flat, _ = jax.flatten_util.ravel_pytree(state.best_params)
    n = config.gauss_newton.batch_size
    k_pts, k_op = jax.random.split(jax.random.fold_in(base_key, jnp.iinfo(jnp.int32).max))
    evaluation = sample_batch(network.game, config, k_pts, k_op, n, mesh)

    def batch_loss(theta, batch):  # the loss |r|^2 / #residuals of a batch
        r, vec = network.replace(params=unravel(theta)).residual_vector(*batch)
        return jnp.sum(vec**2) / r.size

    start_loss = batch_loss(flat, evaluation)
    first = jnp.isinf(state.best_loss)  # the starting parameters are the first candidate
    best = (
        jnp.where(first, flat, best_flat),
        jnp.where(first, start_loss, state.best_loss),
        jnp.where(first, state.refine_step - 1, state.best_step),
    )

    def body(carry, _):
        flat, mu, j, score, best = carry
        k_pts, k_op = jax.random.split(jax.random.fold_in(base_key, j))
        t, x, keys = sample_batch(network.game, config, k_pts, k_op, n, mesh)
        r, jvp_fn, vjp_fn = linearized_residuals(network, unravel, flat, t, x, keys)

        def normal_matvec(v):
            return vjp_fn(jvp_fn(v)) + mu * v

        # The gradient J^T r and the Jacobi preconditioner diag(J^T J) = E[(J^T v)^2] over
        # Rademacher v (8 probes), as one batched product (one copy of J^T in the program).
        probes = jax.random.rademacher(jax.random.fold_in(k_op, 1), (8, r.shape[0]), dtype=r.dtype)
        products = jax.vmap(vjp_fn)(jnp.concatenate([r[None], probes]))
        grad, diag = products[0], jnp.mean(products[1:] ** 2, axis=0)
        scale = diag + mu + 1e-12 * jnp.max(diag)
        delta = pcg(normal_matvec, -grad, scale, config.gauss_newton.cg_iterations, cg_unroll)
        new = flat + delta
        # The trial on this batch and the candidate's score on the evaluation batch, batched
        # (one copy of the residual in the program).
        both = jax.tree.map(lambda a, b: jnp.stack([a, b]), (t, x, keys), evaluation)
        trial, candidate = jax.vmap(batch_loss, in_axes=(None, 0))(new, both)
        loss_old, loss_new = jnp.sum(r**2), trial
        accept = jnp.isfinite(loss_new) & (loss_new < loss_old)
        flat = jnp.where(accept, new, flat)
        mu = jnp.clip(jnp.where(accept, mu / 3.0, mu * 4.0), 1e-9, 1e6)
        score = jnp.where(accept, candidate, score)
        better = jnp.isfinite(score) & (score < best[1])
        best = (
            jnp.where(better, flat, best[0]),
            jnp.where(better, score, best[1]),
            jnp.where(better, j, best[2]),
        )
        return (flat, mu, j + 1, score, best), (
            loss_old,
            jnp.where(accept, loss_new, loss_old),
            score,
        )

    (flat, mu, j, _, best), losses = jax.lax.scan(
        body, (flat, state.damping, state.refine_step, start_loss, best), None, length=num
    )
    state = state.replace(
        params=unravel(flat), damping=mu, refine_step=j,
        best_params=unravel(best[0]), best_loss=best[1], best_step=best[2],
    )  # fmt: skip
    return state, losses

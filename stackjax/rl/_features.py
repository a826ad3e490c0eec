"""Linear-in-parameters features of values and q-functions of LQ games (docs/math.md §3.2, §7.1).

A value is ``J_{k,i}(t, x) = sum_a psi_a(t) theta[k, i, a] . phi(x)`` with Legendre polynomials
``psi`` in time and the quadratic monomials ``phi(x) = (x_p x_q (p <= q), x, 1)``. A q-function
is quadratic in the joint action ``u = (u_1, u_2)``:
``q_k(t, x, i, u) = u.W u + 2 u.E z + (terms without u)`` with ``z = (x, 1)``; its coefficients
are ``W = [[Rt^11, Rt^12], [Rt^21, Rt^22]]`` and ``E z = (rho^1, rho^2)`` of the pre-Hamiltonian.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import PreHamiltonian

__all__ = [
    "legendre",
    "quadratic_features",
    "num_quadratic_features",
    "action_features",
    "num_action_features",
    "action_coefficients",
    "pre_hamiltonian_from_coefficients",
]


def legendre(t: jax.Array, horizon: float, size: int) -> jax.Array:
    """[size] Legendre polynomials ``P_0 .. P_{size-1}`` at ``s = 2 t / T - 1``."""
    s = 2.0 * t / horizon - 1.0
    out = [jnp.ones_like(s), s]
    for n in range(1, size - 1):
        out.append(((2 * n + 1) * s * out[n] - n * out[n - 1]) / (n + 1))
    return jnp.stack(out[:size])


def _upper(d: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(d)


def num_quadratic_features(d: int) -> int:
    return d * (d + 1) // 2 + d + 1


def quadratic_features(x: jax.Array) -> jax.Array:
    """[d (d + 1) / 2 + d + 1] ``(x_p x_q for p <= q, x, 1)``."""
    rows, cols = _upper(x.shape[-1])
    return jnp.concatenate([x[rows] * x[cols], x, jnp.ones((1,), x.dtype)])


def num_action_features(action_dim: int, d: int) -> int:
    return action_dim * (action_dim + 1) // 2 + action_dim * (d + 1)


def action_features(u: jax.Array, mean: jax.Array, cov: jax.Array, x: jax.Array) -> jax.Array:
    """Centred features of ``g(u) = u.W u + 2 u.E z``: ``g(u) - E_pi[g]`` is linear in them.

    ``E_pi[u.W u] = mu.W mu + tr(W Sigma)``, so the quadratic features are
    ``(u u^T - mu mu^T - Sigma)_{pq}`` (doubled off the diagonal, ``p <= q``) and the linear ones
    ``2 (u - mu) z^T``.

    Args:
      u: [K] joint action; mean: [K] and cov: [K, K] of the target policy; x: [d].

    Returns:
      [K (K + 1) / 2 + K (d + 1)].
    """
    K = u.shape[-1]
    rows, cols = _upper(K)
    second = jnp.outer(u, u) - jnp.outer(mean, mean) - cov
    weight = jnp.where(rows == cols, 1.0, 2.0).astype(u.dtype)
    z = jnp.concatenate([x, jnp.ones((1,), x.dtype)])
    return jnp.concatenate([weight * second[rows, cols], 2.0 * jnp.outer(u - mean, z).ravel()])


def action_coefficients(theta: jax.Array, K: int, d: int) -> tuple[jax.Array, jax.Array]:
    """``(W [K, K] symmetric, E [K, d + 1])`` from a coefficient vector of `action_features`."""
    rows, cols = _upper(K)
    n = rows.size
    upper = jnp.zeros((K, K), theta.dtype).at[rows, cols].set(theta[:n])
    W = upper + upper.T - jnp.diag(jnp.diagonal(upper))
    return W, theta[n:].reshape(K, d + 1)


def pre_hamiltonian_from_coefficients(
    W: jax.Array, E: jax.Array, x: jax.Array, leader_dim: int
) -> PreHamiltonian:
    """`PreHamiltonian` of both players at ``x`` from learned ``W [2, K, K]``, ``E [2, K, d+1]``.

    ``h0`` (the action-free part) is set to zero: it does not affect the equilibrium policies.
    """
    k1 = leader_dim
    z = jnp.concatenate([x, jnp.ones((1,), x.dtype)])
    rho = E @ z  # [2, K]
    return PreHamiltonian(
        R11=W[:, :k1, :k1], R12=W[:, :k1, k1:], R22=W[:, k1:, k1:],
        rho1=rho[:, :k1], rho2=rho[:, k1:], h0=jnp.zeros((2,), W.dtype),
    )  # fmt: skip

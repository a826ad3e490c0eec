"""Entropy-regularized minimization of a quadratic and Gaussian policy objects.

Conventions of docs/math.md §0: costs carry no factor 1/2 (``u.W u + 2 l.u``), a player paying
``lambda * E[log pi]`` has the Gibbs density ``pi ∝ exp(-(u.W u + 2 l.u) / lambda)``, which is
Gaussian with covariance ``lambda / 2 * W^{-1}``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jax.scipy.special import xlogy

from ._validation import check_positive, check_shape

__all__ = [
    "GaussianPolicy",
    "gibbs_quadratic",
    "safe_cholesky",
    "gaussian_log_density",
    "entropy_cost",
    "gibbs_entropy_payment",
]


# Control dimensions up to this size use unrolled Cholesky factorisations and substitutions
# (element-wise operations that XLA fuses across a vmapped batch) instead of batched LAPACK
# calls, whose per-matrix overhead dominates for small matrices on CPU (docs/performance.md).
_UNROLL_MAX = 4


def cholesky_lower(matrix: jax.Array) -> jax.Array:
    """Lower Cholesky factor of a symmetric ``[k, k]`` matrix (NaN if not positive definite)."""
    k = matrix.shape[-1]
    if k > _UNROLL_MAX:
        return jnp.linalg.cholesky(matrix)
    low = [[None] * k for _ in range(k)]  # static k: a loop over matrix entries, not points
    for j in range(k):
        low[j][j] = jnp.sqrt(matrix[j, j] - sum(low[j][p] ** 2 for p in range(j)))
        for i in range(j + 1, k):
            low[i][j] = (matrix[i, j] - sum(low[i][p] * low[j][p] for p in range(j))) / low[j][j]
    zero = jnp.zeros_like(matrix[0, 0])
    return jnp.stack(
        [jnp.stack([low[i][j] if j <= i else zero for j in range(k)]) for i in range(k)]
    )


def cho_solve_lower(factor: jax.Array, rhs: jax.Array) -> jax.Array:
    """``(L L^T)^{-1} rhs`` for a lower factor ``L [k, k]`` and ``rhs [k]`` or ``[k, r]``."""
    k = factor.shape[-1]
    if k > _UNROLL_MAX:
        return jax.scipy.linalg.cho_solve((factor, True), rhs)
    y = []
    for i in range(k):
        y.append((rhs[i] - sum(factor[i, p] * y[p] for p in range(i))) / factor[i, i])
    x = [None] * k
    for i in reversed(range(k)):
        x[i] = (y[i] - sum(factor[p, i] * x[p] for p in range(i + 1, k))) / factor[i, i]
    return jnp.stack(x)


def _cholesky(matrix: jax.Array) -> jax.Array:
    """Lower Cholesky factor of the symmetric part (NaN where not positive definite)."""
    return cholesky_lower(0.5 * (matrix + matrix.T))


def _logdet_pd(matrix: jax.Array) -> jax.Array:
    """``log det`` of a positive definite matrix via Cholesky (NaN if not positive definite)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(_cholesky(matrix))))


def gibbs_entropy_payment(temperature: jax.Array, dim: int, logdet_weight: jax.Array) -> jax.Array:
    """``-lambda/2 log det(2 pi e Sigma)`` at ``Sigma = lambda/2 W^{-1}``, from ``log det W``.

    Equals ``-lambda k/2 log(pi e lambda) + lambda/2 log det W``; 0 at ``lambda = 0``.

    Args:
      temperature: [] ``lambda >= 0``.  dim: ``k``.  logdet_weight: [] ``log det W``.
    """
    lam = temperature
    return -0.5 * dim * xlogy(lam, jnp.pi * jnp.e * lam) + 0.5 * lam * logdet_weight


def entropy_cost(temperature: jax.Array, weight: jax.Array) -> jax.Array:
    """``-lambda/2 log det(2 pi e Sigma)`` at the Gibbs covariance ``Sigma = lambda/2 W^{-1}``.

    Equals ``-lambda k/2 log(pi e lambda) + lambda/2 log det W`` (docs/math.md §4.4) and is 0 at
    ``lambda = 0`` whatever ``W`` (no condition on ``W`` is needed in the classical game).

    Args:
      temperature: [] ``lambda >= 0``.
      weight: [k, k] symmetric positive definite ``W`` (only used when ``lambda > 0``).

    Returns:
      [] the entropy payment of the Gibbs policy.
    """
    k = weight.shape[-1]
    positive = temperature > 0
    safe_weight = jnp.where(positive, weight, jnp.eye(k, dtype=weight.dtype))
    logdet = jnp.where(positive, _logdet_pd(safe_weight), 0.0)
    return gibbs_entropy_payment(temperature, k, logdet)


def gibbs_covariance(temperature: jax.Array, weight: jax.Array) -> jax.Array:
    """[k, k] ``lambda/2 W^{-1}``; exactly zero when ``lambda = 0`` (whatever ``W``)."""
    k = weight.shape[-1]
    positive = temperature > 0
    eye = jnp.eye(k, dtype=weight.dtype)
    safe_weight = jnp.where(positive, weight, eye)
    factor = _cholesky(safe_weight)
    inverse = cho_solve_lower(factor, eye)
    cov = 0.5 * temperature * inverse
    return jnp.where(positive, 0.5 * (cov + cov.T), 0.0)


def gibbs_quadratic(
    weight: jax.Array, linear: jax.Array, temperature: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Minimizes ``E_pi[u.W u + 2 l.u] + lambda E_pi[log pi]`` over all densities ``pi``.

    The minimizer is the Gibbs density ``N(-W^{-1} l, lambda/2 W^{-1})`` and the minimum is
    ``-l.W^{-1} l - lambda k/2 log(pi lambda) + lambda/2 log det W`` (the soft minimum).

    Args:
      weight: [k, k] symmetric positive definite ``W``.
      linear: [k] ``l``.
      temperature: [] ``lambda >= 0`` (``0``: the deterministic minimizer, covariance 0).

    Shapes are checked (at trace time), the temperature's value when concrete.

    Returns:
      ``(mean [k], covariance [k, k], value [])``.
    """
    k = jnp.shape(weight)[-1]
    check_shape(jnp.asarray(weight), "weight", shape=(k, k))
    check_shape(jnp.asarray(linear), "linear", shape=(k,))
    check_shape(jnp.asarray(temperature), "temperature", shape=())
    check_positive(temperature, "temperature", allow_zero=True)
    factor = _cholesky(weight)
    mean = -cho_solve_lower(factor, linear)
    cov = gibbs_covariance(temperature, weight)
    value = linear @ mean + 0.5 * temperature * k + entropy_cost(temperature, weight)
    return mean, cov, value


def safe_cholesky(cov: jax.Array) -> jax.Array:
    """Lower Cholesky factor of a covariance that may be exactly zero (then returns zero)."""
    k = cov.shape[-1]
    zero = jnp.all(cov == 0)
    factor = _cholesky(jnp.where(zero, jnp.eye(k, dtype=cov.dtype), cov))
    return jnp.where(zero, 0.0, factor)


def gaussian_log_density(cov: jax.Array, noise: jax.Array) -> jax.Array:
    """``log N(u; mu, Sigma)`` at ``u = mu + chol(Sigma) xi``.

    Equals ``-1/2 log det(2 pi Sigma) - |xi|^2 / 2``.

    Args:
      cov: [k, k] positive definite covariance.
      noise: [k] the standard normal draw ``xi``.
    """
    k = cov.shape[-1]
    return -0.5 * (k * jnp.log(2.0 * jnp.pi) + _logdet_pd(cov)) - 0.5 * noise @ noise


class GaussianPolicy(struct.PyTreeNode):
    """Gaussian (Gibbs) policies of both players in every regime at one ``(t, x)``.

    Means follow docs/math.md §8: ``mu_k(t, x, i) = -(L_{k,i}(t) x + l_{k,i}(t))`` for LQ solutions.

    Attributes:
      mean_leader: [m, k1].
      cov_leader: [m, k1, k1] (zero when ``lambda_1 = 0``).
      mean_follower: [m, k2].
      cov_follower: [m, k2, k2] (zero when ``lambda_2 = 0``).
    """

    mean_leader: jax.Array
    cov_leader: jax.Array
    mean_follower: jax.Array
    cov_follower: jax.Array

    def regime(self, i) -> GaussianPolicy:
        """The policies in regime ``i`` (leaves lose their leading ``[m]`` axis)."""
        return jax.tree.map(lambda leaf: leaf[i], self)

    @classmethod
    def from_equilibrium(cls, eq) -> GaussianPolicy:
        """The policies of a `PointEquilibrium` (leaves keep their leading axes)."""
        return cls(
            mean_leader=eq.mean_leader,
            cov_leader=eq.cov_leader,
            mean_follower=eq.mean_follower,
            cov_follower=eq.cov_follower,
        )

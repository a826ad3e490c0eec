"""Residuals of the weakly coupled exploratory HJB(I) system (MATH.md §5.1, §5.3).

``R_{k,i}(t, x) = dV_{k,i}/dt + H^*_{k,i}(x, grad V_{.,i}, Hess V_{.,i})
+ sum_j Gamma_ij (V_{k,j} - V_{k,i})`` for any value function ``value_fn(t, x) -> [2, m]``
(neural networks, the Riccati quadratic, test oracles).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._gibbs import GaussianPolicy
from ._hamiltonian import (
    PointEquilibrium,
    check_concept,
    hessian_products,
    pointwise_equilibrium,
    pre_hamiltonian,
)

__all__ = [
    "ValueFn",
    "hjbi_residual",
    "terminal_residual",
    "equilibrium_from_values",
    "policy_from_values",
]

ValueFn = Callable[[jax.Array, jax.Array], jax.Array]  # (t [], x [d]) -> [2, m]


def _derivatives(value_fn: ValueFn, t: jax.Array, x: jax.Array):
    """Values [2, m], time derivatives [2, m], gradients [2, m, d], Hessians [2, m, d, d]."""
    t = jnp.asarray(t, dtype=jnp.result_type(x.dtype, float))
    v, v_t = jax.jvp(lambda s: value_fn(s, x), (t,), (jnp.ones_like(t),))
    grad = jax.jacrev(lambda z: value_fn(t, z))(x)  # [2, m, d]
    hess = jax.hessian(lambda z: value_fn(t, z))(x)  # [2, m, d, d]
    return v, v_t, grad, hess


def equilibrium_from_values(
    value_fn: ValueFn, game, t: jax.Array, x: jax.Array, *, concept: str = "stackelberg"
) -> tuple[jax.Array, jax.Array, PointEquilibrium]:
    """Pointwise equilibrium in every regime from the derivatives of ``value_fn``.

    Uses exact autodiff derivatives (``jax.hessian``; the neural solver has faster operators).

    Args:
      value_fn: ``(t [], x [d]) -> [2, m]`` values (row 0 leader, row 1 follower).
      game: a game following the `ControlQuadraticGame` protocol.
      t: [] time.
      x: [d] state.
      concept: ``"stackelberg"`` or ``"nash"``.

    Returns:
      ``(values [2, m], time_derivatives [2, m], equilibrium)`` with every leaf of the
      `PointEquilibrium` carrying a leading ``[m]`` regime axis.
    """
    check_concept(concept)
    v, v_t, grad, hess = _derivatives(value_fn, t, x)
    regimes = jnp.arange(game.num_regimes)

    def one_regime(i, y, M):  # y [2, d], M [2, d, d]
        coef = game.coefficients(x, i)
        pre = pre_hamiltonian(coef, y, hessian_products(M, coef))
        return pointwise_equilibrium(
            pre, game.temperatures, concept=concept, zero_sum=game.zero_sum
        )

    eq = jax.vmap(one_regime, in_axes=(0, 1, 1))(regimes, grad, hess)
    return v, v_t, eq


def hjbi_residual(
    value_fn: ValueFn, game, t: jax.Array, x: jax.Array, *, concept: str = "stackelberg"
) -> jax.Array:
    """Residuals of both players' exploratory HJB equations in every regime at one point.

    ``r[k, i] = dV_ki/dt + H^*_ki + sum_j Gamma_ij V_kj`` (rows of Gamma sum to zero).

    Args:
      value_fn: maps ``(t [], x [d])`` to ``[2, m]`` values (row 0 leader, row 1 follower).
      game: the game (`LQGame` or any `ControlQuadraticGame`).
      t: [] time in ``[0, T)``.
      x: [d] state.
      concept: ``"stackelberg"`` (default) or ``"nash"``.

    Returns:
      [2, m] residuals; zero at the equilibrium value functions.
    """
    v, v_t, eq = equilibrium_from_values(value_fn, game, t, x, concept=concept)
    switching = v @ game.generator.T  # [2, m]: sum_j Gamma_ij V_kj
    return v_t + eq.hamiltonian.T + switching


def terminal_residual(value_fn: ValueFn, game, x: jax.Array) -> jax.Array:
    """[2, m] ``V_{k,i}(T, x) - psi_{k,i}(x)``."""
    psi = jax.vmap(lambda i: game.terminal_cost(x, i), out_axes=1)(jnp.arange(game.num_regimes))
    return value_fn(game.horizon, x) - psi


def policy_from_values(
    value_fn: ValueFn, game, t: jax.Array, x: jax.Array, *, concept: str = "stackelberg"
) -> GaussianPolicy:
    """Equilibrium `GaussianPolicy` (all regimes) computed from ``value_fn``'s derivatives (§8)."""
    _, _, eq = equilibrium_from_values(value_fn, game, t, x, concept=concept)
    return GaussianPolicy(
        mean_leader=eq.mean_leader,
        cov_leader=eq.cov_leader,
        mean_follower=eq.mean_follower,
        cov_follower=eq.cov_follower,
    )

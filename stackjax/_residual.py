"""Residuals of the weakly coupled exploratory HJB(I) system (docs/math.md §5.1, §5.3).

``R_{k,i}(t, x) = dV_{k,i}/dt + H^*_{k,i}(x, grad V_{.,i}, Hess V_{.,i}) + sum_j q_ij V_{k,j}``
(rows of the generator ``q`` sum to zero) for any value function ``value_fn(t, x) -> [2, m]``:
neural networks, the Riccati quadratic, test oracles. This module holds the only copy of the
regime-coupled residual; every solver path goes through `regime_terms` and `coupled_residual`.

Fast derivatives. By default the derivatives come from autodiff (``jax.hessian``). A value
object may instead supply them per regime through one hook, two methods:

* ``regime_locals(t, key) -> L``: per-regime data with a leading ``[m]`` axis on every leaf
  (for the networks: parameters, time coefficients of the quadratic head, operator keys);
  ``key`` may be ``None``.
* ``regime_derivatives(local, i, t, x, coef) -> RegimeDerivatives``: regime ``i``'s values,
  time derivatives, gradients and the Hessian products the Hamiltonian needs, given
  ``local = L[i]`` and the game's coefficients at ``x`` (it may return sketched coefficients).

`hjbi_residual`, `equilibrium_from_values` and `policy_from_values` use the hook when the value
object has it (`stackjax.Solution.network` has).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from ._gibbs import GaussianPolicy
from ._hamiltonian import (
    HessianProducts,
    PointEquilibrium,
    check_concept,
    hessian_products,
    regime_equilibrium,
)
from ._protocol import Coefficients
from ._validation import check_shape

__all__ = [
    "RegimeDerivatives",
    "ValueFn",
    "coupled_residual",
    "equilibrium_from_values",
    "has_fast_derivatives",
    "hjbi_residual",
    "point_equilibria",
    "policy_from_values",
    "regime_terms",
    "residual_and_state_gradient",
    "terminal_residual",
]

ValueFn = Callable[[jax.Array, jax.Array], jax.Array]  # (t [], x [d]) -> [2, m]


class RegimeDerivatives(struct.PyTreeNode):
    """Derivatives of both players' values in one regime at one point.

    Attributes:
      coefficients: the `Coefficients` the products were taken along (the game's, or a
        sketch of them).
      value: [2] ``V_{k,i}``.
      time_derivative: [2] ``dV_{k,i}/dt``.
      gradient: [2, d] ``grad_x V_{k,i}``.
      products: `HessianProducts` of ``Hess_x V_{k,i}`` with the diffusion columns.
    """

    coefficients: Coefficients
    value: jax.Array
    time_derivative: jax.Array
    gradient: jax.Array
    products: HessianProducts


def has_fast_derivatives(value_fn) -> bool:
    """Whether ``value_fn`` supplies its own derivatives (module docstring)."""
    return callable(getattr(value_fn, "regime_derivatives", None))


def coupled_residual(values: jax.Array, own: jax.Array, generator: jax.Array) -> jax.Array:
    """``R_{k,i} = own_{k,i} + sum_j q_ij V_{k,j}`` with ``own = V_t + H^*`` of each regime.

    Args:
      values: [2, m] ``V``.  own: [2, m] ``V_t + H^*``.  generator: [m, m] ``q``.

    Returns:
      [2, m] residuals.

    Shapes are checked (at trace time); values are not.
    """
    m = generator.shape[-1]
    check_shape(generator, "generator", shape=(m, m))
    check_shape(values, "values", shape=(None,) * (values.ndim - 1) + (m,))
    check_shape(own, "own", shape=values.shape)
    return own + values @ generator.T


def regime_terms(
    value_fn, game, local, i, t: jax.Array, x: jax.Array, *, concept: str = "stackelberg"
) -> tuple[RegimeDerivatives, PointEquilibrium]:
    """Regime ``i``'s derivatives and pointwise equilibrium through the value object's hook.

    Args:
      value_fn: a value object with the derivative hook (module docstring).
      game: the game (its coefficients at ``x`` in regime ``i``).
      local: ``regime_locals(t, key)[i]``.
      i: [] int regime.  t: [] time.  x: [d] state.
      concept: ``"stackelberg"`` or ``"nash"``.
    """
    der = value_fn.regime_derivatives(local, i, t, x, game.coefficients(x, i))
    eq = regime_equilibrium(
        der.coefficients, der.gradient, der.products, game.temperatures,
        concept=concept, zero_sum=game.zero_sum,
    )  # fmt: skip
    return der, eq


def _autodiff_derivatives(value_fn: ValueFn, game, t: jax.Array, x: jax.Array):
    """`RegimeDerivatives` of every regime (leading ``[m]``) from ``jax.hessian``."""
    t = jnp.asarray(t, dtype=jnp.result_type(x.dtype, float))
    v, v_t = jax.jvp(lambda s: value_fn(s, x), (t,), (jnp.ones_like(t),))  # [2, m]
    grad = jax.jacrev(lambda z: value_fn(t, z))(x)  # [2, m, d]
    hess = jax.hessian(lambda z: value_fn(t, z))(x)  # [2, m, d, d]

    def one(i, vi, vti, y, M):
        coef = game.coefficients(x, i)
        return RegimeDerivatives(coef, vi, vti, y, hessian_products(M, coef))

    regimes = jnp.arange(game.num_regimes)
    return jax.vmap(one, in_axes=(0, 1, 1, 1, 1))(regimes, v, v_t, grad, hess)


def point_equilibria(
    value_fn,
    game,
    t: jax.Array,
    x: jax.Array,
    *,
    concept: str = "stackelberg",
    key: jax.Array | None = None,
    local=None,
) -> tuple[RegimeDerivatives, PointEquilibrium]:
    """Derivatives and pointwise equilibrium of every regime at one point.

    Args:
      value_fn: ``(t [], x [d]) -> [2, m]``, or a value object with the derivative hook.
      game: a `ControlQuadraticGame`.
      t: [] time.  x: [d] state.
      concept: ``"stackelberg"`` or ``"nash"``.
      key: operator key passed to ``regime_locals`` (stochastic operators; else unused).
      local: precomputed ``regime_locals`` (e.g. shared by the states of one time).

    Returns:
      ``(RegimeDerivatives, PointEquilibrium)``, every leaf with a leading ``[m]`` axis.
    """
    check_concept(concept)
    if not has_fast_derivatives(value_fn):
        der = _autodiff_derivatives(value_fn, game, t, x)
        eq = jax.vmap(
            lambda d: regime_equilibrium(
                d.coefficients,
                d.gradient,
                d.products,
                game.temperatures,
                concept=concept,
                zero_sum=game.zero_sum,
            )  # fmt: skip
        )(der)
        return der, eq
    if local is None:
        local = value_fn.regime_locals(t, key)
    regimes = jnp.arange(game.num_regimes)
    return jax.vmap(lambda loc, i: regime_terms(value_fn, game, loc, i, t, x, concept=concept))(
        local, regimes
    )


def hjbi_residual(
    value_fn,
    game,
    t: jax.Array,
    x: jax.Array,
    *,
    concept: str = "stackelberg",
    key: jax.Array | None = None,
) -> jax.Array:
    """Residuals of both players' exploratory HJB equations in every regime at one point.

    ``r[k, i] = dV_ki/dt + H^*_ki + sum_j q_ij V_kj`` (rows of ``q`` sum to zero).

    Args:
      value_fn: maps ``(t [], x [d])`` to ``[2, m]`` values (row 0 leader, row 1 follower), or
        a value object with the derivative hook (module docstring).
      game: the game (`LQGame` or any `ControlQuadraticGame`).
      t: [] time in ``[0, T)``.
      x: [d] state.
      concept: ``"stackelberg"`` (default) or ``"nash"``.
      key: operator key for value objects with stochastic operators (else unused).

    Returns:
      [2, m] residuals; zero at the equilibrium value functions.

    Shapes of ``t`` and ``x`` are checked (at trace time); values are not.
    """
    check_shape(jnp.asarray(t), "t", shape=())
    check_shape(jnp.asarray(x), "x", shape=(game.state_dim,))
    der, eq = point_equilibria(value_fn, game, t, x, concept=concept, key=key)
    own = der.time_derivative.T + eq.hamiltonian.T
    return coupled_residual(der.value.T, own, game.generator)


def residual_and_state_gradient(
    value_fn,
    game,
    t: jax.Array,
    x: jax.Array,
    *,
    concept: str = "stackelberg",
    key: jax.Array | None = None,
    local=None,
) -> tuple[jax.Array, jax.Array]:
    """`hjbi_residual` ``[2, m]`` at one point and its state gradient ``[2, m, d]``.

    Regime ``i``'s residual is ``V_t^i + H^i + sum_j q_ij V^j``: only the coupling term reads
    the other regimes, through their values, whose gradients ``y^j`` the Hamiltonian already
    has. So each regime differentiates its own ``V_t^i + H^i`` (two reverse passes) and the
    coupling adds ``q_ij y^j``: ``O(m)`` regime evaluations instead of the ``O(m^2)`` of
    reverse mode through the whole ``[2, m]`` residual. Value functions without the hook are
    differentiated whole.
    """
    if not has_fast_derivatives(value_fn):
        r = hjbi_residual(value_fn, game, t, x, concept=concept)
        jac = jax.jacrev(lambda z: hjbi_residual(value_fn, game, t, z, concept=concept))(x)
        return r, jac
    if local is None:
        local = value_fn.regime_locals(t, key)

    def one(loc, i):
        def own(z):
            der, eq = regime_terms(value_fn, game, loc, i, t, z, concept=concept)
            o = der.time_derivative + eq.hamiltonian
            return o, (der.value, o, der.gradient)

        jac, (v, o, y) = jax.jacrev(own, has_aux=True)(x)  # [2, d]
        return v, o, y, jac

    v, own, y, jac = jax.vmap(one)(local, jnp.arange(game.num_regimes))  # [m, 2], [m, 2, d]
    q = game.generator
    r = coupled_residual(v.T, own.T, q)
    dr = jnp.moveaxis(jac, 0, 1) + jnp.einsum("ij,jpd->pid", q, y)
    return r, dr


def terminal_residual(value_fn: ValueFn, game, x: jax.Array) -> jax.Array:
    """[2, m] ``V_{k,i}(T, x) - psi_{k,i}(x)``."""
    psi = jax.vmap(lambda i: game.terminal_cost(x, i), out_axes=1)(jnp.arange(game.num_regimes))
    return value_fn(game.horizon, x) - psi


def equilibrium_from_values(
    value_fn, game, t: jax.Array, x: jax.Array, *, concept: str = "stackelberg"
) -> tuple[jax.Array, jax.Array, PointEquilibrium]:
    """Pointwise equilibrium in every regime from the derivatives of ``value_fn``.

    Args:
      value_fn: ``(t [], x [d]) -> [2, m]`` values (row 0 leader, row 1 follower), or a value
        object with the derivative hook (module docstring).
      game: a game following the `ControlQuadraticGame` protocol.
      t: [] time.
      x: [d] state.
      concept: ``"stackelberg"`` or ``"nash"``.

    Returns:
      ``(values [2, m], time_derivatives [2, m], equilibrium)`` with every leaf of the
      `PointEquilibrium` carrying a leading ``[m]`` regime axis.
    """
    der, eq = point_equilibria(value_fn, game, t, x, concept=concept)
    return der.value.T, der.time_derivative.T, eq


def policy_from_values(
    value_fn, game, t: jax.Array, x: jax.Array, *, concept: str = "stackelberg"
) -> GaussianPolicy:
    """Equilibrium `GaussianPolicy` (all regimes) from ``value_fn``'s derivatives (§8)."""
    _, eq = point_equilibria(value_fn, game, t, x, concept=concept)
    return GaussianPolicy.from_equilibrium(eq)

"""`NetworkValue`: the value networks as a value object with fast derivatives.

It implements the derivative hook of `stackjax._residual` (``regime_locals`` /
``regime_derivatives``), so the solver's residuals are `hjbi_residual`'s, computed with the
structure of the networks exploited: the quadratic head's Hessian does not depend on ``x`` and
is applied to the diffusion columns as matrix products, shared by all states of one sampled
time; only the MLP correction (and the terminal cost of games without ``terminal_hessian``)
goes through Hessian-vector products. The batched residuals here are normalised by the value
scale over the horizon, ``R_{k,i} T / S_{k,i}`` (the natural size of ``dV/dt``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from .._gibbs import GaussianPolicy
from .._operators import (
    _split_products,
    diffusion_directions,
    gradient_and_products,
    sketch_diffusion,
)
from .._residual import (
    RegimeDerivatives,
    coupled_residual,
    point_equilibria,
    residual_and_state_gradient,
)
from ._config import SolverConfig
from ._defaults import cast_game, detect_controlled, float_dtype, resolve_config
from ._networks import Normalization, ValueModel

__all__ = ["NetworkValue", "network_value", "value_model"]


def value_model(game, config: SolverConfig) -> ValueModel:
    """The static network description for ``game`` under the resolved ``config``."""
    config = resolve_config(game, config)
    return ValueModel(
        state_dim=game.state_dim,
        num_regimes=game.num_regimes,
        zero_sum=bool(game.zero_sum),
        time_basis=config.network.time_basis,
        width=config.network.width,
        depth=config.network.depth,
        correction=config.network.correction,
    )


class NetworkValue(struct.PyTreeNode):
    """Value networks of both players in every regime, with their parameters and game.

    A pytree (parameters, normalization and game are leaves; the settings are static), so it
    passes through ``jit``, ``vmap`` and ``grad``. Calling it gives the values; it plugs into
    `hjbi_residual`, `policy_from_values` and `equilibrium_from_values` with fast derivatives.

    Attributes:
      params: network parameters (leading ``[m]`` axis on every leaf).
      norm: `Normalization` (value scales, centre, input scale, horizon).
      game: the game, in the networks' dtype.
      model: static `ValueModel`.
      config: static resolved `SolverConfig` (operator, concept, gradient rows, layout).
      controlled: static; whether the diffusion columns of ``D`` are included.
      exact: static; exact Hessian products whatever ``config.operator.method`` (policies,
        diagnostics).
    """

    params: dict
    norm: Normalization
    game: object
    model: ValueModel = struct.field(pytree_node=False)
    config: SolverConfig = struct.field(pytree_node=False)
    controlled: bool = struct.field(pytree_node=False, default=True)
    exact: bool = struct.field(pytree_node=False, default=False)

    # -- values -----------------------------------------------------------------------------
    def __call__(self, t, x) -> jax.Array:
        """[2, m] values of both players in every regime at ``(t [], x [d])``."""
        return self.model.value(self.params, self.norm, self.game, t, x)

    @property
    def dtype(self):
        return self.norm.value_scale.dtype

    def with_exact_operators(self) -> NetworkValue:
        return self.replace(exact=True)

    # -- the derivative hook of `stackjax._residual` ----------------------------------------
    def time_coefficients(self, t):
        """The quadratic head's coefficients of every regime at ``t`` and their time
        derivatives: ``(coef, coef_t)``, `QuadraticCoefficients` with a leading ``[m]``."""
        t = jnp.asarray(t, self.dtype)
        model, norm = self.model, self.norm

        def one(p_i):
            return jax.jvp(
                lambda s: model.time_coefficients(p_i, norm, s), (t,), (jnp.ones_like(t),)
            )

        return jax.vmap(one)(self.params)

    def regime_locals(self, t, key=None, coefs=None):
        """``(params, keys, coef, coef_t)`` of every regime (leading ``[m]``) at time ``t``.

        ``coefs``: the head's ``(coef, coef_t)`` at ``t`` when the caller shares them between
        the states of one time (expanded or factored form); computed here if ``None``.
        """
        if coefs is None:
            coefs = self.time_coefficients(t)
        key = jax.random.key(0) if key is None else key  # only the sketch reads it
        keys = jax.random.split(key, self.model.num_regimes)
        return (self.params, keys, *coefs)

    def regime_derivatives(self, local, i, t, x, coef) -> RegimeDerivatives:
        """Regime ``i``'s derivatives at ``(t, x)`` (see the module docstring)."""
        p_i, key, qc, qc_t = local
        model, norm, game, config = self.model, self.norm, self.game, self.config
        t, x = jnp.asarray(t, self.dtype), jnp.asarray(x, self.dtype)
        operator = "hvp" if self.exact else config.operator.method

        def value_at(s, z, c):
            return model.regime_value_at(p_i, norm, game, i, s, z, c)

        v, v_t = jax.jvp(lambda s, c: value_at(s, x, c), (t, qc), (jnp.ones_like(t), qc_t))
        if operator == "hutchinson":
            coef = sketch_diffusion(coef, key, config.operator.num_probes)
        if operator == "hessian":  # reference: autodiff through the whole value function
            y, hp = gradient_and_products(
                lambda z: model.regime_value(p_i, norm, game, i, t, z), x, coef,
                method="hessian", controlled=self.controlled,
            )  # fmt: skip
        else:
            y, hp = self._split_products(p_i, i, t, x, coef, qc)
        expand = model.expand
        return RegimeDerivatives(
            coefficients=coef,
            value=expand(v),
            time_derivative=expand(v_t),
            gradient=expand(y),
            products=jax.tree.map(expand, hp),
        )

    def _split_products(self, p_i, i, t, x, coef, qc):
        """Gradients and exact Hessian products of one regime's values, structure exploited.

        The quadratic head's Hessian ``S tau H(tau) / s^2`` (and the terminal cost's, when the
        game provides ``terminal_hessian``) does not depend on ``x``: it is applied to the
        diffusion columns as a matrix product. Only the remainder goes through Hessian-vector
        products. Equal to the ``jax.hessian`` path up to round-off (tested).
        """
        model, norm, game = self.model, self.norm, self.game
        with_terminal = callable(getattr(game, "terminal_hessian", None))
        y = jax.jacrev(lambda z: model.regime_value_at(p_i, norm, game, i, t, z, qc))(x)
        directions = diffusion_directions(coef, self.controlled)
        hv = model.regime_hessian_apply(
            p_i, norm, game, i, t, qc, directions, with_terminal=with_terminal
        )
        hp = _split_products(hv, coef, self.controlled)
        if model.correction or not with_terminal:
            _, hp_rest = gradient_and_products(
                lambda z: model.regime_remainder(
                    p_i, norm, game, i, t, z, with_terminal=not with_terminal
                ),
                x, coef, method="hvp", controlled=self.controlled,
            )  # fmt: skip
            hp = jax.tree.map(jnp.add, hp, hp_rest)
        return y, hp

    # -- pointwise results ------------------------------------------------------------------
    def equilibria(self, t, x, key=None, coefs=None):
        """`point_equilibria` at one point: ``(RegimeDerivatives, PointEquilibrium)``."""
        t, x = jnp.asarray(t, self.dtype), jnp.asarray(x, self.dtype)
        local = self.regime_locals(t, key, coefs)
        return point_equilibria(self, self.game, t, x, concept=self.config.concept, local=local)

    def policy(self, t, x) -> GaussianPolicy:
        """Equilibrium `GaussianPolicy` (all regimes) from the networks' exact derivatives."""
        _, eq = self.with_exact_operators().equilibria(t, x)
        return GaussianPolicy.from_equilibrium(eq)

    def _scale(self) -> jax.Array:
        return self.norm.horizon / self.norm.value_scale

    def residual(self, t, x, key=None, coefs=None) -> jax.Array:
        """[2, m] normalised residuals ``R_{k,i} T / S_{k,i}`` at one point."""
        der, eq = self.equilibria(t, x, key, coefs)
        own = der.time_derivative.T + eq.hamiltonian.T
        return coupled_residual(der.value.T, own, self.game.generator) * self._scale()

    def residual_and_state_gradient(self, t, x, key=None, coefs=None):
        """Normalised residual ``[2, m]`` at one point and its state gradient ``[2, m, d]``."""
        t, x = jnp.asarray(t, self.dtype), jnp.asarray(x, self.dtype)
        local = self.regime_locals(t, key, coefs)
        r, dr = residual_and_state_gradient(
            self, self.game, t, x, concept=self.config.concept, local=local
        )
        scale = self._scale()
        return r * scale, dr * scale[..., None]

    # -- batches ------------------------------------------------------------------------------
    def _head_coefficients(self, t):
        """Per-time head coefficients for a batch of times ``t [G]`` (factored form), or
        ``None`` (each group computes its own expanded coefficients)."""
        if self.config.network.head_form == "factored":
            return self.model.factored_coefficients(self.params, self.norm, t)
        return None

    def batch_residuals(self, t, x, keys) -> jax.Array:
        """``[N, 2, m]`` normalised residuals at flat points (``t [N], x [N, d], keys [N]``)
        or at points grouped by time (``t [G], x [G, P, d], keys [G, P]``, ``N = G P``)."""
        t, x, keys = as_groups(t, x, keys)

        def group(ti, xs, ks, ci):
            if ci is None:  # one time's head coefficients, shared by the group's states
                ci = self.time_coefficients(ti)
            return jax.vmap(lambda xi, ki: self.residual(ti, xi, ki, ci))(xs, ks)

        r = jax.vmap(group)(t, x, keys, self._head_coefficients(t))  # [G, P, 2, m]
        return r.reshape(-1, *r.shape[2:])

    def batch_residual_gradients(self, t, x, keys):
        """``(r [N, 2, m], s grad_x r [N, 2, m, d])`` at points as in `batch_residuals`."""
        t, x, keys = as_groups(t, x, keys)

        def group(ti, xs, ks, ci):
            if ci is None:
                ci = self.time_coefficients(ti)
            r, jac = jax.vmap(lambda xi, ki: self.residual_and_state_gradient(ti, xi, ki, ci))(
                xs, ks
            )
            return r, jac * self.norm.state_scale

        r, jac = jax.vmap(group)(t, x, keys, self._head_coefficients(t))
        return r.reshape(-1, *r.shape[2:]), jac.reshape(-1, *jac.shape[2:])

    def residual_vector(self, t, x, keys):
        """``(r [N, 2, m], vector [R])``: the residuals and the flat vector whose sum of
        squares over ``r.size`` is the training loss (residual rows, then the weighted
        state-gradient rows when ``gradient_weight > 0``)."""
        return _residual_vector(self, t, x, keys)


# A jitted function of the value object: a program that evaluates the residuals several times on
# batches of one shape (the Gauss-Newton step linearises, re-evaluates and scores) traces the
# Python residual code once; XLA inlines the call.
@jax.jit
def _residual_vector(network: NetworkValue, t, x, keys):
    weight = float(network.config.operator.gradient_weight)
    if weight > 0:
        r, jac = network.batch_residual_gradients(t, x, keys)
        w = jnp.sqrt(jnp.asarray(weight, r.dtype))
        return r, jnp.concatenate([r.reshape(-1), w * jac.reshape(-1)])
    r = network.batch_residuals(t, x, keys)
    return r, r.reshape(-1)


def as_groups(t, x, keys):
    """Flat points ``(t [N], x [N, d], keys [N])`` become ``N`` groups of one state."""
    if x.ndim == 2:
        return t, x[:, None, :], keys[:, None]
    if x.ndim != 3 or t.shape != x.shape[:1] or keys.shape[:2] != x.shape[:2]:
        raise ValueError(
            "points must be flat (t [N], x [N, d], keys [N]) or grouped by time (t [G], "
            f"x [G, P, d], keys [G, P]); got t {t.shape}, x {x.shape}, keys {keys.shape}."
        )
    return t, x, keys


def network_value(
    game, config: SolverConfig | None, params, norm, *, controlled: bool | None = None
) -> NetworkValue:
    """A `NetworkValue` for ``game`` (cast to the solver's dtype) under the resolved config."""
    config = resolve_config(game, config)
    game = cast_game(game, float_dtype(game, config))
    controlled = detect_controlled(game, config) if controlled is None else controlled
    return NetworkValue(
        params=params,
        norm=norm,
        game=game,
        model=value_model(game, config),
        config=config,
        controlled=controlled,
    )

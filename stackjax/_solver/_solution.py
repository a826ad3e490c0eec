"""`Solution`: the trained networks, their history, diagnostics and result code."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .._evaluate import x0_scale
from .._gibbs import GaussianPolicy
from .._operators import diffusion_margin, parabolicity_margin
from .._residual import coupled_residual
from .._sampling import sample_points
from .._validation import as_key, check_setting
from ._config import SolverConfig
from ._defaults import is_concrete
from ._loop import DIVERGENCE_FACTOR, RESULT_CODES, Status
from ._step import TrainState
from ._value import NetworkValue, value_model

__all__ = ["Solution", "divergence_message", "solution_diagnostics"]

PLAYERS = ("leader", "follower")


class Solution(struct.PyTreeNode):
    """Trained value networks of both players in every regime.

    ``value(t, x) -> [2, m]`` and ``policy(t, x) -> GaussianPolicy`` are pure JAX (jit, vmap
    and grad in ``t``, ``x`` and the parameters); the policy is computed pointwise from the
    networks' gradients and Hessian products (docs/math.md §8), so it plugs into `evaluate`,
    `simulate` and `monte_carlo_cost`.

    Attributes:
      state: the final (resumable) `TrainState`.
      game: the game (in the solver's dtype).
      history: ``step [N]``, ``loss [N]``, ``residual [N, 2, m]`` per Adam step,
        ``refine_loss [J]`` per Gauss-Newton iteration, and ``error_step [E]``,
        ``error_seconds [E]``, ``value_error [E, 2, m]``, ``mean_error [E, 2, m]`` at the
        reference checks (``E = 0`` if none).
      diagnostics: see `solution_diagnostics`; plus ``diverged``, ``train_seconds``.
      status: the traced `Status` of the run (result code, step, loss).
      config: the resolved `SolverConfig` (static).
      controlled: whether the diffusion columns of ``D`` were included (static).
    """

    state: TrainState
    game: object
    history: dict
    diagnostics: dict
    status: Status
    config: SolverConfig = struct.field(pytree_node=False)
    controlled: bool = struct.field(pytree_node=False, default=True)

    @property
    def network(self) -> NetworkValue:
        """The trained `NetworkValue` (a value object with fast derivatives)."""
        return NetworkValue(
            params=self.state.params,
            norm=self.state.norm,
            game=self.game,
            model=value_model(self.game, self.config),
            config=self.config,
            controlled=self.controlled,
        )

    @property
    def model(self):
        return value_model(self.game, self.config)

    @property
    def diverged(self) -> jax.Array:
        """[] bool (batched under ``vmap``): training stopped on a divergence."""
        return self.status.diverged

    @property
    def message(self) -> str:
        """Why training stopped early ("" if it did not; needs a concrete status)."""
        return divergence_message(self.status, self.config)

    def value(self, t, x) -> jax.Array:
        """[2, m] values of both players in every regime at ``(t [], x [d])``."""
        return _value_at(self.network, t, x)

    def policy(self, t, x) -> GaussianPolicy:
        """Equilibrium `GaussianPolicy` (all regimes) from the networks' exact derivatives."""
        return _policy_at(self.network, t, x)

    def residual(self, t, x) -> jax.Array:
        """[2, m] residuals ``R_{k,i}(t, x)`` (exact operators, unnormalised)."""
        return _residual_at(self.network, t, x)


@jax.jit
def _value_at(network, t, x):
    return network(t, x)


@jax.jit
def _policy_at(network, t, x):
    return network.policy(t, x)


@jax.jit
def _residual_at(network, t, x):
    return _coupled_residual(network.with_exact_operators(), t, x)


def _coupled_residual(network, t, x):
    der, eq = network.equilibria(t, x)
    own = der.time_derivative.T + eq.hamiltonian.T
    return coupled_residual(der.value.T, own, network.game.generator)


#: Times on the line ``{(t, x0)}`` where `solution_diagnostics` evaluates the residual.
_X0_TIMES = 16
#: `solve` warns (`AccuracyWarning`) when an error indicator exceeds this relative error.
ACCURACY_THRESHOLD = 1e-2


@functools.partial(jax.jit, static_argnames="num_points")
def _diagnostics(network: NetworkValue, key, *, num_points: int):
    """Parabolicity margins, well-posedness and residual RMS on ``num_points`` points."""
    network = jax.lax.stop_gradient(network.with_exact_operators())
    config, game = network.config, network.game
    sampler = config.sampler
    k_pts, k_dir = jax.random.split(key)
    t, x = sample_points(
        game, k_pts, num_points, scale=sampler.scale, distribution=sampler.distribution
    )

    def at(ti, xi, ki):
        der, eq = network.equilibria(ti, xi, ki)
        v, v_t = der.value.T, der.time_derivative.T
        r = coupled_residual(v, v_t + eq.hamiltonian.T, game.generator)
        if network.controlled and not game.zero_sum:  # genuinely coupled symbol (§5.4 item 4)
            keys = jax.random.split(ki, game.num_regimes)
            margin = jax.vmap(
                lambda c, y, h, k: parabolicity_margin(
                    c, y, h, game.temperatures, k, concept=config.concept, zero_sum=False
                )
            )(der.coefficients, der.gradient, der.products, keys)  # [m]
        else:  # items 2-3: scalar symbol 1/2 xi^T E[sigma sigma^T] xi
            margin = jax.vmap(diffusion_margin)(der.coefficients, eq)
        return r, v, v_t, margin

    # The sampled points and the line {(t, x0)} in one batch (one copy of the residual in
    # the program; the exact operators do not read the keys).
    horizon = game.horizon
    line = horizon * (jnp.arange(_X0_TIMES, dtype=t.dtype) + 0.5) / _X0_TIMES
    x0 = jnp.broadcast_to(game.initial_state, (_X0_TIMES, game.state_dim))
    keys = jax.random.split(k_dir, num_points)
    keys = jnp.concatenate([keys, jax.random.split(jax.random.fold_in(k_dir, 1), _X0_TIMES)])
    r, v, v_t, margin = jax.vmap(at)(jnp.concatenate([t, line]), jnp.concatenate([x, x0]), keys)
    r, r0 = r[:num_points], r[num_points:]
    v, v_t, margin = v[:num_points], v_t[:num_points], margin[:num_points]
    rms = jnp.sqrt(jnp.mean(r**2, axis=0))
    # Residual-implied relative value error (§9.4): the error solves the linearised equation
    # with the residual as source and zero terminal data, so it is about T x residual.
    value_rms = jnp.sqrt(jnp.mean(v**2, axis=0))  # [2, m]
    v0 = network(jnp.zeros((), t.dtype), game.initial_state)  # [2, m]
    return {
        "error_indicator": horizon * rms / value_rms,  # [2, m]
        "error_indicator_x0": horizon * jnp.sqrt(jnp.mean(r0**2, axis=0)) / x0_scale(v0, v),
        "residual_rms": rms,  # [2, m]
        "residual_relative": rms / jnp.sqrt(jnp.mean(v_t**2, axis=0)),  # [2, m] §9.4
        "parabolicity_min": jnp.min(margin, axis=0),  # [m]
        "parabolicity_negative_fraction": jnp.mean(margin < 0, axis=0),  # [m]
        "nonfinite_fraction": jnp.mean(~jnp.isfinite(r), axis=(0, 1)),  # [m] (WP violated)
    }


def solution_diagnostics(solution: Solution, key: jax.Array, *, num_points: int = 256) -> dict:
    """Diagnostics of a solution on ``num_points`` points of the sampling law
    (`SamplerConfig`).

    Returns a dict with the error indicators (predictions of the relative value error made
    without a reference, docs/math.md §9.4): ``error_indicator [2, m]``, ``T`` times the RMS
    residual over the points divided by the RMS value, and ``error_indicator_x0 [2, m]``,
    ``T`` times the RMS residual on 16 times of the line ``{(t, x0)}`` divided by
    ``|V(0, x0)|`` (floored at a tenth of the RMS value, as `evaluate`'s ``value_at_x0``);
    ``residual_rms [2, m]``, ``residual_relative [2, m]`` (divided by the RMS of ``dV/dt``),
    ``parabolicity_min [m]`` and ``parabolicity_negative_fraction [m]`` (§5.4) and
    ``nonfinite_fraction [m]`` (points where the pointwise problem is not well posed, §4.5).
    """
    key = as_key(key)
    check_setting("solution_diagnostics argument num_points", num_points, "int", 1)
    return _diagnostics(solution.network, key, num_points=num_points)


def divergence_message(status: Status, config: SolverConfig) -> str:
    """The message of a stopped run ("" if it did not stop, or if ``status`` is traced)."""
    if not is_concrete(status) or np.ndim(status.code) or int(status.code) == 0:
        return ""
    code, step = int(status.code), int(status.step)
    terms = np.asarray(status.terms)
    loss = float(status.loss)
    bad = np.argwhere(~np.isfinite(terms))
    if code == 4:
        return (
            f"stackjax.solve: the Gauss-Newton loss is non-finite at iteration {step}; the last "
            "finite state is returned. Fix: check the game for non-finite entries and its "
            "well-posedness (temperatures >= 0, positive definite control costs)."
        )
    if code == 1 and bad.size:
        names = ", ".join(f"{PLAYERS[k]} regime {i}" for k, i in bad)
        what = f"the residual loss term became non-finite for {names}"
    elif code == 2:
        worst = np.unravel_index(np.nanargmax(terms), terms.shape)
        what = (
            "the parameter update produced non-finite parameters (largest residual term: "
            f"{PLAYERS[worst[0]]} regime {worst[1]}, {terms[worst]:.3g})"
        )
    elif code == 3:
        worst = np.unravel_index(np.nanargmax(terms), terms.shape)
        what = (
            f"the loss exploded to {loss:.3g} (> {DIVERGENCE_FACTOR:g} times the first "
            f"loss); largest residual term: {PLAYERS[worst[0]]} regime "
            f"{worst[1]} ({terms[worst]:.3g})"
        )
    else:
        what = RESULT_CODES.get(code, f"result code {code}")
    what += (  # the game's values are validated before training, so what is left:
        " (the game's values were checked, so the likely cause is a learning rate too large "
        "for this game's scale, or lost well-posedness where the networks' curvature is "
        "large, docs/math.md §4.5)"
    )
    good = step if code == 2 else max(step - 1, 0)
    rate = config.adam.learning_rate if config.adam.learning_rate is not None else "the default"
    return (
        f"stackjax.solve diverged at step {step}: {what}. Training stopped and the last good "
        f"state (step {good}) is returned. Fix: lower AdamConfig.learning_rate (now {rate}), "
        "set AdamConfig.grad_clip, or check the game's well-posedness."
    )

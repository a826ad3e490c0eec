"""The model-free interface: an environment is a pair of pure functions plus static metadata.

Learners see only ``obs = (t, x, regime)`` and both players' costs per step; they never read
a game's coefficients. `sde_env` builds an environment from any `ControlQuadraticGame` with the
simulator's Euler-Maruyama step and exact regime switching; any user simulator of the same
form works with every learner.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .._simulate import euler_maruyama, holding_time, switching_step
from .._validation import as_key

__all__ = ["Observation", "Environment", "SDEState", "sde_env", "check_environment"]


class Observation(NamedTuple):
    """What both players observe at a grid time.

    Attributes:
      time: [] ``t``.
      state: [d] ``x``.
      regime: [] int32 ``i`` (the regime is observed; its generator is not).
    """

    time: jax.Array
    state: jax.Array
    regime: jax.Array


class Environment(NamedTuple):
    """A regime-switching leader-follower environment on the grid ``t_n = n dt``.

    ``reset(key) -> (state, obs)`` starts an episode at ``t = 0``;
    ``step(key, state, leader_action [k1], follower_action [k2]) -> (state, obs, costs [2],
    done)`` advances by ``dt``. ``costs`` are both players' running costs over the step
    (``approx f_k(x, u) dt``), plus the terminal costs at the last step, where ``done`` is true.
    Entropy terms are not included: each learner pays its own from its own policy density.
    Both functions are pure and jittable; ``state`` is any pytree.

    Attributes:
      reset, step: the two functions.
      horizon: ``T`` (Python float, static).
      dt: grid step; ``T / dt`` must be an integer number of steps.
      state_dim, leader_dim, follower_dim, num_regimes: ``d, k1, k2, m``.
      temperatures: ``(lambda_1, lambda_2)`` of the exploratory game the learners solve.
    """

    reset: Callable
    step: Callable
    horizon: float
    dt: float
    state_dim: int
    leader_dim: int
    follower_dim: int
    num_regimes: int
    temperatures: tuple[float, float]

    @property
    def num_steps(self) -> int:
        """Steps per episode, ``T / dt``."""
        return int(round(self.horizon / self.dt))


class SDEState(struct.PyTreeNode):
    """State of `sde_env`: grid index, state, regime and the time left until the next jump."""

    step_index: jax.Array
    x: jax.Array
    regime: jax.Array
    clock: jax.Array


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`env.{name}` must be a positive int, got {value!r}.")


def check_environment(env: Environment, key: jax.Array | None = None) -> None:
    """Validates an environment's metadata, shapes and (concretely) the finiteness of its costs.

    Runs ``reset`` and one ``step`` with zero actions of the declared dimensions.

    Raises:
      TypeError: if ``env`` is not an `Environment`.
      ValueError: naming the field whose value or shape is wrong, with the fix.
    """
    if not isinstance(env, Environment):
        raise TypeError(
            f"`env` must be a stackjax.rl.Environment, got {type(env).__name__}. Wrap your "
            "simulator's reset/step functions in Environment(reset=..., step=..., ...)."
        )
    for name in ("horizon", "dt"):
        value = getattr(env, name)
        if not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
            raise ValueError(f"`env.{name}` must be a finite Python float, got {value!r}.")
        if value <= 0:
            raise ValueError(f"`env.{name}` must be > 0, got {value}.")
    steps = env.horizon / env.dt
    if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
        raise ValueError(
            f"`env.horizon / env.dt` must be an integer number of steps, got "
            f"{env.horizon} / {env.dt} = {steps}. Fix: choose dt = horizon / N."
        )
    for name in ("state_dim", "leader_dim", "follower_dim", "num_regimes"):
        _positive_int(name, getattr(env, name))
    temps = tuple(env.temperatures)
    if len(temps) != 2 or not all(math.isfinite(float(t)) and float(t) >= 0 for t in temps):
        raise ValueError(
            f"`env.temperatures` must be two finite numbers >= 0 (lambda_1, lambda_2), got "
            f"{env.temperatures!r}."
        )
    key = jax.random.key(0) if key is None else as_key(key)
    reset_key, step_key = jax.random.split(key)
    d, k1, k2 = env.state_dim, env.leader_dim, env.follower_dim
    state, obs = env.reset(reset_key)
    _check_obs(obs, d, "reset")
    dtype = jnp.asarray(obs.state).dtype
    try:
        out = env.step(step_key, state, jnp.zeros(k1, dtype), jnp.zeros(k2, dtype))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"`env.step` failed on actions of the declared shapes leader_dim = {k1}, "
            f"follower_dim = {k2}: {err}. Fix `env.leader_dim` / `env.follower_dim`."
        ) from err
    if not isinstance(out, tuple) or len(out) != 4:
        raise ValueError(
            "`env.step` must return (state, obs, costs [2], done), got "
            f"{type(out).__name__} of length {len(out) if isinstance(out, tuple) else '?'}."
        )
    _, obs, costs, done = out
    _check_obs(obs, d, "step")
    costs = jnp.asarray(costs)
    if costs.shape != (2,):
        raise ValueError(
            f"`costs` returned by env.step must have shape [2] (leader, follower), got "
            f"{costs.shape}."
        )
    if jnp.shape(done) != ():
        raise ValueError(f"`done` returned by env.step must be a scalar, got {jnp.shape(done)}.")
    if not np.all(np.isfinite(np.asarray(costs))):
        raise ValueError(
            f"`costs` returned by env.step are not finite ({np.asarray(costs)}) at zero actions "
            "from a reset state. Fix the environment's cost function."
        )


def _check_obs(obs, d, where):
    if not isinstance(obs, tuple) or len(obs) != 3:
        raise ValueError(
            f"`obs` returned by env.{where} must be (time, state [d], regime), got "
            f"{type(obs).__name__}."
        )
    if jnp.shape(obs[1]) != (d,):
        raise ValueError(
            f"`obs.state` returned by env.{where} must have shape [state_dim] = ({d},), got "
            f"{jnp.shape(obs[1])}. Fix `env.state_dim` or the environment."
        )
    if jnp.shape(obs[0]) != () or jnp.shape(obs[2]) != ():
        raise ValueError(
            f"`obs.time` and `obs.regime` returned by env.{where} must be scalars, got "
            f"{jnp.shape(obs[0])} and {jnp.shape(obs[2])}."
        )


def sde_env(
    game,
    dt: float,
    *,
    initial_scale: float = 1.0,
    initial_regime: int | None = None,
) -> Environment:
    """An `Environment` simulating a `ControlQuadraticGame` (docs/math.md §1, §9.5).

    Each step holds the actions fixed over ``[t_n, t_n + dt)``, applies Euler-Maruyama to the
    classical dynamics ``dX = b(X, u) dt + sigma(X, u) dW`` and switches regimes exactly
    (exponential holding times, a step that straddles a jump is split at the jump time; the
    same step as `stackjax.simulate`). ``costs = f_k(x, u) h`` summed over the sub-steps, plus
    ``psi_k(X_T)`` at the last step.

    Args:
      game: any `ControlQuadraticGame` (its coefficients stay inside the closures).
      dt: grid step ``> 0`` with ``T / dt`` an integer.
      initial_scale: ``x_0 = game.initial_state + initial_scale * N(0, I)`` (``0``: fixed).
      initial_regime: fixed starting regime, or ``None`` for a uniform draw.

    Returns:
      The `Environment` (temperatures taken from the game).
    """
    if not isinstance(dt, (int, float, np.floating)) or not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"`dt` must be a finite float > 0, got {dt!r}.")
    horizon = float(game.horizon)
    steps = horizon / dt
    if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
        raise ValueError(
            f"`dt` must divide the horizon T = {horizon} into an integer number of steps, got "
            f"dt = {dt} (T / dt = {steps}). Fix: dt = T / N."
        )
    if not math.isfinite(initial_scale) or initial_scale < 0:
        raise ValueError(f"`initial_scale` must be >= 0, got {initial_scale!r}.")
    m = int(game.num_regimes)
    if initial_regime is not None and not 0 <= int(initial_regime) < m:
        raise ValueError(f"`initial_regime` must be None or in [0, {m - 1}], got {initial_regime}.")
    num_steps = int(round(steps))
    h = jnp.asarray(horizon / num_steps, game.initial_state.dtype)
    regime = None if initial_regime is None else jnp.asarray(initial_regime, jnp.int32)
    # `Partial`s, not closures: pytrees whose leaves are the game's arrays, so that learners
    # reuse one compiled program for every game of the same structure (rl.learn).
    reset = jax.tree_util.Partial(_sde_reset, game, jnp.asarray(initial_scale, h.dtype), regime)
    step = jax.tree_util.Partial(_sde_step, game, h, jnp.asarray(num_steps, jnp.int32))
    lam = np.asarray(game.temperatures, float)
    return Environment(
        reset=reset, step=step, horizon=horizon, dt=horizon / num_steps,
        state_dim=int(game.state_dim), leader_dim=int(game.leader_dim),
        follower_dim=int(game.follower_dim), num_regimes=m,
        temperatures=(float(lam[0]), float(lam[1])),
    )  # fmt: skip


def _sde_reset(game, initial_scale, initial_regime, key):
    """`sde_env`'s reset: ``x_0 = x0 + initial_scale N(0, I)``, a uniform or fixed regime."""
    x0 = game.initial_state
    dtype = x0.dtype
    x_key, i_key, c_key = jax.random.split(key, 3)
    x = x0 + initial_scale * jax.random.normal(x_key, x0.shape, dtype)
    if initial_regime is None:
        i = jax.random.randint(i_key, (), 0, game.num_regimes, jnp.int32)
    else:
        i = initial_regime
    state = SDEState(
        step_index=jnp.zeros((), jnp.int32), x=x, regime=i,
        clock=holding_time(c_key, game, i, dtype),
    )  # fmt: skip
    return state, Observation(jnp.zeros((), dtype), x, i)


def _sde_step(game, h, num_steps, key, state, leader_action, follower_action):
    """`sde_env`'s step: Euler-Maruyama over ``h`` with exact regime switching."""
    dtype = state.x.dtype

    def substep(x, i, length, k):
        coef = game.coefficients(x, i)
        dw = jnp.sqrt(length) * jax.random.normal(k, (coef.c.shape[0],), dtype)
        x_new = euler_maruyama(coef, x, leader_action, follower_action, length, dw)
        return x_new, coef.running_cost(leader_action, follower_action) * length

    x, j, clock, cost = switching_step(game, substep, state.x, state.regime, state.clock, h, key)
    n = state.step_index + 1
    done = n >= num_steps
    cost = cost + jnp.where(done, game.terminal_cost(x, j), 0.0)
    new = SDEState(step_index=n, x=x, regime=j, clock=clock)
    return new, Observation(n * h, x, j), cost, done

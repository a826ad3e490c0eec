"""The control-quadratic game protocol, a base class and a functional constructor.

Every solver in stackjax only needs a game's pointwise coefficients at one state and one regime
(`Coefficients`, docs/math.md §3.1) and its terminal costs. A game is any pytree with the
members of `ControlQuadraticGame`; `GameBase` derives the static dimensions and declares every
optional hook with its default, so a class-style game writes its data, `coefficients` and
`terminal_cost`; `make_game` builds one from two functions. `LQGame` (`_game`) is the
linear-quadratic game.

Shape legend: d state, k1 leader control, k2 follower control, n noise columns, m regimes;
a leading ``[2]`` axis is the player (0 = leader, 1 = follower).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ._validation import as_float_array, check_generator, fail, is_concrete

__all__ = [
    "Coefficients",
    "ControlQuadraticGame",
    "FunctionalGame",
    "GameBase",
    "default_float_dtype",
    "make_game",
]


def default_float_dtype():
    """float64 when `jax_enable_x64` is on, float32 otherwise."""
    return jnp.zeros(()).dtype if jax.config.jax_enable_x64 else jnp.float32


class Coefficients(struct.PyTreeNode):
    """Pointwise coefficients of a control-quadratic game at one state and one regime (§3.1).

    Drift ``b(x, u) = beta + B1 u1 + B2 u2``; diffusion column ``l``:
    ``sigma^l(x, u) = c[l] + D1[l] u1 + D2[l] u2``; running cost of player ``k``:
    ``f_k = f0[k] + 2 u1.w1[k] + 2 u2.w2[k] + u1.R11[k] u1 + 2 u1.R12[k] u2 + u2.R22[k] u2``.

    Attributes:
      beta: [d] control-free drift.
      B1: [d, k1] leader control-to-drift matrix.
      B2: [d, k2] follower control-to-drift matrix.
      c: [n, d] control-free diffusion columns.
      D1: [n, d, k1] leader control parts of the diffusion columns.
      D2: [n, d, k2] follower control parts of the diffusion columns.
      f0: [2] control-free running costs.
      w1: [2, k1] leader-control linear cost coefficients (cost carries ``2 u1.w1``).
      w2: [2, k2] follower-control linear cost coefficients.
      R11: [2, k1, k1] symmetric leader-control cost blocks.
      R12: [2, k1, k2] cross cost blocks (``R21 = R12^T``).
      R22: [2, k2, k2] symmetric follower-control cost blocks.
    """

    beta: jax.Array
    B1: jax.Array
    B2: jax.Array
    c: jax.Array
    D1: jax.Array
    D2: jax.Array
    f0: jax.Array
    w1: jax.Array
    w2: jax.Array
    R11: jax.Array
    R12: jax.Array
    R22: jax.Array

    def drift(self, u1: jax.Array, u2: jax.Array) -> jax.Array:
        """[d] drift ``beta + B1 u1 + B2 u2``."""
        return self.beta + self.B1 @ u1 + self.B2 @ u2

    def diffusion(self, u1: jax.Array, u2: jax.Array) -> jax.Array:
        """[n, d] diffusion columns ``c + D1 u1 + D2 u2`` (row ``l`` is column ``l``)."""
        return self.c + self.D1 @ u1 + self.D2 @ u2

    def running_cost(self, u1: jax.Array, u2: jax.Array) -> jax.Array:
        """[2] running costs ``f_k(x, u1, u2)`` of both players."""
        quadratic = (
            jnp.einsum("a,kab,b->k", u1, self.R11, u1)
            + 2.0 * jnp.einsum("a,kab,b->k", u1, self.R12, u2)
            + jnp.einsum("a,kab,b->k", u2, self.R22, u2)
        )
        return self.f0 + 2.0 * (self.w1 @ u1 + self.w2 @ u2) + quadratic


@runtime_checkable
class ControlQuadraticGame(Protocol):
    """What a game must provide (docs/math.md §3.1); `GameBase` supplies all but three.

    Drift and diffusion affine in the controls, running costs quadratic in them, arbitrary
    smooth dependence on the state. Methods are written for one state and one regime and are
    lifted with `jax.vmap` by the callers.

    Required:
      horizon: [] terminal time ``T > 0``.
      generator: [m, m] generator ``q`` of the regime chain (rows sum to 0).
      temperatures: [2] entropy temperatures ``(lambda_1, lambda_2) >= 0``.
      initial_state: [d] reference initial state ``x0``.
      coefficients(x [d], regime []) -> `Coefficients`.
      terminal_cost(x [d], regime []) -> [2] ``psi_k(x)``.

    Derived by `GameBase` (static ints): num_regimes, state_dim, leader_dim, follower_dim,
    noise_dim.

    Optional hooks (defaults in `GameBase`):
      zero_sum: static bool, False; if true the follower's costs are minus the leader's (§6).
      has_controlled_diffusion: static bool, True; False promises ``D1 = D2 = 0`` (the solver
        then skips the control columns of the diffusion).
      quadratic_value: static bool, False; True promises values quadratic in ``x`` (the
        solver's quadratic head is then exact and the MLP correction is left out).
      terminal_hessian(regime) -> [2, d, d] or None: the constant Hessian of the terminal
        costs, applied as one matrix product instead of autodiff Hessian products.
      validate() -> None: checks concrete values, raising ``ValueError`` naming the field.
    """

    horizon: jax.Array
    generator: jax.Array
    temperatures: jax.Array
    initial_state: jax.Array
    num_regimes: int
    state_dim: int
    leader_dim: int
    follower_dim: int
    noise_dim: int
    zero_sum: bool

    def coefficients(self, x: jax.Array, regime: jax.Array) -> Coefficients:
        """Pointwise coefficients at state ``x`` [d] in ``regime`` (int scalar)."""
        ...

    def terminal_cost(self, x: jax.Array, regime: jax.Array) -> jax.Array:
        """[2] terminal costs ``psi_k(x)`` in ``regime``."""
        ...


class GameBase:
    """Mixin for class-style games: static dimensions derived, optional hooks defaulted.

    A subclass (usually also a ``flax.struct.PyTreeNode``) provides ``horizon``,
    ``generator``, ``temperatures``, ``initial_state``, ``coefficients`` and
    ``terminal_cost``; the dimensions come from the shapes of ``generator``,
    ``initial_state`` and of ``coefficients(initial_state, 0)`` (traced abstractly, no
    computation). Override any hook of `ControlQuadraticGame` by a field or property.
    """

    zero_sum = False
    has_controlled_diffusion = True
    quadratic_value = False
    terminal_hessian = None

    @property
    def num_regimes(self) -> int:
        return int(jnp.shape(self.generator)[-1])

    @property
    def state_dim(self) -> int:
        return int(jnp.shape(self.initial_state)[-1])

    def _coefficient_shapes(self) -> Coefficients:
        x = jax.ShapeDtypeStruct(jnp.shape(self.initial_state), jnp.result_type(float))
        return jax.eval_shape(self.coefficients, x, jnp.zeros((), jnp.int32))

    @property
    def leader_dim(self) -> int:
        return int(self._coefficient_shapes().B1.shape[-1])

    @property
    def follower_dim(self) -> int:
        return int(self._coefficient_shapes().B2.shape[-1])

    @property
    def noise_dim(self) -> int:
        return int(self._coefficient_shapes().c.shape[0])

    def validate(self) -> None:
        """Checks shapes always and values when concrete; raises ``ValueError`` naming the
        field, what was expected, what was got and the fix."""
        validate_protocol_game(self)


class SymbolGame(GameBase):
    """`GameBase` for games stored under the symbols of docs/math.md (``T``, ``Gamma``,
    ``lam``, ``x0``): the protocol's names are aliases of those fields."""

    @property
    def horizon(self) -> jax.Array:
        return self.T

    @property
    def generator(self) -> jax.Array:
        return self.Gamma

    @property
    def temperatures(self) -> jax.Array:
        return self.lam

    @property
    def initial_state(self) -> jax.Array:
        return self.x0


def validate_game(game) -> None:
    """``game.validate()`` when the game has it, else the protocol checks."""
    hook = getattr(game, "validate", None)
    if callable(hook):
        hook()
    else:
        validate_protocol_game(game)


def validate_protocol_game(game, where: str | None = None) -> None:
    """Checks a `ControlQuadraticGame`: the horizon, generator, temperatures, initial state,
    the shapes of its coefficients and terminal costs, and their finiteness at ``x0``."""
    where = where or type(game).__name__
    for name in ("horizon", "generator", "temperatures", "initial_state"):
        if not hasattr(game, name):
            fail(where, name, "is missing", f"give the game a `{name}` (ControlQuadraticGame)")
    horizon = jnp.asarray(game.horizon)
    if horizon.shape != ():
        fail(where, "horizon", f"must be a scalar, got shape {horizon.shape}", "pass a float")
    if is_concrete(horizon) and not (np.isfinite(float(horizon)) and float(horizon) > 0):
        fail(where, "horizon", f"must be finite and > 0, got {float(horizon)}",
             "pass a positive horizon T")  # fmt: skip
    check_generator(game.generator, "generator", where)
    lam = jnp.asarray(game.temperatures)
    if lam.shape != (2,):
        fail(where, "temperatures", f"must have shape [2] (leader, follower), got {lam.shape}",
             "pass (lambda_1, lambda_2)")  # fmt: skip
    if is_concrete(lam):
        arr = np.asarray(lam)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            fail(where, "temperatures", f"must be finite and >= 0, got {arr}",
                 "use temperatures >= 0 (0 is the classical game)")  # fmt: skip
    x0 = jnp.asarray(game.initial_state)
    if x0.ndim != 1 or x0.shape[0] < 1:
        fail(where, "initial_state", f"must have shape [d] with d >= 1, got {x0.shape}",
             "pass a state vector")  # fmt: skip
    d, m = x0.shape[0], int(jnp.shape(game.generator)[0])
    try:
        coef = jax.eval_shape(game.coefficients, x0, jnp.zeros((), jnp.int32))
        psi = jax.eval_shape(game.terminal_cost, x0, jnp.zeros((), jnp.int32))
    except Exception as err:  # a user function that cannot be traced: say where
        fail(where, "coefficients", f"could not be evaluated at (initial_state, regime 0): "
             f"{type(err).__name__}: {err}", "make coefficients(x [d], regime []) and "
             "terminal_cost(x, regime) pure JAX functions", error=TypeError)  # fmt: skip
    k1, k2, n = coef.B1.shape[-1], coef.B2.shape[-1], coef.c.shape[0]
    expected = {
        "beta": (d,), "B1": (d, k1), "B2": (d, k2), "c": (n, d), "D1": (n, d, k1),
        "D2": (n, d, k2), "f0": (2,), "w1": (2, k1), "w2": (2, k2), "R11": (2, k1, k1),
        "R12": (2, k1, k2), "R22": (2, k2, k2),
    }  # fmt: skip
    for field, shape in expected.items():
        got = getattr(coef, field).shape
        if got != shape:
            fail(where, f"coefficients(x, i).{field}", f"must have shape {shape} (d={d}, "
                 f"k1={k1} from B1, k2={k2} from B2, n={n} from c), got {got}",
                 "fix the shapes returned by coefficients")  # fmt: skip
    if psi.shape != (2,):
        fail(where, "terminal_cost(x, i)", f"must have shape [2], got {psi.shape}",
             "return both players' terminal costs")  # fmt: skip
    if is_concrete((game, x0)):
        for i in range(m):
            values = game.coefficients(x0, i), game.terminal_cost(x0, i)
            leaves = jax.tree_util.tree_leaves_with_path(values)
            for path, leaf in leaves:
                if not np.all(np.isfinite(np.asarray(leaf))):
                    fail(where, f"coefficients / terminal_cost{jax.tree_util.keystr(path)}",
                         f"is not finite at the initial state in regime {i}",
                         "check the game's parameters for NaN or inf")  # fmt: skip


class FunctionalGame(GameBase, struct.PyTreeNode):
    """A game made of two functions and its data (`make_game`).

    Attributes:
      horizon: [] ``T``.  generator: [m, m].  temperatures: [2].  initial_state: [d].
      params: any pytree of arrays passed to the two functions (differentiable).
      coefficient_fn, terminal_cost_fn: static functions ``(x, regime, params)`` (or ``(x,
        regime)`` when ``params`` is None).
      zero_sum, has_controlled_diffusion, quadratic_value: static hooks.
      terminal_hessian_fn: static optional ``(regime, params) -> [2, d, d]``.
    """

    horizon: jax.Array
    generator: jax.Array
    temperatures: jax.Array
    initial_state: jax.Array
    params: Any = None
    coefficient_fn: Callable = struct.field(pytree_node=False, default=None)
    terminal_cost_fn: Callable = struct.field(pytree_node=False, default=None)
    zero_sum: bool = struct.field(pytree_node=False, default=False)
    has_controlled_diffusion: bool = struct.field(pytree_node=False, default=True)
    quadratic_value: bool = struct.field(pytree_node=False, default=False)
    terminal_hessian_fn: Callable | None = struct.field(pytree_node=False, default=None)

    def _call(self, fn, *args):
        return fn(*args) if self.params is None else fn(*args, self.params)

    def coefficients(self, x: jax.Array, regime: jax.Array) -> Coefficients:
        return self._call(self.coefficient_fn, x, regime)

    def terminal_cost(self, x: jax.Array, regime: jax.Array) -> jax.Array:
        return self._call(self.terminal_cost_fn, x, regime)

    @property
    def terminal_hessian(self):
        if self.terminal_hessian_fn is None:
            return None
        return lambda regime: self._call(self.terminal_hessian_fn, regime)


def make_game(
    *,
    horizon,
    generator,
    temperatures,
    initial_state,
    coefficients: Callable,
    terminal_cost: Callable,
    params=None,
    zero_sum: bool = False,
    has_controlled_diffusion: bool = True,
    quadratic_value: bool = False,
    terminal_hessian: Callable | None = None,
) -> FunctionalGame:
    """A `ControlQuadraticGame` from two functions: the model and nothing else.

    Args:
      horizon: [] ``T > 0``.
      generator: [m, m] regime generator (``[[0.0]]`` for one regime).
      temperatures: [2] ``(lambda_1, lambda_2) >= 0``.
      initial_state: [d] reference initial state ``x0``.
      coefficients: ``(x [d], regime [] int[, params]) -> Coefficients`` (docs/math.md §3.1).
      terminal_cost: ``(x [d], regime [][, params]) -> [2]``.
      params: optional pytree of arrays handed to the functions as their last argument (keep
        numbers here rather than in closures: they are then traced, not baked in, and
        ``jax.grad`` can differentiate a solution with respect to them).
      zero_sum, has_controlled_diffusion, quadratic_value: hooks of `ControlQuadraticGame`.
      terminal_hessian: optional ``(regime[, params]) -> [2, d, d]`` constant Hessian of the
        terminal costs.

    Returns:
      A `FunctionalGame` (a pytree), validated like every game (`GameBase.validate`).

    Raises:
      TypeError / ValueError naming the argument, what was expected, what was got and the fix.
    """
    for name, fn in (("coefficients", coefficients), ("terminal_cost", terminal_cost)):
        if not callable(fn):
            fail("make_game", name, f"must be a function (x, regime) -> ..., got "
                 f"{type(fn).__name__}", "pass a function", error=TypeError)  # fmt: skip
    flags = {
        "zero_sum": zero_sum,
        "has_controlled_diffusion": has_controlled_diffusion,
        "quadratic_value": quadratic_value,
    }
    for name, flag in flags.items():
        if not isinstance(flag, bool | np.bool_):
            fail("make_game", name, f"must be a bool, got {type(flag).__name__} {flag!r}",
                 f"pass {name}=True or False", error=TypeError)  # fmt: skip
    dtype = default_float_dtype()
    game = FunctionalGame(
        horizon=as_float_array(horizon, "horizon", dtype),
        generator=as_float_array(generator, "generator", dtype),
        temperatures=as_float_array(temperatures, "temperatures", dtype),
        initial_state=as_float_array(initial_state, "initial_state", dtype),
        params=params,
        coefficient_fn=coefficients,
        terminal_cost_fn=terminal_cost,
        zero_sum=bool(zero_sum),
        has_controlled_diffusion=bool(has_controlled_diffusion),
        quadratic_value=bool(quadratic_value),
        terminal_hessian_fn=terminal_hessian,
    )
    validate_protocol_game(game, "make_game")
    return game

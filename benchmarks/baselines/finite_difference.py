"""Grid finite-difference solver of the coupled exploratory HJB system vs stackjax.solve.

The classical baseline: the weakly coupled exploratory HJB system of
docs/math.md §5.1 (both players, all regimes, Stackelberg concept) discretised on a uniform tensor
grid in a box around ``x0`` and integrated backward in time from ``V(T) = psi``.

Discretisation (method of lines):

* space: second-order central differences on a uniform grid of ``N`` nodes per axis in the box
  ``x0 + [-L, L]^d``: ``grad V`` (``(V[j+1] - V[j-1]) / 2h``), the full Hessian including the
  mixed terms (``(V[++] - V[+-] - V[-+] + V[--]) / 4h^2``; needed because the state-dependent
  diffusion ``C^l x + s^l`` has off-diagonal ``sigma sigma^T``). The diffusion is uncontrolled
  (``D = 0``), so the system is semilinear and the Hamiltonian is evaluated pointwise;
* boundary: one ghost layer per face filled by extrapolation along each axis in turn (corners
  included). ``boundary="linear"`` (default): ``V[-1] = 2 V[0] - V[1]``, i.e. zero normal
  second derivative, the usual "linearity" condition of a solver that knows nothing about the
  growth of ``V``. ``boundary="quadratic"``: ``V[-1] = 3 V[0] - 3 V[1] + V[2]``, exact for the
  known quadratic growth of LQ values;
* Hamiltonian: ``H^*_{k,i}`` from the grid derivatives by stackjax's own pointwise algebra
  (`stackjax.pre_hamiltonian`, `stackjax.hessian_products`, `stackjax.pointwise_equilibrium`,
  docs/math.md §3-4), vmapped over nodes and regimes. Only the *discretisation* is the baseline;
  the pointwise equilibrium is shared with stackjax on purpose (same maths, no second
  transcription);
* time: classical RK4 in ``tau = T - t`` (``dV/dtau = H^* + sum_j Gamma_ij V_j``), a fixed step
  from a CFL estimate at the terminal data (diffusion ``4 a_jj / h^2`` plus mixed terms,
  advection ``|b_j| / h`` of the closed-loop drift, regime rates; RK4 is stable for
  ``|lambda dt| <~ 2.8``), under one ``jax.jit`` around ``lax.scan``;
* output: the grid values are interpolated (tensor cubic Lagrange, exact on cubics) at the
  evaluation points after every step, and cubic Lagrange in time between steps, so no time
  history of the grid is stored.

Why the boundary matters: central differences (and the cubic interpolation) are *exact* on
quadratics, and the exact values of an LQ game are quadratic in ``x`` (docs/math.md §7). With the
quadratic-growth boundary the grid solution is therefore the RK4 solution of the Riccati
equations at every ``N >= 4`` (error = time-stepping error only): the LQ test problem is
degenerate for a grid with that boundary condition, and it is reported only as a check. With the
linear (growth-agnostic) boundary the error comes from the boundary layer and shrinks as the grid
refines (measured: like ``h^2``, nearly independent of ``L``), as it would for a non-quadratic
problem; that is the baseline.

Accuracy is measured as stackjax measures it (docs/math.md §9.2): relative L2 error of ``V`` against
`stackjax.riccati_reference` (float64) per player and regime, maximum over ``(k, i)``, at
``t ~ U[0, T]``, ``x ~ N(x0, I_d)`` **restricted to the box** ``|x - x0|_inf <= 3``
(rejection; the same points for every grid and for stackjax; the grid boxes all contain it).

stackjax side, in the same run: ``stackjax.solve`` with the default `SolverConfig` in float32
(``LayoutConfig(dtype="float32")``, ``verbose=False``; for these LQ games Gauss-Newton iterations
only, no Adam steps) and a few budgets of Gauss-Newton iterations (``GaussNewtonConfig.steps``),
wall time of the call (compilation included), errors on the same points.

Run: ``python benchmarks/baselines/finite_difference.py`` (d in {1, 2, 3}, ~40 min on the
loaded 2-core VM)
or ``--quick`` (CI smoke run: d = 1, two linear grids plus the quadratic check, the scipy
reference, no stackjax runs unless ``--budgets`` is given; ~15 s of CPU time). Writes
``<out>/finite_difference.json`` (JSON lines) and ``<out>/finite_difference.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import math
import os
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import stackjax as sj  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import (  # noqa: E402
    DEFAULT_RESULTS_DIR,
    device_label,
    device_string,
    format_table,
    timestamp,
    write_jsonl,
)

BOUNDARIES = ("linear", "quadratic")
RK4_STABILITY = 2.5  # |lambda dt| bound used for the step (RK4: ~2.78 real, ~2.83 imaginary)
EVAL_HALF_WIDTH = 3.0  # evaluation box |x - x0|_inf <= 3 (standard deviations of N(x0, I))
TARGETS = (1e-2, 5e-3, 1e-3, 1e-4)


# ---------------------------------------------------------------------------------------------
# Grid solver.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """Settings of the grid solver (frozen and hashable: a static argument of the jitted sweep).

    Attributes:
      num_points: nodes ``N`` per axis (``>= 4``); spacing ``h = 2 L / (N - 1)``.
      half_width: ``L``: the box is ``x0 + [-L, L]^d``.
      boundary: ``"linear"`` (zero normal second derivative) or ``"quadratic"`` (exact on
        quadratic growth) ghost-node extrapolation.
      cfl: safety factor on the RK4 stability step (``dt = cfl * 2.5 / lambda_max``).
      min_steps: lower bound on the number of RK4 steps over ``[0, T]``.
      concept: ``"stackelberg"`` or ``"nash"``.
    """

    num_points: int
    half_width: float
    boundary: str = "linear"
    cfl: float = 0.8
    min_steps: int = 8
    concept: str = "stackelberg"

    def __post_init__(self):
        if int(self.num_points) < 4:
            raise ValueError(f"GridConfig.num_points must be >= 4, got {self.num_points}.")
        if not self.half_width > 0:
            raise ValueError(f"GridConfig.half_width must be > 0, got {self.half_width}.")
        if self.boundary not in BOUNDARIES:
            raise ValueError(
                f"GridConfig.boundary must be one of {BOUNDARIES}, got {self.boundary!r}."
            )
        if not 0 < self.cfl <= 1:
            raise ValueError(f"GridConfig.cfl must be in (0, 1], got {self.cfl}.")
        if int(self.min_steps) < 4:
            raise ValueError(f"GridConfig.min_steps must be >= 4, got {self.min_steps}.")

    def spacing(self) -> float:
        return 2.0 * self.half_width / (self.num_points - 1)


def grid_nodes(center: jax.Array, config: GridConfig) -> tuple[jax.Array, jax.Array]:
    """Lower corner ``lo`` [d] and all nodes [N^d, d] (C order: axis ``j`` <-> coordinate ``j``)."""
    d = center.shape[0]
    lo = center - config.half_width
    axis = jnp.arange(config.num_points, dtype=center.dtype) * config.spacing()
    mesh = jnp.meshgrid(*([axis] * d), indexing="ij")
    return lo, lo + jnp.stack([g.ravel() for g in mesh], axis=-1)


def pad_ghosts(values: jax.Array, num_axes: int, boundary: str) -> jax.Array:
    """Adds one ghost layer on both ends of the last ``num_axes`` axes by extrapolation.

    Axes are padded one after the other, so corner ghosts extrapolate already padded layers.
    ``linear``: ``g = 2 v0 - v1``; ``quadratic``: ``g = 3 v0 - 3 v1 + v2``.

    Args:
      values: [..., N_1, ..., N_d].
    Returns:
      [..., N_1 + 2, ..., N_d + 2].
    """
    for axis in range(values.ndim - num_axes, values.ndim):

        def take(j, axis=axis):
            return jax.lax.index_in_dim(values, j, axis, keepdims=True)

        if boundary == "linear":
            low, high = 2 * take(0) - take(1), 2 * take(-1) - take(-2)
        else:
            low = 3 * take(0) - 3 * take(1) + take(2)
            high = 3 * take(-1) - 3 * take(-2) + take(-3)
        values = jnp.concatenate([low, values, high], axis=axis)
    return values


def fd_derivatives(values: jax.Array, h: float, num_axes: int, boundary: str):
    """Central-difference gradients and Hessians at every node.

    Args:
      values: [..., N_1, ..., N_d] (``d = num_axes`` grid axes last).
      h: grid spacing (all axes).
    Returns:
      ``grad [..., d, N...]`` and ``hess [..., d, d, N...]`` (symmetric).
    """
    d = num_axes
    padded = pad_ghosts(values, d, boundary)
    lead = values.ndim - d
    sizes = values.shape[lead:]

    def shifted(offsets):
        index = [slice(None)] * lead + [
            slice(1 + o, 1 + o + n) for o, n in zip(offsets, sizes, strict=True)
        ]
        return padded[tuple(index)]

    unit = np.eye(d, dtype=int)
    center = shifted([0] * d)
    grad = [(shifted(unit[j]) - shifted(-unit[j])) / (2 * h) for j in range(d)]
    hess = [[None] * d for _ in range(d)]
    for j in range(d):
        hess[j][j] = (shifted(unit[j]) - 2 * center + shifted(-unit[j])) / h**2
        for k in range(j + 1, d):
            ej, ek = unit[j], unit[k]
            mixed = (shifted(ej + ek) - shifted(ej - ek) - shifted(ek - ej) + shifted(-ej - ek)) / (
                4 * h**2
            )
            hess[j][k] = hess[k][j] = mixed
    grad = jnp.stack(grad, axis=lead)
    hess = jnp.stack([jnp.stack(row, axis=lead) for row in hess], axis=lead)
    return grad, hess


def _point_hamiltonian(game, concept, x, y, M):
    """At one node: ``H^*`` [m, 2], closed-loop drift [m, d] and ``a = sigma sigma^T / 2``
    [m, d, d] from gradients ``y`` [m, 2, d] and Hessians ``M`` [m, 2, d, d] (docs/math.md §4.3)."""

    def regime(i, y_i, M_i):
        coef = game.coefficients(x, i)
        pre = sj.pre_hamiltonian(coef, y_i, sj.hessian_products(M_i, coef))
        # D = 0: the curvature blocks are R itself (docs/math.md §3.4), independent of the node;
        # taking them unbatched lets XLA factor them once per regime instead of per node.
        pre = pre.replace(R11=coef.R11, R12=coef.R12, R22=coef.R22)
        eq = sj.pointwise_equilibrium(
            pre, game.temperatures, concept=concept, zero_sum=game.zero_sum
        )
        drift = coef.beta + coef.B1 @ eq.mean_leader + coef.B2 @ eq.mean_follower
        return eq.hamiltonian, drift, 0.5 * coef.c.T @ coef.c

    return jax.vmap(regime)(jnp.arange(game.num_regimes), y, M)


def _hamiltonian_on_grid(game, config: GridConfig, nodes, values):
    """``H^*`` [2, m, P], drift [P, m, d], ``a`` [P, m, d, d] from values [2, m, N...]."""
    d = nodes.shape[-1]
    grad, hess = fd_derivatives(values, config.spacing(), d, config.boundary)
    P = nodes.shape[0]
    y = jnp.moveaxis(grad.reshape(2, game.num_regimes, d, P), -1, 0).swapaxes(1, 2)
    M = jnp.moveaxis(hess.reshape(2, game.num_regimes, d, d, P), -1, 0).swapaxes(1, 2)
    H, drift, a = jax.vmap(functools.partial(_point_hamiltonian, game, config.concept))(nodes, y, M)
    return jnp.transpose(H, (2, 1, 0)), drift, a


def _terminal_values(game, nodes, num_points):
    d = nodes.shape[-1]
    psi = jax.vmap(
        lambda x: jax.vmap(lambda i: game.terminal_cost(x, i))(jnp.arange(game.num_regimes))
    )
    values = jnp.transpose(psi(nodes), (2, 1, 0))  # [2, m, P]
    return values.reshape((2, game.num_regimes) + (num_points,) * d)


@jax.jit
def _terminal_rates(game, half_width):
    """Largest diffusion and advection rates at the terminal data over the box corners.

    Returns ``(diffusion, advection)`` with ``diffusion = max [4 sum_j a_jj + 2 sum_{j!=k}
    |a_jk|]`` (``a = sigma sigma^T / 2``) and ``advection = max sum_j |b_j|`` (closed-loop
    drift), maximised over the ``2^d`` corners and the centre of the box ``x0 + [-L, L]^d``
    and over regimes (both are convex in ``x`` for quadratic values: extremes at corners).
    Exact terminal derivatives (autodiff of ``psi``) are used; the grid enters only via ``h``.
    """
    d = game.state_dim
    corners = np.array(list(itertools.product((-1.0, 1.0), repeat=d)) + [[0.0] * d])
    points = game.initial_state + half_width * jnp.asarray(corners, game.initial_state.dtype)
    regimes = jnp.arange(game.num_regimes)

    def at(x):
        psi = lambda z: jax.vmap(lambda i: game.terminal_cost(z, i))(regimes)  # noqa: E731
        y = jnp.swapaxes(jax.jacfwd(psi)(x), 0, 1)  # [m, 2, d]
        M = jnp.swapaxes(jax.hessian(psi)(x), 0, 1)  # [m, 2, d, d]
        _, drift, a = _point_hamiltonian(game, "stackelberg", x, y, M)
        diag = jnp.diagonal(a, axis1=-2, axis2=-1)
        off = jnp.sum(jnp.abs(a), axis=(-2, -1)) - jnp.sum(jnp.abs(diag), axis=-1)
        return jnp.max(4 * jnp.sum(diag, -1) + 2 * off), jnp.max(jnp.sum(jnp.abs(drift), -1))

    diffusion, advection = jax.vmap(at)(points)
    return jnp.max(diffusion), jnp.max(advection)


def stable_num_steps(game, config: GridConfig) -> int:
    """RK4 steps over ``[0, T]`` from a CFL estimate at the terminal data.

    ``lambda = diffusion / h^2 + advection / h + max_i |Gamma_ii|`` (see `_terminal_rates`);
    ``steps = max(ceil(T lambda / (2.5 cfl)), min_steps)``.
    """
    diffusion, advection = _terminal_rates(game, config.half_width)
    h = config.spacing()
    lam = float(diffusion) / h**2 + float(advection) / h
    lam += float(np.max(np.abs(np.diagonal(np.asarray(game.generator)))))
    steps = math.ceil(float(game.horizon) * lam / (RK4_STABILITY * config.cfl))
    return max(steps, int(config.min_steps))


def interpolate_cubic(values: jax.Array, lo: jax.Array, h: float, x: jax.Array) -> jax.Array:
    """Tensor-product cubic Lagrange interpolation of grid values at one point.

    Uses the 4 nodes per axis around ``x`` (shifted inwards at the faces); exact on cubics.

    Args:
      values: [2, m, N, ..., N] (``d`` grid axes).
      lo: [d] lower corner of the grid.
      h: spacing.
      x: [d] point (inside the box).
    Returns:
      [2, m].
    """
    d = x.shape[0]
    n = values.shape[-1]
    s = (x - lo) / h
    first = jnp.clip(jnp.floor(s).astype(jnp.int32) - 1, 0, n - 4)
    r = s - first  # local coordinate of x on the nodes 0, 1, 2, 3
    weights = jnp.stack(
        [
            -(r - 1) * (r - 2) * (r - 3) / 6,
            r * (r - 2) * (r - 3) / 2,
            -r * (r - 1) * (r - 3) / 2,
            r * (r - 1) * (r - 2) / 6,
        ],
        axis=-1,
    )  # [d, 4]
    combos = np.array(list(itertools.product(range(4), repeat=d)), dtype=np.int32)  # [4^d, d]
    index = first[None, :] + combos
    flat = jnp.ravel_multi_index(tuple(index.T), (n,) * d, mode="clip")
    w = jnp.prod(weights[jnp.arange(d)[None, :], combos], axis=-1)  # [4^d]
    return values.reshape(values.shape[:2] + (-1,))[:, :, flat] @ w


def _lagrange_time(history: jax.Array, dt: jax.Array, tau: jax.Array) -> jax.Array:
    """Cubic Lagrange interpolation in ``tau`` of ``history`` [K + 1, ...] at one ``tau``."""
    K = history.shape[0] - 1
    s = tau / dt
    first = jnp.clip(jnp.floor(s).astype(jnp.int32) - 1, 0, K - 3)
    r = s - first
    w = jnp.stack(
        [
            -(r - 1) * (r - 2) * (r - 3) / 6,
            r * (r - 2) * (r - 3) / 2,
            -r * (r - 1) * (r - 3) / 2,
            r * (r - 1) * (r - 2) / 6,
        ]
    )
    window = jax.lax.dynamic_slice_in_dim(history, first, 4, axis=0)
    return jnp.tensordot(w, window, axes=1)


def check_game(game, config: GridConfig, query_x=None) -> None:
    """Raises ``ValueError`` for games or queries this baseline does not cover."""
    if not isinstance(game, sj.LQGame):
        raise ValueError(f"The grid baseline needs an LQGame, got {type(game).__name__}.")
    if game.has_controlled_diffusion:
        raise ValueError(
            "The grid baseline covers uncontrolled diffusion only (D1 = D2 = 0): its Hamiltonian "
            "takes the curvature blocks as R. Use a game without controlled diffusion."
        )
    if query_x is not None:
        x = np.asarray(query_x)
        x0 = np.asarray(game.initial_state)
        if x.ndim != 2 or x.shape[1] != x0.shape[0]:
            raise ValueError(f"query_x must have shape [Q, {x0.shape[0]}], got {x.shape}.")
        if np.any(np.abs(x - x0) > config.half_width):
            raise ValueError(
                f"query_x has points outside the grid box |x - x0|_inf <= {config.half_width}; "
                "increase GridConfig.half_width or restrict the queries to the box."
            )


def solve_grid(game, query_t, query_x, *, config: GridConfig, num_steps: int | None = None):
    """Backward RK4 sweep of the coupled HJB system on the grid; values at query points.

    Validates the input (`check_game`), picks ``num_steps`` by `stable_num_steps` if not
    given, and calls the jitted sweep `sweep_grid` (same arguments and returns).
    """
    check_game(game, config, query_x)
    if num_steps is None:
        num_steps = stable_num_steps(game, config)
    return sweep_grid(game, query_t, query_x, config=config, num_steps=int(num_steps))


@functools.partial(jax.jit, static_argnames=("config", "num_steps"))
def sweep_grid(game, query_t, query_x, *, config: GridConfig, num_steps: int):
    """Backward RK4 sweep of the coupled HJB system on the grid; values at query points.

    Args:
      game: an `LQGame` without controlled diffusion (any dtype; the grid uses the game's).
      query_t: [Q] times in ``[0, T]``.
      query_x: [Q, d] states inside the box.
      config: `GridConfig` (static).
      num_steps: RK4 steps over ``[0, T]`` (static; see `stable_num_steps`).
    Returns:
      ``(values_at_queries [Q, 2, m], grid_values_at_0 [2, m, N, ..., N])``.
    """
    lo, nodes = grid_nodes(game.initial_state, config)
    h = config.spacing()
    dt = game.horizon / num_steps
    generator = game.generator

    def rate(v):  # dV/dtau = H^* + sum_j Gamma_ij V_j
        H, _, _ = _hamiltonian_on_grid(game, config, nodes, v)
        return H.reshape(v.shape) + jnp.einsum("ij,kj...->ki...", generator, v)

    def at_queries(v):
        return jax.vmap(lambda x: interpolate_cubic(v, lo, h, x))(query_x)  # [Q, 2, m]

    # Classical RK4; the four stages run in a fori_loop so the Hamiltonian compiles once.
    nodes_c = jnp.asarray([0.0, 0.5, 0.5, 1.0], dtype=lo.dtype) * dt
    weights = jnp.asarray([1.0, 2.0, 2.0, 1.0], dtype=lo.dtype) * (dt / 6)

    def step(v, _):
        def stage(s, carry):
            acc, k = carry
            k = rate(v + nodes_c[s] * k)
            return acc + weights[s] * k, k

        acc, _ = jax.lax.fori_loop(0, 4, stage, (v, jnp.zeros_like(v)))
        return acc, at_queries(acc)

    v_T = _terminal_values(game, nodes, config.num_points)
    v_0, history = jax.lax.scan(step, v_T, None, length=num_steps)
    history = jnp.concatenate([at_queries(v_T)[None], history])  # [K + 1, Q, 2, m] in tau
    tau = game.horizon - query_t
    values = jax.vmap(lambda s, q: _lagrange_time(history[:, q], dt, s))(
        tau, jnp.arange(query_t.shape[0])
    )
    return values, v_0


# ---------------------------------------------------------------------------------------------
# Benchmark driver.
# ---------------------------------------------------------------------------------------------


def cast_game(game, dtype):
    """The game with every floating leaf cast to ``dtype``."""

    def cast(leaf):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.astype(dtype)
        return leaf

    return jax.tree.map(cast, game)


def evaluation_points(game, num_points: int, seed: int):
    """``t ~ U[0, T]`` [Q], ``x ~ N(x0, I)`` conditioned on ``|x - x0|_inf <= 3`` [Q, d]."""
    rng = np.random.default_rng(seed)
    x0 = np.asarray(game.initial_state, np.float64)
    d = x0.shape[0]
    kept = np.zeros((0, d))
    while kept.shape[0] < num_points:
        x = x0 + rng.normal(size=(2 * num_points, d))
        kept = np.concatenate([kept, x[np.all(np.abs(x - x0) <= EVAL_HALF_WIDTH, axis=1)]])
    t = rng.uniform(0.0, float(game.horizon), num_points)
    return t, kept[:num_points]


def reference_values(game, t, x, *, fast: bool = False) -> np.ndarray:
    """Exact values [Q, 2, m] at ``(t_q, x_q)`` from the coupled Riccati ODEs (docs/math.md §7.3).

    Default: `stackjax.riccati_reference` (diffrax Dopri8, rtol = atol = 1e-12). ``fast``
    (``--quick``, to skip compiling the adaptive integrator): scipy ``solve_ivp`` DOP853 with
    dense output at rtol = atol = 1e-11 on `stackjax.riccati_rhs` (jitted), the same equations.
    """
    if not fast:
        ref = sj.riccati_reference(game)
        return np.asarray(jax.vmap(ref.value)(jnp.asarray(t), jnp.asarray(x)))
    from scipy.integrate import solve_ivp

    shapes = [game.G.shape, game.g.shape, game.g0.shape]
    sizes = [math.prod(s) for s in shapes]

    def unflatten(y):
        parts = jnp.split(y, np.cumsum(sizes)[:-1])
        return [a.reshape(s) for a, s in zip(parts, shapes, strict=True)]

    rhs = jax.jit(
        lambda y: jnp.concatenate([a.ravel() for a in sj.riccati_rhs(game, *unflatten(y))])
    )
    y_T = np.concatenate([np.asarray(a, np.float64).ravel() for a in (game.G, game.g, game.g0)])
    sol = solve_ivp(
        lambda _, y: np.asarray(rhs(jnp.asarray(y))), (float(game.horizon), 0.0), y_T,
        method="DOP853", rtol=1e-11, atol=1e-11, dense_output=True,
    )  # fmt: skip
    if not sol.success:
        raise RuntimeError(f"Riccati reference failed: {sol.message}")
    P, p, c = (np.moveaxis(a, -1, 0) for a in unflatten_np(sol.sol(np.asarray(t)), shapes))
    return np.einsum("qd,qkide,qe->qki", x, P, x) + 2 * np.einsum("qkid,qd->qki", p, x) + c


def unflatten_np(y, shapes):
    """Splits ``y`` [S, Q] into arrays of ``shapes`` with a trailing [Q] axis."""
    sizes = [math.prod(s) for s in shapes]
    parts = np.split(y, np.cumsum(sizes)[:-1])
    return [a.reshape(tuple(s) + (y.shape[-1],)) for a, s in zip(parts, shapes, strict=True)]


def relative_errors(values, reference) -> np.ndarray:
    """[2, m] relative L2 errors over the points (docs/math.md §9.2); inputs [Q, 2, m]."""
    values, reference = np.asarray(values, np.float64), np.asarray(reference, np.float64)
    return np.sqrt(np.sum((values - reference) ** 2, 0) / np.sum(reference**2, 0))


def run_grid(game, t, x, v_ref, config: GridConfig) -> dict:
    """Compiles (AOT) and runs `sweep_grid` once; wall times, XLA memory, errors."""
    dtype = game.initial_state.dtype
    query_t, query_x = jnp.asarray(t, dtype), jnp.asarray(x, dtype)
    check_game(game, config, query_x)
    tic = time.perf_counter()
    num_steps = int(stable_num_steps(game, config))
    lowered = sweep_grid.lower(game, query_t, query_x, config=config, num_steps=num_steps)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - tic
    tic = time.perf_counter()
    values, v0 = jax.block_until_ready(compiled(game, query_t, query_x))
    run_s = time.perf_counter() - tic
    mem = compiled.memory_analysis()
    d = x.shape[1]
    nodes = config.num_points**d
    err = relative_errors(values, v_ref)
    return {
        "method": "grid",
        "boundary": config.boundary,
        "half_width": config.half_width,
        "num_points": config.num_points,
        "spacing": config.spacing(),
        "nodes": nodes,
        "num_steps": num_steps,
        "compile_s": compile_s,
        "run_s": run_s,
        "total_s": compile_s + run_s,
        "state_bytes": int(v0.size * v0.dtype.itemsize),
        "xla_temp_bytes": int(mem.temp_size_in_bytes) if mem is not None else None,
        "xla_total_bytes": (
            int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes)
            if mem is not None
            else None
        ),
        "node_stage_per_s": nodes * num_steps * 4 / run_s,
        "finite": bool(np.all(np.isfinite(np.asarray(values)))),
        "error": err.tolist(),
        "max_error": float(np.max(err)) if np.all(np.isfinite(err)) else float("inf"),
    }


def run_stackjax(game, t, x, v_ref, refine_steps: int, seed: int) -> dict:
    """`stackjax.solve` (default config with ``refine_steps`` Gauss-Newton iterations, float32,
    quiet), wall time incl. compilation."""
    config = sj.SolverConfig(
        gauss_newton=sj.GaussNewtonConfig(steps=refine_steps),
        layout=sj.LayoutConfig(dtype="float32"),
    )
    tic = time.perf_counter()
    solution = sj.solve(game, jax.random.key(seed), config, verbose=False)
    jax.block_until_ready(solution.state.params)
    total_s = time.perf_counter() - tic
    dtype = solution.game.initial_state.dtype
    values = jax.jit(jax.vmap(solution.value))(jnp.asarray(t, dtype), jnp.asarray(x, dtype))
    err = relative_errors(values, v_ref)
    params_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(solution.state.params))
    return {
        "method": "stackjax",
        "num_steps": int(solution.config.adam.steps),
        "refine_steps": int(solution.state.refine_step),
        "total_s": total_s,
        "train_s": float(solution.diagnostics.get("train_seconds", float("nan"))),
        "params_bytes": int(params_bytes),
        "error": err.tolist(),
        "max_error": float(np.max(err)) if np.all(np.isfinite(err)) else float("inf"),
    }


def first_reaching(records, target, key="total_s"):
    """The record with the smallest ``key`` among those with ``max_error <= target``."""
    ok = [r for r in records if r["max_error"] <= target]
    return min(ok, key=lambda r: r[key]) if ok else None


def grid_sequence(d: int, quick: bool) -> list[tuple[float, int]]:
    """(half-width L, nodes N) refinement sequence of the linear-boundary grid for dimension d."""
    if quick:
        return [(4.0, 17), (4.0, 33)]
    spacings = {1: (0.5, 0.25, 0.125, 0.0625), 2: (0.5, 0.25, 0.125), 3: (0.5, 0.25, 1 / 6)}
    spacings = spacings.get(d, (0.5, 0.25))
    return [(L, int(round(2 * L / h)) + 1) for L in (4.0, 6.0) for h in spacings]


def extrapolate(records_by_d, targets, dims, memory_limit, time_limit):
    """Grid cost at higher d: same (L, N) as the cheapest d = 3 grid reaching each target.

    Nodes ``N^d``; steps ``K_3 d / 3`` (the CFL bound sums over axes); run time per
    node-stage and XLA bytes per node fitted as ``a + b d^2`` (Hessian terms) to d <= 3.
    """
    d_known = sorted(records_by_d)
    if not d_known:
        return []
    # Per-node costs from the finest linear-boundary grid of each measured dimension.
    fit_d, sec, mem = [], [], []
    for d in d_known:
        recs = [r for r in records_by_d[d] if r["boundary"] == "linear"]
        if not recs:
            continue
        big = max(recs, key=lambda r: r["nodes"])
        fit_d.append(d)
        sec.append(1.0 / big["node_stage_per_s"])
        mem.append(big["xla_total_bytes"] / big["nodes"])
    # Tiny grids measure fixed overheads, not per-node costs: fit to grids with >= 1000 nodes.
    large = [j for j, d in enumerate(fit_d) if max(r["nodes"] for r in records_by_d[d]) >= 1000]
    if len(large) >= 2:
        fit_d, sec, mem = ([v[j] for j in large] for v in (fit_d, sec, mem))
    if not fit_d:
        return []
    if len(fit_d) == 1:  # one measured dimension: per-node costs scaled like 1 + d^2
        sec_coef = np.array([1.0, 1.0]) * sec[0] / (1 + fit_d[0] ** 2)
        mem_coef = np.array([1.0, 1.0]) * mem[0] / (1 + fit_d[0] ** 2)
    else:
        design = np.stack([np.ones(len(fit_d)), np.square(fit_d)], axis=1)
        sec_coef = np.linalg.lstsq(design, np.asarray(sec), rcond=None)[0]
        mem_coef = np.linalg.lstsq(design, np.asarray(mem), rcond=None)[0]
    d_ref = max(d_known)
    out = []
    for target in targets:
        best = first_reaching(
            [r for r in records_by_d[d_ref] if r["boundary"] == "linear"], target, "run_s"
        )
        if best is None:
            continue
        for d in dims:
            nodes = float(best["num_points"]) ** d
            steps = best["num_steps"] * d / d_ref
            per_sec = max(sec_coef[0] + sec_coef[1] * d * d, sec[-1])
            per_mem = max(mem_coef[0] + mem_coef[1] * d * d, mem[-1])
            run_s = nodes * steps * 4 * per_sec
            mem_b = nodes * per_mem
            out.append(
                {
                    "method": "grid-extrapolated",
                    "target": target,
                    "d": d,
                    "from_d": d_ref,
                    "half_width": best["half_width"],
                    "num_points": best["num_points"],
                    "nodes": nodes,
                    "num_steps": steps,
                    "run_s": run_s,
                    "state_bytes": nodes * 2 * best["state_bytes"] / (2 * best["nodes"]),
                    "xla_total_bytes": mem_b,
                    "feasible": bool(mem_b <= memory_limit and run_s <= time_limit),
                }
            )
    return out


def _fmt_bytes(b) -> str:
    if b is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB"):
        if abs(b) < 1024 or unit == "EB":
            return f"{b:.3g} {unit}"
        b /= 1024.0
    return str(b)


def _fmt_time(s) -> str:
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    if s < 2 * 86400:
        return f"{s / 3600:.3g} h"
    if s < 2 * 3.15e7:
        return f"{s / 86400:.3g} d"
    return f"{s / 3.15e7:.3g} y"


def plot(records, extrapolated, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    colors = {1: "C0", 2: "C1", 3: "C2"}
    for d in sorted({r["d"] for r in records}):
        c = colors.get(d, "k")
        grid = sorted(
            (
                r
                for r in records
                if r["d"] == d and r["method"] == "grid" and r["boundary"] == "linear"
            ),
            key=lambda r: r["total_s"],
        )
        net = sorted(
            (r for r in records if r["d"] == d and r["method"] == "stackjax"),
            key=lambda r: r["total_s"],
        )
        if grid:
            ax.plot([r["total_s"] for r in grid], [r["max_error"] for r in grid], "o", color=c,
                    label=f"grid FD, d={d} (compile + run)")  # fmt: skip
            ax.plot([r["run_s"] for r in grid], [r["max_error"] for r in grid], "o", color=c,
                    alpha=0.5, mfc="none", label=f"grid FD, d={d} (run only)")  # fmt: skip
        if net:
            ax.plot([r["total_s"] for r in net], [r["max_error"] for r in net], "s-", color=c,
                    label=f"stackjax.solve, d={d} (incl. compile)")  # fmt: skip
    for target in TARGETS:
        ax.axhline(target, color="gray", lw=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall time [s]")
    ax.set_ylabel("max_(k,i) relative L2 error of V")
    ax.set_title("error vs time (linear-extrapolation boundary)")
    ax.legend(fontsize=6)
    ax.grid(True, which="both", alpha=0.3)
    for target in sorted({r["target"] for r in extrapolated}):
        rs = sorted((r for r in extrapolated if r["target"] == target), key=lambda r: r["d"])
        ax2.plot([r["d"] for r in rs], [r["xla_total_bytes"] for r in rs], "o-",
                 label=f"memory, err <= {target:g}")  # fmt: skip
    ax2.axhline(64 * 2**30, color="r", lw=0.8, ls="--", label="64 GiB")
    ax2.set_yscale("log")
    ax2.set_xlabel("state dimension d")
    ax2.set_ylabel("grid working memory [bytes] (extrapolated)")
    ax2.set_title("grid memory at fixed per-axis resolution")
    ax2.legend(fontsize=7)
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke run: d = 1, two grids, no stackjax"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR, help="results dir")
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--regimes", type=int, default=2)
    parser.add_argument(
        "--budgets", type=int, nargs="*", default=None,
        help="stackjax.solve Gauss-Newton iterations, GaussNewtonConfig.steps (default 5 10 20 "
        "40; none with --quick)",
    )  # fmt: skip
    parser.add_argument("--points", type=int, default=1024, help="evaluation points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="grid dtype (stackjax always runs its default float32)")  # fmt: skip
    parser.add_argument("--max-work", type=float, default=3e8,
                        help="skip grids with more node-stages (N^d * steps * 4)")  # fmt: skip
    parser.add_argument("--extrapolate-dims", type=int, nargs="+", default=list(range(4, 11)))
    parser.add_argument("--memory-limit", type=float, default=64 * 2**30, help="bytes")
    parser.add_argument("--time-limit", type=float, default=86400.0, help="seconds")
    args = parser.parse_args(argv)
    if args.budgets is None and not args.quick:
        args.budgets = [5, 10, 20, 40]
    if args.quick:
        args.dims, args.points = [1], 256
        args.budgets = [] if args.budgets is None else args.budgets
        args.extrapolate_dims = [2, 3, 6, 10]

    label = device_label()
    print(f"device: {device_string(label)}")
    print(f"grid: RK4 + central differences, dtype {args.dtype}; stackjax.solve: default "
          f"SolverConfig, float32, budgets {args.budgets}; {args.points} evaluation points, "
          f"t ~ U[0,T], x ~ N(x0, I) restricted to |x - x0|_inf <= {EVAL_HALF_WIDTH:g}\n",
          flush=True)  # fmt: skip
    stamp = timestamp()
    records, by_d = [], {}
    for d in args.dims:
        game64 = sj.examples.random_game(jax.random.key(args.seed), d=d, m=args.regimes)
        t, x = evaluation_points(game64, args.points, args.seed + 1)
        v_ref = reference_values(game64, t, x, fast=args.quick)
        game = cast_game(game64, jnp.dtype(args.dtype))
        configs = [GridConfig(num_points=N, half_width=L) for L, N in grid_sequence(d, args.quick)]
        configs.append(
            GridConfig(num_points=5, half_width=EVAL_HALF_WIDTH, boundary="quadratic", min_steps=64)
        )
        # Interleave: grids (coarse to fine) and stackjax budgets alternate.
        jobs = [("grid", c) for c in configs]
        for j, budget in enumerate(args.budgets):
            jobs.insert(min(2 * j + 1, len(jobs)), ("stackjax", budget))
        case = []
        for kind, what in jobs:
            if kind == "grid":
                steps = int(stable_num_steps(game, what))
                work = what.num_points**d * steps * 4
                if work > args.max_work:
                    print(f"d={d} grid L={what.half_width:g} N={what.num_points}: skipped "
                          f"({work:.2g} node-stages > --max-work {args.max_work:.2g})")  # fmt: skip
                    continue
                rec = run_grid(game, t, x, v_ref, what)
                print(f"d={d} grid {rec['boundary']:9s} L={rec['half_width']:g} "
                      f"N={rec['num_points']:4d} steps={rec['num_steps']:4d}: err "
                      f"{rec['max_error']:.2e}, compile {rec['compile_s']:.2f} s, run "
                      f"{rec['run_s']:.3g} s, mem {_fmt_bytes(rec['xla_total_bytes'])}",
                      flush=True)  # fmt: skip
            else:
                rec = run_stackjax(game64, t, x, v_ref, what, args.seed + 2)
                print(f"d={d} stackjax refine_steps={what}: err {rec['max_error']:.2e}, "
                      f"{rec['total_s']:.3g} s incl. compile", flush=True)  # fmt: skip
            rec.update(d=d, m=args.regimes, seed=args.seed, timestamp=stamp, device=label,
                       benchmark="finite_difference", num_eval_points=args.points,
                       finished=timestamp(), load_avg=os.getloadavg())  # fmt: skip
            print(f"    ({rec['finished']}, load average {rec['load_avg'][0]:.2f})", flush=True)
            case.append(rec)
        records.extend(case)
        by_d[d] = [r for r in case if r["method"] == "grid"]

    # Time and memory to reach each target.
    summary = []
    for d in args.dims:
        case = [r for r in records if r["d"] == d]
        grid = [r for r in case if r["method"] == "grid" and r["boundary"] == "linear"]
        net = [r for r in case if r["method"] == "stackjax"]
        for target in TARGETS:
            g_tot = first_reaching(grid, target, "total_s")
            g_run = first_reaching(grid, target, "run_s")
            s = first_reaching(net, target, "total_s")
            summary.append(
                {
                    "method": "summary", "benchmark": "finite_difference", "d": d,
                    "target": target, "timestamp": stamp,
                    "grid_total_s": g_tot and g_tot["total_s"],
                    "grid_run_s": g_run and g_run["run_s"],
                    "grid_config": g_tot and [g_tot["half_width"], g_tot["num_points"]],
                    "grid_bytes": g_tot and g_tot["xla_total_bytes"],
                    "stackjax_total_s": s and s["total_s"],
                    "stackjax_refine_steps": s and s["refine_steps"],
                    "ratio_total": (g_tot["total_s"] / s["total_s"]) if g_tot and s else None,
                    "ratio_run": (g_run["run_s"] / s["total_s"]) if g_run and s else None,
                }
            )  # fmt: skip
    extrapolated = extrapolate(
        by_d, TARGETS, args.extrapolate_dims, args.memory_limit, args.time_limit
    )
    for r in extrapolated:
        r.update(timestamp=stamp, benchmark="finite_difference")

    headers = ["d", "method", "bc", "L", "N", "nodes", "steps", "err", "compile s", "run s",
               "total s", "memory"]  # fmt: skip
    rows = []
    for r in records:
        if r["method"] == "grid":
            rows.append([r["d"], "grid", r["boundary"][:4], f"{r['half_width']:g}",
                         r["num_points"], r["nodes"], r["num_steps"], f"{r['max_error']:.2e}",
                         f"{r['compile_s']:.2f}", f"{r['run_s']:.3g}", f"{r['total_s']:.3g}",
                         _fmt_bytes(r["xla_total_bytes"])])  # fmt: skip
        else:
            rows.append([r["d"], "stackjax", "-", "-", "-", "-", f"GN {r['refine_steps']}",
                         f"{r['max_error']:.2e}", "-", "-", f"{r['total_s']:.3g}",
                         _fmt_bytes(r["params_bytes"])])  # fmt: skip
    print("\n" + format_table(headers, rows))
    print(
        "\nerr = max over players and regimes of the relative L2 error of V; memory = XLA "
        "working set of the grid sweep (temp + arguments + outputs), or stackjax parameters."
    )

    def opt(v, f):
        return "not reached" if v is None else f(v)

    rows = [[s["d"], f"{s['target']:g}", opt(s["grid_config"], lambda c: f"L={c[0]:g} N={c[1]}"),
             opt(s["grid_total_s"], _fmt_time), opt(s["grid_run_s"], _fmt_time),
             opt(s["grid_bytes"], _fmt_bytes), opt(s["stackjax_total_s"], _fmt_time),
             opt(s["stackjax_refine_steps"], str), opt(s["ratio_total"], lambda v: f"{v:.3g}"),
             opt(s["ratio_run"], lambda v: f"{v:.3g}")] for s in summary]  # fmt: skip
    print(
        "\n"
        + format_table(
            [
                "d",
                "target",
                "grid",
                "grid total",
                "grid run",
                "grid mem",
                "stackjax",
                "sj GN its",
                "grid/sj tot",
                "grid run/sj",
            ],
            rows,
        )
    )
    if extrapolated:
        rows = [[r["d"], f"{r['target']:g}", f"L={r['half_width']:g} N={r['num_points']}",
                 f"{r['nodes']:.3g}", f"{r['num_steps']:.0f}", _fmt_time(r["run_s"]),
                 _fmt_bytes(r["xla_total_bytes"]), "yes" if r["feasible"] else "NO"]
                for r in extrapolated]  # fmt: skip
        print(
            "\nExtrapolated grid cost (same per-axis grid as the cheapest d = "
            f"{extrapolated[0]['from_d']} grid reaching the target; feasible = memory <= "
            f"{_fmt_bytes(args.memory_limit)} and run <= {_fmt_time(args.time_limit)}):"
        )
        print(format_table(["d", "target", "grid", "nodes", "steps", "run", "memory",
                            "feasible"], rows))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = write_jsonl(args.out / "finite_difference.json", records + summary + extrapolated)
    png_path = args.out / "finite_difference.png"
    plot(records, extrapolated, png_path)
    print(f"\nwrote {json_path} and {png_path}")
    return records, summary, extrapolated


if __name__ == "__main__":
    main()

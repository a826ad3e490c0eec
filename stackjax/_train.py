"""Neural solver of the coupled exploratory HJB(I) system (MATH.md §5): `solve(game, key)`.

Pipeline (DESIGN.md §1): sampler -> residual of every player and regime at every point
(`_operators` for the second-order terms, `pre_hamiltonian` + `pointwise_equilibrium` for
``H^*``) -> normalised mean squared residual -> optax update. `make_train_step` returns a pure,
unjitted ``train_step(state, key) -> (state, metrics)``; `solve` runs it in jitted
``lax.scan`` chunks, prints progress between chunks, records the history, checkpoints and
resumes, and stops on divergence.

Loss. ``R_{k,i}`` of MATH.md §5.3 divided by ``S_{k,i} / T`` (the value scale of
`estimate_normalization` over the horizon: the natural size of ``dV/dt``), squared and
averaged over points, players and regimes. The terminal condition is exact by construction
(`_networks`), so there is no terminal term. Metrics: ``loss`` and ``residual [2, m]`` (the
mean squared normalised residual of each player and regime).

Divergence. A step whose loss is non-finite, whose updated parameters are non-finite, or
whose loss exceeds ``divergence_factor`` times the first loss is rejected; training stops,
the last good state is kept, a `TrainingDivergedWarning` names the step, player, regime and
loss term, and ``solution.diagnostics["diverged"]`` is true (a flag rather than an exception,
so that the last good solution is returned and the same code runs under ``jax.vmap``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from ._checkpoint import has_checkpoint, restore_checkpoint, save_checkpoint
from ._game import LQGame
from ._gibbs import GaussianPolicy
from ._hamiltonian import check_concept, pointwise_equilibrium, pre_hamiltonian
from ._networks import Normalization, ValueModel, estimate_normalization
from ._operators import (
    OPERATOR_METHODS,
    diffusion_directions,
    diffusion_margin,
    gradient_and_products,
    parabolicity_margin,
    sketch_diffusion,
)
from ._operators import _split_products as _split_hessian_products
from ._sampling import SAMPLERS, resample_by_residual, sample_on_policy, sample_points
from ._sharding import make_data_mesh, replicate, shard_points

__all__ = [
    "SolverConfig",
    "TrainState",
    "Solution",
    "TrainingDivergedWarning",
    "make_train_step",
    "resolve_config",
    "solve",
    "solution_diagnostics",
]

PLAYERS = ("leader", "follower")


class TrainingDivergedWarning(RuntimeWarning):
    """Training stopped on a non-finite or exploding loss; the last good state is returned."""


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """Settings of the neural solver (frozen and hashable: a static argument of the jitted
    chunk; changing a numerical field recompiles, changing the game's values does not).

    Attributes:
      concept: ``"stackelberg"`` or ``"nash"`` (zero-sum games are flagged on the game).
      num_steps: Adam steps (0: Gauss-Newton refinement only, which converges faster than
        Adam on the quadratic head; see `resolve_config`). ``None`` (default): 0 for games
        without the MLP correction (`LQGame`s), 2000 with it below d = 20, 0 from d = 20 on
        (see `resolve_config` for every game- and dimension-dependent default).
      batch_size: collocation points per step (all regimes are evaluated at each point).
      learning_rate: peak Adam learning rate (after ``warmup_steps`` of linear warm-up).
        ``None``: ``1e-2 sqrt(3 / B)`` with ``B = (d + 1)(d + 2) / 2`` quadratic-head basis
        functions (Adam moves every coefficient by about the learning rate, so the change of
        the output grows like ``sqrt(B)``; measured: 1e-2 diverges towards 30% errors at
        d = 10, m = 3, while 2e-3 reaches 3e-3).
      final_learning_rate: learning rate at the end of the cosine decay.
      warmup_steps: linear warm-up steps.
      grad_clip: clip the global gradient norm to this value (``None``: no clipping).
      refine_steps: Levenberg-Marquardt (Gauss-Newton) iterations after the Adam steps, each
        on a fresh batch of ``refine_batch_size`` points, with the normal equations solved by
        ``cg_iterations`` matrix-free conjugate-gradient steps (Jacobian-vector products);
        0 disables. (Adam alone stalls around 1e-3 relative error; see `_refine`.) ``None``
        (default): `DEFAULT_REFINE_STEPS` (20) without the MLP correction (then the only
        optimiser by default), or `CORRECTION_REFINE_STEPS` (50) when the MLP correction is
        used, whose few thousand parameters Gauss-Newton fits far better than Adam (measured
        on `examples.cole_hopf_game`, d = 10, float32: worst value error 2.4e-2 after 2000
        Adam + 10 iterations in 70 s, 9.5e-3 with 30, 7.3e-3 with 60 in 170 s; 2000 Adam
        steps more, or width 64, did not help). From d = 20 on:
        `HIGH_DIMENSION_REFINE_STEPS` (30) without the correction.
      refine_batch_size, cg_iterations: points per Gauss-Newton iteration and CG steps per
        iteration (``None``: 512 and 40 below d = 20, 256 and 20 from d = 20 on, where one
        iteration costs ~18 s at d = 100, m = 2 on 2 CPU cores).
      time_basis: Chebyshev polynomials in time for the quadratic head (`_networks`).
        ``None``: 8 below d = 20, `HIGH_DIMENSION_TIME_BASIS` (3) from d = 20 on (see there:
        faster Gauss-Newton convergence against a time-truncation floor of ~3e-4 on
        `examples.random_game`; raise it for values that vary faster in time).
      width, depth: of the MLP correction. ``correction=None`` (default) uses it for games
        that are not `LQGame` (non-quadratic values) and not for `LQGame`s, whose values the
        quadratic head represents exactly (the correction then only slows and perturbs the
        fit: measured 3x slower, 10x less accurate on the scalar game at 2000 Adam steps).
      state_scale: standard deviation ``s`` of the sampled states around ``x0`` (also the
        input scale of the networks).
      sampler: ``"gaussian"``, ``"box"`` or ``"multiscale"`` (`sample_points`). In high
        dimension the Gaussian's states concentrate near the sphere of radius ``s sqrt(d)``
        around ``x0``, and the value at ``x0`` itself (the equilibrium cost) is fitted worst;
        ``"multiscale"`` spreads the distances uniformly. Measured on `examples.random_game`
        (d = 50, m = 1, 8 noise columns, defaults otherwise): relative error of ``V(0, x0)``
        6.5e-3 / 5.1e-4 (leader / follower) with ``"gaussian"``, 7.6e-6 / 1.7e-4 with
        ``"multiscale"``, L2 value errors over ``N(x0, I)`` 5.3e-4 / 6.1e-4 vs 4.5e-4 / 5.7e-4.
        At d = 200 (30 Gauss-Newton iterations, not converged) it is a trade-off: ``V(0, x0)``
        0.21 / 0.42 -> 7.5e-2 / 1.2e-1, L2 value 5.0e-3 / 9.5e-3 -> 7.0e-3 / 6.4e-3, but the
        policy means over ``N(x0, I)`` 2.3e-2 / 2.5e-2 -> 4.1e-2 / 4.1e-2 (fewer points on
        the shell the evaluation law lives on).
      on_policy_fraction, adaptive_fraction: fractions of each batch drawn from a pool of
        on-policy states (simulated under the current policies) and of residual-adaptive
        points; the pool of ``pool_size`` points is refreshed between chunks.
      operator: ``"hvp"`` (exact Hessian-vector products, default), ``"hessian"`` (reference)
        or ``"hutchinson"`` (unbiased random sketch with ``num_probes`` probes).
      gradient_weight: weight ``w`` of the state-gradient residual term: the loss becomes
        ``mean(R^2) + w mean(|s grad_x R|^2)`` (gradient-enhanced collocation; the exact
        solution has ``grad_x R = 0`` too). Each point then gives ``d`` equations per player
        and regime instead of one, at the cost of ``2 m`` reverse passes through the
        residual: worth it in high dimension, where the quadratic head has ``O(d^2)``
        coefficients per time basis function. The same rows enter the Gauss-Newton
        refinement. 0 disables; ``None`` (default): 1 for ``d >= HIGH_DIMENSION`` (20), and
        from ``d >= LQ_GRADIENT_ROWS_DIMENSION`` (5) without the MLP correction; else 0.
      points_per_time: states sampled at each sampled time (``t ~ U[0, T]`` and ``x`` are
        independent, so a batch of ``G`` times with ``P`` states each has the same
        distribution). The quadratic head's coefficients and Hessian at a time are then
        computed once and applied to its ``P`` states as matrix products instead of per state
        (`_group_residuals`): at d = 100 the per-state ``[2, d, d]`` matrices dominate
        memory traffic. Must divide ``batch_size`` and ``refine_batch_size`` (times
        ``num_devices``); not combinable with the on-policy / adaptive pool. ``None``
        (default): see `resolve_config` (8 with the gradient rows, else 1).
      head_form: how the training step holds the quadratic head's Hessian ``H(tau) = sum_k
        T_k(2 tau - 1) B_k`` (`_networks.QuadraticCoefficients`): ``"expanded"`` forms
        ``H`` once per sampled time and applies it to that time's vectors (the states and
        their diffusion directions); ``"factored"`` applies the ``K`` basis matrices to all
        vectors of the batch as one matrix product and never forms a per-time ``[2, d, d]``
        array (``K`` times the flops, far less memory traffic). ``None`` (default):
        factored from d = `FACTORED_HEAD_DIMENSION` (150) on when a time carries at most
        ``d / 2`` vectors (`head_vectors_per_time`), else expanded (see there for the
        measurements). Same values either way (tested).
      controlled_diffusion: ``None`` detects whether ``D1, D2`` vanish (concrete LQ games);
        ``False`` skips the ``D`` columns, ``True`` always includes them.
      dtype: ``None`` (the game's dtype: float32, or float64 with ``jax_enable_x64``),
        ``"float32"`` or ``"float64"``.
      num_devices: devices of the ``"data"`` mesh the points are sharded over.
      chunk_size: steps per jitted ``lax.scan`` chunk (progress is printed between chunks).
      verbose: print progress.
      reference_every: every this many chunks, print (and record) relative errors against the
        Riccati reference (LQ games only; 0 disables).
      checkpoint_every: every this many chunks, write the checkpoint (if a directory is given).
      divergence_factor: a loss above this multiple of the first loss counts as divergence.
      diagnostic_points: points for the parabolicity and residual diagnostics after training
        (0 skips them).
    """

    concept: str = "stackelberg"
    num_steps: int | None = None
    batch_size: int = 256
    learning_rate: float | None = None
    final_learning_rate: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float | None = None
    refine_steps: int | None = None
    refine_batch_size: int | None = None
    cg_iterations: int | None = None
    points_per_time: int | None = None
    head_form: str | None = None
    time_basis: int | None = None
    width: int = 32
    depth: int = 2
    correction: bool | None = None
    state_scale: float = 1.0
    sampler: str = "gaussian"
    on_policy_fraction: float = 0.0
    adaptive_fraction: float = 0.0
    pool_size: int = 2048
    operator: str = "hvp"
    num_probes: int = 8
    gradient_weight: float | None = None
    controlled_diffusion: bool | None = None
    dtype: str | None = None
    num_devices: int = 1
    chunk_size: int = 500
    verbose: bool = True
    reference_every: int = 0
    checkpoint_every: int = 1
    divergence_factor: float = 1e8
    diagnostic_points: int = 256

    def __post_init__(self):
        check_concept(self.concept)
        if self.operator not in OPERATOR_METHODS:
            raise ValueError(
                f"SolverConfig.operator must be one of {OPERATOR_METHODS}, got {self.operator!r}."
            )
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"SolverConfig.sampler must be one of {SAMPLERS}, got {self.sampler!r}."
            )
        if self.dtype not in (None, "float32", "float64"):
            raise ValueError(
                f"SolverConfig.dtype must be None, 'float32' or 'float64', got {self.dtype!r}."
            )
        for name in (
            "batch_size", "chunk_size", "time_basis", "num_devices", "refine_batch_size",
            "cg_iterations",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"SolverConfig.{name} must be >= 1, got {value}.")
        refine = 1 if self.refine_steps is None else self.refine_steps
        adam = 1 if self.num_steps is None else self.num_steps
        if adam < 0 or refine < 0 or adam + refine < 1:
            raise ValueError(
                "SolverConfig.num_steps (Adam) and refine_steps (Gauss-Newton) must be >= 0 "
                f"and not both 0, got {self.num_steps} and {self.refine_steps}."
            )
        if self.points_per_time is not None:
            per = int(self.points_per_time)
            if per < 1:
                raise ValueError(f"SolverConfig.points_per_time must be >= 1, got {per}.")
            for name in ("batch_size", "refine_batch_size"):
                size = getattr(self, name)
                if per > 1 and size is not None and int(size) % (per * self.num_devices):
                    raise ValueError(
                        f"SolverConfig.{name}={size} must be divisible by points_per_time * "
                        f"num_devices = {per * self.num_devices} (each sampled time carries "
                        "points_per_time states; the times are split over the devices)."
                    )
            if per > 1 and self.num_pool_points > 0:
                raise ValueError(
                    "SolverConfig.points_per_time > 1 cannot be combined with on_policy_fraction "
                    "or adaptive_fraction (pool points carry their own times). Fix: set "
                    "points_per_time=1 (or None)."
                )
        if self.head_form not in (None, "expanded", "factored"):
            raise ValueError(
                "SolverConfig.head_form must be None (automatic), 'expanded' or 'factored', "
                f"got {self.head_form!r}."
            )
        if self.time_basis is not None and self.time_basis < 2:
            raise ValueError("SolverConfig.time_basis must be >= 2 (constant and linear in time).")
        if self.batch_size % self.num_devices:
            raise ValueError(
                f"SolverConfig.batch_size={self.batch_size} must be divisible by "
                f"num_devices={self.num_devices} (points are split evenly over devices)."
            )
        fractions = self.on_policy_fraction + self.adaptive_fraction
        if min(self.on_policy_fraction, self.adaptive_fraction) < 0 or fractions > 1:
            raise ValueError(
                "SolverConfig.on_policy_fraction and adaptive_fraction must be >= 0 with a sum "
                f"<= 1, got {self.on_policy_fraction} and {self.adaptive_fraction}."
            )
        if (self.learning_rate is not None and self.learning_rate <= 0) or (
            self.final_learning_rate < 0
        ):
            raise ValueError("SolverConfig learning rates must be positive.")
        if self.gradient_weight is not None and not (self.gradient_weight >= 0):  # and NaN
            raise ValueError(
                f"SolverConfig.gradient_weight must be >= 0 (0 disables the state-gradient "
                f"residual term), got {self.gradient_weight}."
            )

    def replace(self, **changes) -> SolverConfig:
        return dataclasses.replace(self, **changes)

    @property
    def num_pool_points(self) -> int:
        """Points per batch drawn from the on-policy / adaptive pool."""
        return int(round((self.on_policy_fraction + self.adaptive_fraction) * self.batch_size))

    def _settings(self) -> str:
        """Fields that change the optimisation path (checked when resuming)."""
        skip = {"chunk_size", "verbose", "reference_every", "checkpoint_every", "diagnostic_points"}
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return repr({k: v for k, v in fields.items() if k not in skip})


class TrainState(struct.PyTreeNode):
    """Resumable training state.

    Attributes:
      params: network parameters (leading ``[m]`` axis on every leaf).
      opt_state: optax state.
      step: [] int32 number of Adam steps taken.
      refine_step: [] int32 number of Gauss-Newton refinement iterations taken.
      damping: [] Levenberg-Marquardt damping of the refinement.
      norm: `Normalization` of the networks (fixed at initialisation).
      pool_t: [P] times of the on-policy / adaptive pool (``P = 0`` when unused).
      pool_x: [P, d] states of the pool.
    """

    params: dict
    opt_state: optax.OptState
    step: jax.Array
    refine_step: jax.Array
    damping: jax.Array
    norm: Normalization
    pool_t: jax.Array
    pool_x: jax.Array


def _float_dtype(game, config: SolverConfig):
    if config.dtype is None:
        return game.initial_state.dtype
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "SolverConfig.dtype='float64' needs jax.config.update('jax_enable_x64', True)."
        )
    return jnp.dtype(config.dtype)


def _cast_game(game, dtype):
    def cast(leaf):
        if isinstance(leaf, jax.Array | np.ndarray) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.astype(dtype)
        return leaf

    return jax.tree.map(cast, game)


def _is_concrete(tree) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def _detect_controlled(game, config: SolverConfig) -> bool:
    if config.controlled_diffusion is not None:
        return bool(config.controlled_diffusion)
    if isinstance(game, LQGame):  # traced arrays (jit / vmap over games): assume D != 0
        if not _is_concrete((game.D1, game.D2)):
            return True
        return bool(np.any(np.asarray(game.D1) != 0) or np.any(np.asarray(game.D2) != 0))
    flag = getattr(game, "has_controlled_diffusion", None)  # static flag of protocol games
    return flag if isinstance(flag, bool) else True


#: Default Gauss-Newton iterations (`SolverConfig.refine_steps=None`) below `HIGH_DIMENSION`:
#: quadratic head only (no Adam steps then), and with the MLP correction (after the Adam steps).
#: Gauss-Newton alone on the quadratic head, measured (float32, 2-core CPU, worst errors, wall
#: time of `solve`): `random_game` d = 3, m = 2: 1e-3 after 6 iterations, 4.8e-5 after 20
#: (7.3 s of training incl. compilation); `scalar_game` 1.3e-6 in 8.3 s, `zero_sum_game`
#: 9.6e-7 in 9.2 s, `controlled_diffusion_game` 1.1e-5 in 16 s (2000 Adam steps + 10
#: iterations before: 2.0e-6 / 1.0e-5 / 1.6e-4 in 11.8 / 14.1 / 22.7 s).
DEFAULT_REFINE_STEPS = 20
CORRECTION_REFINE_STEPS = 50
#: From this dimension on the quadratic head alone (`LQGame`s) is fitted with the
#: state-gradient rows and `HIGH_DIMENSION_POINTS_PER_TIME` states per time: a Gauss-Newton
#: batch of 512 points then gives fewer than 4 residual equations per unknown coefficient
#: without them (``8 (d + 1)(d + 2) / 2`` per player and regime). Measured on `random_game`,
#: d = 10, m = 3, 30 iterations: worst value error 1.5e-3 in 20 s without the rows, 9.3e-6
#: in 55 s with them and 8 states per time (2.3e-4 after 10 iterations, 28 s).
LQ_GRADIENT_ROWS_DIMENSION = 5
#: From `HIGH_DIMENSION` on (no Adam steps then; see `resolve_config`).
HIGH_DIMENSION_REFINE_STEPS = 30
#: Chebyshev polynomials in time of the quadratic head from `HIGH_DIMENSION` on: fewer unknowns
#: per Gauss-Newton iteration (``K (d + 1)(d + 2) / 2`` per player and regime) make each
#: iteration better determined. Measured on `examples.random_game` (d = 100, m = 2, T = 1): the
#: best fit of its Riccati coefficients with K = 3, 4, 5, 6, 8 polynomials has relative value
#: errors 3.1e-4, 4.5e-5, 7.3e-6, 1.7e-6, 9e-8 (a floor), while 30 Gauss-Newton iterations
#: reach worst value / policy-mean errors 1.8e-3 / 9.4e-3 with K = 3 and 3.7e-3 / 2.3e-2 with
#: K = 4 (20 iterations: 4.6e-3, 6.6e-3, 1.0e-2, -, 2.2e-2 for K = 3, 4, 5, -, 8). Games whose
#: value changes faster in time (long horizons, fast rates) need a larger ``time_basis``.
HIGH_DIMENSION_TIME_BASIS = 3


def resolve_config(game, config: SolverConfig | None = None) -> SolverConfig:
    """``config`` with every ``None`` default replaced by its value for ``game``.

    The defaults depend on the state dimension ``d`` (``high``: ``d >= HIGH_DIMENSION``, 20)
    and on whether the MLP correction is used (``correction``, by default for games that are
    not `LQGame`):

    ======================  ==========================  ===================================
    field                   ``d < 20``                  ``d >= 20``
    ======================  ==========================  ===================================
    ``num_steps`` (Adam)    0 (2000 with MLP)           0 (Gauss-Newton only)
    ``refine_steps``        20 (50 with MLP)            `HIGH_DIMENSION_REFINE_STEPS` (50
                                                        with MLP)
    ``refine_batch_size``   512                         256
    ``cg_iterations``       40                          20
    ``time_basis``          8                           `HIGH_DIMENSION_TIME_BASIS`
    ``gradient_weight``     1 from d = 5 (0 with MLP)   1
    ``points_per_time``     8 from d = 5 (1 with MLP)   8 (1 with an on-policy/adaptive pool)
    ``head_form``           ``"expanded"``              ``"factored"`` from d = 150 with at
                                                        most ``d / 2`` vectors per time
    ======================  ==========================  ===================================

    (d = 5 is `LQ_GRADIENT_ROWS_DIMENSION`; "with MLP": the MLP correction, used by default
    for games that are not `LQGame`s.)

    Measured reasons: see `SolverConfig` and the README's accuracy section. `solve` and
    `make_train_step` resolve their config first; ``Solution.config`` is the resolved one.
    """
    config = SolverConfig() if config is None else config
    high = game.state_dim >= HIGH_DIMENSION
    correction = not isinstance(game, LQGame) if config.correction is None else config.correction
    changes = {}

    def default(name, value):
        if getattr(config, name) is None:
            changes[name] = value

    default("correction", bool(correction))
    rows = high or (not correction and game.state_dim >= LQ_GRADIENT_ROWS_DIMENSION)
    default("num_steps", DEFAULT_ADAM_STEPS if correction and not high else 0)
    if correction:
        default("refine_steps", CORRECTION_REFINE_STEPS)
    else:
        default("refine_steps", HIGH_DIMENSION_REFINE_STEPS if high else DEFAULT_REFINE_STEPS)
    default("refine_batch_size", 256 if high else 512)
    default("cg_iterations", 20 if high else 40)
    default("time_basis", HIGH_DIMENSION_TIME_BASIS if high else 8)
    default("gradient_weight", 1.0 if rows else 0.0)
    batch = changes.get("refine_batch_size", config.refine_batch_size)
    per = HIGH_DIMENSION_POINTS_PER_TIME
    group = (
        rows
        and config.num_pool_points == 0
        and config.batch_size % (per * config.num_devices) == 0
        and batch % (per * config.num_devices) == 0
    )
    default("points_per_time", per if group else 1)
    if config.head_form is None:
        resolved = config.replace(**changes) if changes else config
        vectors = head_vectors_per_time(game, resolved, _detect_controlled(game, resolved))
        factored = game.state_dim >= FACTORED_HEAD_DIMENSION and 2 * vectors <= game.state_dim
        changes["head_form"] = "factored" if factored else "expanded"
    return config.replace(**changes) if changes else config


#: From this state dimension on the default `SolverConfig.head_form` is ``"factored"`` when a
#: sampled time carries at most ``d / 2`` vectors (`head_vectors_per_time`). Adam step times
#: on `examples.random_game` (m = 1, batch 256, 8 states per time, gradient rows, 2-core CPU,
#: float32), expanded vs factored, with V vectors per time: d = 100, V = 24: 47 vs 50 ms;
#: d = 100, V = 72 (batch 4096): 652 vs 945 ms; d = 200, V = 72: 172 vs 121 ms; d = 200,
#: V = 200: 274 vs 315 ms; d = 200, V = 1608: 1080 vs 2609 ms; d = 500, V = 24: 2446 vs
#: 591 ms; d = 500, V = 808: 4047 vs 5172 ms; d = 1000, V = 24: 12.4 vs 2.3 s. The Gauss-Newton
#: matrix-vector product follows (d = 500, V = 72: 2516 vs 627 ms). Expanded costs
#: ``(2 K + V) p d^2`` flops per time plus the traffic of several ``[G, p, d, d]`` arrays
#: (cotangents included), which outgrow the caches from d ~ 150; factored costs
#: ``K V p d^2`` in large matrix products.
FACTORED_HEAD_DIMENSION = 150


def head_vectors_per_time(game, config: SolverConfig, controlled: bool) -> int:
    """Vectors the quadratic head's Hessian is applied to per sampled time (`head_form`).

    ``points_per_time * (1 + r)``: each state ``z`` (the value's gradient) and its ``r``
    diffusion directions (``n`` noise columns, or ``num_probes`` sketched ones with the
    ``"hutchinson"`` operator; times ``1 + k1 + k2`` with a controlled diffusion).
    """
    r = config.num_probes if config.operator == "hutchinson" else game.noise_dim
    if controlled:
        r *= 1 + game.leader_dim + game.follower_dim
    return int(config.points_per_time or 1) * (1 + int(r))


def refine_iterations(game, config: SolverConfig) -> int:
    """Gauss-Newton iterations `solve` runs for ``game`` (resolves ``refine_steps=None``)."""
    return int(resolve_config(game, config).refine_steps)


def _model(game, config: SolverConfig) -> ValueModel:
    config = resolve_config(game, config)
    correction = config.correction
    return ValueModel(
        state_dim=game.state_dim,
        num_regimes=game.num_regimes,
        zero_sum=bool(game.zero_sum),
        time_basis=config.time_basis,
        width=config.width,
        depth=config.depth,
        correction=correction,
    )


def _time_coefficients(model, params, norm, t):
    """Quadratic-head coefficients of every regime at time ``t`` and their time derivatives.

    Returns ``(coef, coef_t)``: `QuadraticCoefficients` with a leading ``[m]`` axis.
    """
    t = jnp.asarray(t, norm.value_scale.dtype)

    def one(p_i):
        return jax.jvp(lambda s: model.time_coefficients(p_i, norm, s), (t,), (jnp.ones_like(t),))

    return jax.vmap(one)(params)


def _regime_equilibrium(
    model, config, controlled, p_i, norm, game, i, t, x, key, qc, qc_t, *, exact=False
):
    """Regime ``i``'s values ``[2]``, time derivatives ``[2]``, `PointEquilibrium` and
    ``(coef, y, hp)`` (coefficients, gradients ``[2, d]``, Hessian products) at one point
    ``(t [], x [d])``; ``p_i``, ``(qc, qc_t)``: the regime's parameters and head coefficients
    at ``t`` (see `_point_equilibria`)."""
    stochastic = config.operator == "hutchinson" and not exact
    method = "hessian" if (config.operator == "hessian" and not exact) else "hvp"

    def f(s, z, c):
        return model.regime_value_at(p_i, norm, game, i, s, z, c)

    v, v_t = jax.jvp(lambda s, c: f(s, x, c), (t, qc), (jnp.ones_like(t), qc_t))
    coef = game.coefficients(x, i)
    if stochastic:
        coef = sketch_diffusion(coef, key, config.num_probes)
    if method == "hessian":  # reference: autodiff through the whole value function
        y, hp = gradient_and_products(
            lambda z: model.regime_value(p_i, norm, game, i, t, z), x, coef,
            method=method, controlled=controlled,
        )  # fmt: skip
    else:
        y, hp = _split_products(model, controlled, p_i, norm, game, i, t, x, coef, qc)
    y, hp = model.expand(y), jax.tree.map(model.expand, hp)
    pre = pre_hamiltonian(coef, y, hp)
    eq = pointwise_equilibrium(
        pre, game.temperatures, concept=config.concept, zero_sum=game.zero_sum
    )
    return model.expand(v), model.expand(v_t), eq, (coef, y, hp)


def _hjb_residual(v, own, generator):
    """``R_{k,i} = own_{k,i} + sum_j q_ij V_{k,j}`` (MATH.md §5.3), ``own = V_t + H`` of each
    regime; ``v``, ``own``: [2, m], ``generator``: [m, m]. Unnormalised."""
    return own + v @ generator.T


def _point_setup(model, params, norm, t, x, key, coefs):
    """``t``, ``x`` in the model's dtype, the regime indices [m], one operator key per regime
    and the head coefficients at ``t`` (``coefs``, or `_time_coefficients` if ``None``)."""
    dtype = norm.value_scale.dtype
    t, x = jnp.asarray(t, dtype), jnp.asarray(x, dtype)
    if coefs is None:
        coefs = _time_coefficients(model, params, norm, t)
    return t, x, jnp.arange(model.num_regimes), jax.random.split(key, model.num_regimes), coefs


def _point_equilibria(
    model, config, controlled, params, norm, game, t, x, key, *, exact=False, coefs=None
):
    """Values, time derivatives [2, m] and the `PointEquilibrium` of every regime at one point.

    Also returns the pointwise `Coefficients`, gradients and Hessian products (leading ``[m]``)
    for diagnostics. ``coefs``: the quadratic head's ``(coef, coef_t)`` at ``t`` from
    `_time_coefficients` when the caller shares them between the states of one time
    (`_group_residuals`); computed here if ``None``.
    """
    t, x, regimes, keys, coefs = _point_setup(model, params, norm, t, x, key, coefs)

    def one(p_i, i, k, qc, qc_t):
        return _regime_equilibrium(
            model, config, controlled, p_i, norm, game, i, t, x, k, qc, qc_t, exact=exact
        )  # fmt: skip

    v, v_t, eq, local = jax.vmap(one)(params, regimes, keys, *coefs)
    return v.T, v_t.T, eq, local


def _residual_and_state_gradient(
    model, config, controlled, params, norm, game, t, x, key, coefs=None
):
    """`_residual` ``[2, m]`` at one point and its state gradient ``d/dx [2, m, d]``.

    Regime ``i``'s residual is ``V_t^i + H^i + sum_j q_ij V^j``: only the coupling term reads
    the other regimes, through their values, whose gradients ``y^j`` the Hamiltonian already
    computes. So each regime differentiates its own ``V_t^i + H^i`` (two reverse passes) and
    the coupling adds ``q_ij y^j``: ``O(m)`` regime evaluations, where reverse-mode through the
    whole ``[2, m]`` residual costs ``2m`` passes of all ``m`` regimes (``O(m^2)``).
    """
    t, x, regimes, keys, coefs = _point_setup(model, params, norm, t, x, key, coefs)

    def one(p_i, i, k, qc, qc_t):
        def own(z):
            v, v_t, eq, (_, y, _) = _regime_equilibrium(
                model, config, controlled, p_i, norm, game, i, t, z, k, qc, qc_t
            )  # fmt: skip
            return v_t + eq.hamiltonian, (v, v_t + eq.hamiltonian, y)

        jac, (v, own_value, y) = jax.jacrev(own, has_aux=True)(x)  # [2, d]
        return v, own_value, y, jac

    v, own, y, jac = jax.vmap(one)(params, regimes, keys, *coefs)  # [m, 2], [m, 2, d]
    q = game.generator
    r = _hjb_residual(v.T, own.T, q)
    dr = jnp.moveaxis(jac, 0, 1) + jnp.einsum("ij,jpd->pid", q, y)
    scale = norm.horizon / norm.value_scale
    return r * scale, dr * scale[..., None]


def _split_products(model, controlled, p_i, norm, game, i, t, x, coef, qc):
    """Gradients and exact Hessian products of one regime's values, structure exploited.

    The quadratic head's Hessian ``S tau H(tau) / s^2`` (and the terminal cost's, when the
    game provides ``terminal_hessian``) does not depend on ``x``: it is applied to the
    diffusion columns as a matrix product, shared by all states of one time when ``qc`` (the
    head's `QuadraticCoefficients` at ``t``) is shared. Only the remainder (MLP correction;
    terminal cost of games without ``terminal_hessian``) goes through Hessian-vector products
    (`gradient_and_products`, ``"hvp"``). Exact: equal to the ``jax.hessian`` path up to
    round-off (tested).
    """
    with_terminal = callable(getattr(game, "terminal_hessian", None))
    y = jax.jacrev(lambda z: model.regime_value_at(p_i, norm, game, i, t, z, qc))(x)  # [p, d]

    def apply(v):  # [r, d] -> [p, r, d]
        return model.regime_hessian_apply(p_i, norm, game, i, t, qc, v, with_terminal=with_terminal)

    hp = _split_hessian_products(apply(diffusion_directions(coef, controlled)), coef, controlled)
    if model.correction or not with_terminal:
        _, hp_rest = gradient_and_products(
            lambda z: model.regime_remainder(
                p_i, norm, game, i, t, z, with_terminal=not with_terminal
            ),
            x, coef, method="hvp", controlled=controlled,
        )  # fmt: skip
        hp = jax.tree.map(jnp.add, hp, hp_rest)
    return y, hp


def _residual(model, config, controlled, params, norm, game, t, x, key, coefs=None):
    """[2, m] normalised residuals ``R_{k,i} T / S_{k,i}`` at one point (MATH.md §5.3)."""
    v, v_t, eq, _ = _point_equilibria(
        model, config, controlled, params, norm, game, t, x, key, coefs=coefs
    )
    r = _hjb_residual(v, v_t + eq.hamiltonian.T, game.generator)
    return r * norm.horizon / norm.value_scale


def _group_residuals(model, config, controlled, params, norm, game, t, x, keys, coefs=None):
    """``[P, 2, m]`` residuals at ``P`` states ``x [P, d]`` sharing one time ``t []``.

    ``coefs``: the quadratic head's ``(coef, coef_t)`` at ``t`` (leaves ``[m, ...]``), by
    default its expanded form from `_time_coefficients`: evaluated once at ``t`` and applied
    to all ``P`` states, so its per-state ``[p, d, d]`` matrices become matrix products shared
    by the group (the `jax.hessian` reference operator still differentiates through everything
    per state). The factored form (one time of `ValueModel.factored_coefficients`) is passed
    in by the caller.
    """
    if coefs is None:
        coefs = _time_coefficients(model, params, norm, t)
    return jax.vmap(
        lambda xi, ki: _residual(model, config, controlled, params, norm, game, t, xi, ki, coefs)
    )(x, keys)


def _as_groups(t, x, keys):
    """Flat points ``(t [N], x [N, d], keys [N])`` become ``N`` groups of one state."""
    if x.ndim == 2:
        return t, x[:, None, :], keys[:, None]
    if x.ndim != 3 or t.shape != x.shape[:1] or keys.shape[:2] != x.shape[:2]:
        raise ValueError(
            "points must be flat (t [N], x [N, d], keys [N]) or grouped by time (t [G], "
            f"x [G, P, d], keys [G, P]); got t {t.shape}, x {x.shape}, keys {keys.shape}."
        )
    return t, x, keys


#: States per sampled time from `HIGH_DIMENSION` on (`SolverConfig.points_per_time`).
HIGH_DIMENSION_POINTS_PER_TIME = 8

#: From this state dimension on, the default `SolverConfig` adds the state-gradient residual
#: rows (``gradient_weight=1``): the quadratic head has ``(d + 1)(d + 2) / 2 >= 231``
#: coefficients per time basis function, and plain collocation (one equation per point, player
#: and regime) leaves Adam noise-bound (measured at d = 30: 6.3e-2 relative value error after
#: 600 steps without, 1.7e-2 with; Gauss-Newton barely moves without the extra rows).
HIGH_DIMENSION = 20


#: Adam steps of the default `SolverConfig` below `HIGH_DIMENSION` with the MLP correction
#: (`resolve_config`).
DEFAULT_ADAM_STEPS = 2000


def _learning_rate(config: SolverConfig, state_dim: int) -> float:
    if config.learning_rate is not None:
        return float(config.learning_rate)
    basis = (state_dim + 1) * (state_dim + 2) / 2
    return 1e-2 * float(np.sqrt(3.0 / basis))


def _optimizer(config: SolverConfig, state_dim: int) -> optax.GradientTransformation:
    lr = _learning_rate(config, state_dim)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0 if config.warmup_steps > 0 else lr,
        peak_value=lr,
        warmup_steps=config.warmup_steps,
        decay_steps=max(config.num_steps, config.warmup_steps + 1),
        end_value=min(config.final_learning_rate, lr),
    )
    # eps_root > 0 keeps d sqrt(v) finite at v = 0, so jax.grad can pass through training.
    adam = optax.adam(schedule, eps_root=1e-20)
    if config.grad_clip is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), adam)


def make_train_step(game, config: SolverConfig | None = None, *, controlled: bool | None = None):
    """Builds ``(init, train_step)`` for ``game`` (DESIGN.md §3).

    ``init(key) -> TrainState`` (key consumed). ``train_step(state, key, game=None) -> (state,
    metrics)`` is pure and unjitted: it samples a batch from ``key`` (consumed), evaluates the
    normalised residuals of both players in every regime, and applies one optax update.
    ``game`` defaults to the one given here; passing a game with other values (same shapes and
    flags) reuses the compiled step. Metrics: ``loss []`` and ``residual [2, m]``.

    Args:
      game: an `LQGame` or any `ControlQuadraticGame`.
      config: `SolverConfig` (default settings if ``None``).
      controlled: whether the diffusion is controlled (static); default from the game/config.
    """
    config = resolve_config(game, config)
    dtype = _float_dtype(game, config)
    game = _cast_game(game, dtype)
    controlled = _detect_controlled(game, config) if controlled is None else controlled
    model = _model(game, config)
    optimizer = _optimizer(config, game.state_dim)
    mesh = make_data_mesh(config.num_devices) if config.num_devices > 1 else None
    num_pool = config.num_pool_points
    points_per_time = int(config.points_per_time)
    factored = config.head_form == "factored"

    def init(key: jax.Array) -> TrainState:
        params = model.init(key, dtype)
        norm = estimate_normalization(game, config.state_scale)
        pool_size = config.pool_size if num_pool > 0 else 0
        pool_t, pool_x = sample_points(
            jax.random.fold_in(key, 1), game, pool_size,
            scale=config.state_scale, distribution=config.sampler,
        )  # fmt: skip
        return TrainState(
            params=params,
            opt_state=optimizer.init(params),
            step=jnp.zeros((), jnp.int32),
            refine_step=jnp.zeros((), jnp.int32),
            damping=jnp.asarray(1e-3, dtype),
            norm=norm,
            pool_t=pool_t,
            pool_x=pool_x,
        )

    def batch_residuals(params, norm, g, t, x, keys):
        """``[N, 2, m]`` residuals at flat points (``t [N], x [N, d], keys [N]``) or at points
        grouped by time (``t [G], x [G, P, d], keys [G, P]``, ``N = G P``, see
        `sample_batch`)."""
        t, x, keys = _as_groups(t, x, keys)
        coefs = model.factored_coefficients(params, norm, t) if factored else None
        r = jax.vmap(
            lambda ti, xi, ki, ci: _group_residuals(
                model, config, controlled, params, norm, g, ti, xi, ki, ci
            )
        )(t, x, keys, coefs)  # [G, P, 2, m]
        return r.reshape(-1, *r.shape[2:])

    def batch_residual_gradients(params, norm, g, t, x, keys):
        """``(r [N, 2, m], s grad_x r [N, 2, m, d])``: residuals and their state gradients
        (points as in `batch_residuals`)."""
        t, x, keys = _as_groups(t, x, keys)
        coefs = model.factored_coefficients(params, norm, t) if factored else None

        def group(ti, xs, ks, ci):
            if ci is None:  # one time's head coefficients, shared by the group's states
                ci = _time_coefficients(model, params, norm, ti)
            r, jac = jax.vmap(
                lambda xi, ki: _residual_and_state_gradient(
                    model, config, controlled, params, norm, g, ti, xi, ki, ci
                )
            )(xs, ks)  # [P, 2, m], [P, 2, m, d]
            return r, jac * norm.state_scale

        r, jac = jax.vmap(group)(t, x, keys, coefs)
        return r.reshape(-1, *r.shape[2:]), jac.reshape(-1, *jac.shape[2:])

    def sample_batch(k_pts, k_op, g, num):
        """``num`` collocation points ``(t [G], x [G, P, d], keys [G, P])``: ``G = num / P``
        times, each shared by ``P = points_per_time`` states (`SolverConfig`), drawn from
        ``k_pts`` (the operator keys from ``k_op``), sharded over the ``"data"`` mesh along
        ``G``."""
        t, x = sample_points(k_pts, g, num, scale=config.state_scale, distribution=config.sampler)
        per = points_per_time
        t, x = t[: num // per], x.reshape(num // per, per, -1)
        keys = jax.random.split(k_op, num).reshape(num // per, per)
        return shard_points((t, x, keys), mesh)

    def residual_vector(params, norm, g, t, x, keys):
        """Flat residual vector whose mean square is the training loss (`SolverConfig`)."""
        weight = float(config.gradient_weight)
        if weight > 0:
            r, jac = batch_residual_gradients(params, norm, g, t, x, keys)
            w = jnp.sqrt(jnp.asarray(weight, r.dtype))
            return r, jnp.concatenate([r.reshape(-1), w * jac.reshape(-1)])
        r = batch_residuals(params, norm, g, t, x, keys)
        return r, r.reshape(-1)

    def train_step(state: TrainState, key: jax.Array, game_values=None):
        g = game if game_values is None else _cast_game(game_values, dtype)
        k_sample, k_pool, k_op = jax.random.split(key, 3)
        if points_per_time > 1:  # (no pool then, see `points_per_time`)
            t, x, keys = sample_batch(k_sample, k_op, g, config.batch_size)
        else:
            t, x = sample_points(
                k_sample, g, config.batch_size, scale=config.state_scale,
                distribution=config.sampler,
            )  # fmt: skip
            if num_pool > 0:
                idx = jax.random.randint(k_pool, (num_pool,), 0, state.pool_t.shape[0])
                t = t.at[:num_pool].set(state.pool_t[idx])
                x = x.at[:num_pool].set(state.pool_x[idx])
            keys = jax.random.split(k_op, config.batch_size)
            t, x, keys = shard_points((t, x, keys), mesh)

        def loss_fn(params):
            r, vec = residual_vector(params, state.norm, g, t, x, keys)  # [N, 2, m], [P]
            terms = jnp.mean(r**2, axis=0)  # [2, m]
            return jnp.sum(vec**2) / r.size, terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
        return new, {"loss": loss, "residual": terms}

    init.model = model  # type: ignore[attr-defined]
    init.mesh = mesh  # type: ignore[attr-defined]
    init.batch_residuals = batch_residuals  # type: ignore[attr-defined]
    init.batch_residual_gradients = batch_residual_gradients  # type: ignore[attr-defined]
    init.residual_vector = residual_vector  # type: ignore[attr-defined]
    init.sample_batch = sample_batch  # type: ignore[attr-defined]
    return init, train_step


# ----------------------------------------------------------------------------------------
# Solution
class Solution(struct.PyTreeNode):
    """Trained value networks of both players in every regime.

    ``value(t, x) -> [2, m]`` and ``policy(t, x) -> GaussianPolicy`` are pure JAX (jit, vmap
    and grad in ``t``, ``x`` and the parameters); the policy is computed pointwise from the
    network's gradient and Hessian products by MATH.md §4.3 (§8), so it plugs into
    `evaluate`, `simulate` and `monte_carlo_cost`.

    Attributes:
      state: the final (resumable) `TrainState`.
      game: the game (in the solver's dtype).
      history: ``step [N]``, ``loss [N]``, ``residual [N, 2, m]`` per optimisation step, and
        ``error_step [E]`` (Adam steps, then Adam steps + Gauss-Newton iterations),
        ``error_seconds [E]`` (training wall time in s, compilation included, the checks
        themselves excluded), ``value_error [E, 2, m]``, ``mean_error [E, 2, m]`` (leader and
        follower mean errors stacked) at the reference checks (``E = 0`` if none).
      diagnostics: see `solution_diagnostics`; plus ``diverged``, ``train_seconds``.
      config: the `SolverConfig` (static).
      controlled: whether the diffusion columns of ``D`` were included (static).
      message: the divergence message ("" if none; static).
    """

    state: TrainState
    game: object
    history: dict
    diagnostics: dict
    config: SolverConfig = struct.field(pytree_node=False)
    controlled: bool = struct.field(pytree_node=False, default=True)
    message: str = struct.field(pytree_node=False, default="")

    @property
    def model(self) -> ValueModel:
        return _model(self.game, self.config)

    @property
    def diverged(self) -> bool:
        return bool(self.message)

    def value(self, t, x) -> jax.Array:
        """[2, m] values of both players in every regime at ``(t [], x [d])``."""
        return _value_at(self.config, self.state.params, self.state.norm, self.game, t, x)

    def policy(self, t, x) -> GaussianPolicy:
        """Equilibrium `GaussianPolicy` (all regimes) from the networks' derivatives (§8)."""
        return _policy_at(
            self.config, self.controlled, self.state.params, self.state.norm, self.game, t, x
        )

    def residual(self, t, x) -> jax.Array:
        """[2, m] residuals ``R_{k,i}(t, x)`` of MATH.md §5.3 (exact operators, unnormalised)."""
        return _residual_at(
            self.config, self.controlled, self.state.params, self.state.norm, self.game, t, x
        )


@functools.partial(jax.jit, static_argnames="config")
def _value_at(config, params, norm, game, t, x):
    return _model(game, config).value(params, norm, game, t, x)


@functools.partial(jax.jit, static_argnames=("config", "controlled"))
def _policy_at(config, controlled, params, norm, game, t, x):
    model = _model(game, config)
    key = jax.random.key(0)  # unused: exact operators
    _, _, eq, _ = _point_equilibria(
        model, config, controlled, params, norm, game, t, x, key, exact=True
    )
    return GaussianPolicy(
        mean_leader=eq.mean_leader,
        cov_leader=eq.cov_leader,
        mean_follower=eq.mean_follower,
        cov_follower=eq.cov_follower,
    )


@functools.partial(jax.jit, static_argnames=("config", "controlled"))
def _residual_at(config, controlled, params, norm, game, t, x):
    model = _model(game, config)
    v, v_t, eq, _ = _point_equilibria(
        model, config, controlled, params, norm, game, t, x, jax.random.key(0), exact=True
    )
    return _hjb_residual(v, v_t + eq.hamiltonian.T, game.generator)


@functools.partial(jax.jit, static_argnames=("config", "controlled"))
def _diagnostics(config, controlled, params, norm, game, key):
    """Parabolicity margins, well-posedness and residual RMS on ``diagnostic_points`` points."""
    model = _model(game, config)
    params, norm, game = jax.lax.stop_gradient((params, norm, game))
    k_pts, k_dir = jax.random.split(key)
    t, x = sample_points(
        k_pts, game, config.diagnostic_points, scale=config.state_scale,
        distribution=config.sampler,
    )  # fmt: skip

    def at(ti, xi, ki):
        v, v_t, eq, (coef, y, hp) = _point_equilibria(
            model, config, controlled, params, norm, game, ti, xi, ki, exact=True
        )
        r = _hjb_residual(v, v_t + eq.hamiltonian.T, game.generator)
        if controlled and not game.zero_sum:  # genuinely coupled symbol (MATH.md §5.4 item 4)
            keys = jax.random.split(ki, model.num_regimes)
            margin = jax.vmap(
                lambda c, yy, h, kk: parabolicity_margin(
                    c, yy, h, game.temperatures, kk, concept=config.concept, zero_sum=False
                )
            )(coef, y, hp, keys)  # [m]
        else:  # items 2-3: scalar symbol 1/2 xi^T E[sigma sigma^T] xi
            margin = jax.vmap(diffusion_margin)(coef, eq)
        return r, v_t, margin

    r, v_t, margin = jax.vmap(at)(t, x, jax.random.split(k_dir, t.shape[0]))
    rms = jnp.sqrt(jnp.mean(r**2, axis=0))
    return {
        "residual_rms": rms,  # [2, m]
        "residual_relative": rms / jnp.sqrt(jnp.mean(v_t**2, axis=0)),  # [2, m] §9.4
        "parabolicity_min": jnp.min(margin, axis=0),  # [m]
        "parabolicity_negative_fraction": jnp.mean(margin < 0, axis=0),  # [m]
        "nonfinite_fraction": jnp.mean(~jnp.isfinite(r), axis=(0, 1)),  # [m] (WP violated)
    }


def solution_diagnostics(solution: Solution, key: jax.Array) -> dict:
    """Diagnostics of a solution on ``config.diagnostic_points`` points of the sampling law.

    Returns a dict with ``residual_rms [2, m]``, ``residual_relative [2, m]`` (divided by the
    RMS of ``dV/dt``, MATH.md §9.4), ``parabolicity_min [m]`` and
    ``parabolicity_negative_fraction [m]`` (MATH.md §5.4) and ``nonfinite_fraction [m]``
    (points where the pointwise problem is not well posed, §4.5).
    """
    s = solution
    return _diagnostics(s.config, s.controlled, s.state.params, s.state.norm, s.game, key)


# ----------------------------------------------------------------------------------------
# Training loop
class _Status(struct.PyTreeNode):
    diverged: jax.Array  # [] bool
    step: jax.Array  # [] step at which it happened
    loss: jax.Array  # [] loss of the rejected step
    terms: jax.Array  # [2, m] residual terms of the rejected step
    params_finite: jax.Array  # [] whether the rejected update had finite parameters
    first_loss: jax.Array  # [] loss of the first step (explosion reference)


def _initial_status(m: int, dtype) -> _Status:
    nan = jnp.asarray(jnp.nan, dtype)
    return _Status(
        diverged=jnp.zeros((), bool),
        step=jnp.zeros((), jnp.int32),
        loss=nan,
        terms=jnp.full((2, m), jnp.nan, dtype),
        params_finite=jnp.ones((), bool),
        first_loss=nan,
    )


@functools.partial(jax.jit, static_argnames=("config", "controlled", "num"))
def _run_chunk(game, state, status, base_key, stop, *, config, controlled, num):
    """``num`` guarded training steps in one ``lax.scan`` (step keys ``fold_in(key, step)``).

    Steps with ``state.step >= stop`` (a traced bound) are skipped, so a shorter last chunk (or
    a stop after a resume) reuses the compiled chunk of length ``num = chunk_size``; their
    metrics are NaN and are dropped by the caller.
    """
    _, train_step = make_train_step(game, config, controlled=controlled)

    def skip(state, key):
        _, shapes = jax.eval_shape(train_step, state, key)
        return state, jax.tree.map(lambda a: jnp.full(a.shape, jnp.nan, a.dtype), shapes)

    def body(carry, _):
        state, status = carry
        active = state.step < stop
        new, metrics = jax.lax.cond(
            active, train_step, skip, state, jax.random.fold_in(base_key, state.step)
        )
        loss = metrics["loss"]
        first = jnp.where(jnp.isnan(status.first_loss) & active, loss, status.first_loss)
        params_ok = jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(new.params)])
        )
        exploded = loss > config.divergence_factor * first
        ok = active & jnp.isfinite(loss) & params_ok & ~exploded & ~status.diverged
        now = active & ~ok & ~status.diverged
        status = _Status(
            diverged=status.diverged | now,
            step=jnp.where(now, state.step, status.step),
            loss=jnp.where(now, loss, status.loss),
            terms=jnp.where(now, metrics["residual"], status.terms),
            params_finite=jnp.where(now, params_ok, status.params_finite),
            first_loss=first,
        )
        state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
        return (state, status), metrics

    (state, status), metrics = jax.lax.scan(body, (state, status), None, length=num)
    return state, status, metrics


def _pcg(
    matvec, rhs: jax.Array, diag: jax.Array, num_iterations: int, unroll: int = 1
) -> jax.Array:
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


def _linearized_residuals(init, unravel, flat, norm, game, t, x, keys):
    """The refinement's residual vector and its linearisation at ``flat``.

    Args:
      init: the ``init`` of `make_train_step` (carries ``residual_vector``).
      unravel: ``flat [P] -> params`` (from ``jax.flatten_util.ravel_pytree``).
      flat: [P] parameters at which to linearise.  norm, game: as in `TrainState` / `solve`.
      t, x, keys: one batch from ``init.sample_batch`` (R residual rows in all).

    Returns:
      ``(residual_vector, r, jvp, vjp)``: ``residual_vector(theta) [R]`` scaled by
      ``1/sqrt(#residuals)`` so that ``|r|^2`` is the training loss, ``r`` its value at
      ``flat``, ``jvp: [P] -> [R]`` (``J v``) and ``vjp: [R] -> [P]`` (``J^T u``). No Jacobian
      is formed; ``vjp(jvp(v))`` is the Gauss-Newton product ``J^T J v``.
    """

    def residual_vector(theta):
        r, vec = init.residual_vector(unravel(theta), norm, game, t, x, keys)
        return vec / jnp.sqrt(jnp.asarray(r.size, r.dtype))

    r, jvp_fn = jax.linearize(residual_vector, flat)
    transpose = jax.linear_transpose(jvp_fn, flat)
    return residual_vector, r, jvp_fn, lambda u: transpose(u)[0]


@functools.partial(jax.jit, static_argnames=("config", "controlled", "num", "cg_unroll"))
def _refine(game, state, base_key, *, config, controlled, num, cg_unroll=1):
    """``num`` Levenberg-Marquardt iterations on the normalised residual vector.

    Iteration ``j`` draws ``refine_batch_size`` points from ``fold_in(key, j)``, linearises the
    residual vector ``r(theta)`` (scaled so that the loss is ``|r|^2``) and solves
    ``(J^T J + mu I) delta = -J^T r`` by conjugate gradients with Jacobian-vector and
    vector-Jacobian products (no Jacobian is formed). The step is accepted if it lowers the
    loss on the batch (then ``mu /= 3``), otherwise rejected (``mu *= 4``). ``cg_unroll``
    (static) is passed to `_pcg` as ``unroll``; the result does not depend on it.
    """
    init, _ = make_train_step(game, config, controlled=controlled)
    flat, unravel = jax.flatten_util.ravel_pytree(state.params)
    n = config.refine_batch_size

    def body(carry, _):
        flat, mu, j = carry
        k_pts, k_op = jax.random.split(jax.random.fold_in(base_key, j))
        t, x, keys = init.sample_batch(k_pts, k_op, game, n)
        residual_vector, r, jvp_fn, vjp_fn = _linearized_residuals(
            init, unravel, flat, state.norm, game, t, x, keys
        )  # fmt: skip
        grad = vjp_fn(r)

        def normal_matvec(v):
            return vjp_fn(jvp_fn(v)) + mu * v

        # Jacobi preconditioner: diag(J^T J) = E[(J^T v)^2] over Rademacher v (8 probes).
        probes = jax.random.rademacher(jax.random.fold_in(k_op, 1), (8, r.shape[0]), dtype=r.dtype)
        diag = jnp.mean(jax.vmap(lambda v: vjp_fn(v) ** 2)(probes), axis=0)
        scale = diag + mu + 1e-12 * jnp.max(diag)
        delta = _pcg(normal_matvec, -grad, scale, config.cg_iterations, cg_unroll)
        new = flat + delta
        loss_old, loss_new = jnp.sum(r**2), jnp.sum(residual_vector(new) ** 2)
        accept = jnp.isfinite(loss_new) & (loss_new < loss_old)
        flat = jnp.where(accept, new, flat)
        mu = jnp.clip(jnp.where(accept, mu / 3.0, mu * 4.0), 1e-9, 1e6)
        return (flat, mu, j + 1), (loss_old, jnp.where(accept, loss_new, loss_old))

    (flat, mu, j), losses = jax.lax.scan(
        body, (flat, state.damping, state.refine_step), None, length=num
    )
    state = state.replace(params=unravel(flat), damping=mu, refine_step=j)
    return state, losses


@functools.partial(jax.jit, static_argnames=("config", "controlled", "num_points"))
def _refresh_pool(config, controlled, params, norm, game, key, *, num_points):
    """On-policy states under the current policies and residual-adaptive points."""
    model = _model(game, config)
    params = jax.lax.stop_gradient(params)
    n_on = int(round(num_points * config.on_policy_fraction / (
        config.on_policy_fraction + config.adaptive_fraction)))  # fmt: skip
    n_ad = num_points - n_on
    k_on, k_cand, k_res, k_pick = jax.random.split(key, 4)
    parts_t, parts_x = [], []
    if n_on > 0:

        def policy(t, x):
            return _policy_at(config, controlled, params, norm, game, t, x)

        t_on, x_on = sample_on_policy(k_on, game, policy, n_on)
        parts_t.append(t_on)
        parts_x.append(x_on)
    if n_ad > 0:
        t_c, x_c = sample_points(
            k_cand, game, 4 * n_ad, scale=config.state_scale, distribution=config.sampler
        )
        r = jax.vmap(
            lambda ti, xi, ki: _residual(model, config, controlled, params, norm, game, ti, xi, ki)
        )(t_c, x_c, jax.random.split(k_res, t_c.shape[0]))
        size = jnp.sqrt(jnp.sum(r**2, axis=(1, 2)))
        t_a, x_a = resample_by_residual(k_pick, t_c, x_c, size, n_ad)
        parts_t.append(t_a)
        parts_x.append(x_a)
    return jnp.concatenate(parts_t), jnp.concatenate(parts_x)


def _divergence_message(status: _Status, config: SolverConfig) -> str:
    step = int(status.step)
    terms = np.asarray(status.terms)
    loss = float(status.loss)
    bad = np.argwhere(~np.isfinite(terms))
    if not np.isfinite(loss) and bad.size:
        names = ", ".join(f"{PLAYERS[k]} regime {i}" for k, i in bad)
        what = f"the residual loss term became non-finite for {names}"
    elif not bool(status.params_finite):
        worst = np.unravel_index(np.nanargmax(terms), terms.shape)
        what = (
            "the parameter update produced non-finite parameters (largest residual term: "
            f"{PLAYERS[worst[0]]} regime {worst[1]}, {terms[worst]:.3g})"
        )
    else:
        worst = np.unravel_index(np.nanargmax(terms), terms.shape)
        what = (
            f"the loss exploded to {loss:.3g} (> divergence_factor={config.divergence_factor:g} "
            f"times the first loss); largest residual term: {PLAYERS[worst[0]]} regime "
            f"{worst[1]} ({terms[worst]:.3g})"
        )
    return (
        f"stackjax.solve diverged at step {step}: {what}. Training stopped and the last good "
        f"state (step {step}) is returned. Fix: lower learning_rate (now "
        f"{config.learning_rate if config.learning_rate is not None else 'the default'}), set "
        "grad_clip, or check the game's well-posedness."
    )


def _reference_errors(solution: Solution, reference, key) -> dict:
    from ._evaluate import evaluate

    err = evaluate(solution, reference, key, num_points=1024)
    return {
        "value": np.asarray(err["value"]),
        "mean": np.stack([np.asarray(err["mean_leader"]), np.asarray(err["mean_follower"])]),
    }


def solve(
    game,
    key: jax.Array,
    config: SolverConfig | None = None,
    *,
    checkpoint_dir=None,
    stop_at_step: int | None = None,
) -> Solution:
    """Trains value networks of both players in every regime on the HJB residuals (§5.3).

    Runs ``config.num_steps`` steps of `make_train_step`'s ``train_step`` in jitted
    ``lax.scan`` chunks of ``config.chunk_size`` (step ``s`` uses the key
    ``fold_in(k_train, s)``, so the result does not depend on the chunking), prints progress
    between chunks (steps/s, loss, worst residual term, and the relative errors against the
    Riccati reference every ``config.reference_every`` chunks for LQ games), and records the
    history. With ``checkpoint_dir`` the state is saved between chunks and an existing
    checkpoint there is resumed (same key and settings required); ``stop_at_step`` stops early
    (after checkpointing), as an interruption would.

    On divergence (see the module docstring) training stops, the last good state is kept and a
    `TrainingDivergedWarning` is issued; ``solution.diagnostics["diverged"]`` is set.

    Pure when called with traced arguments: under ``jax.vmap`` over keys or ``jax.grad`` with
    respect to the game's arrays the same chunks run without printing, checkpointing or early
    stopping (a diverged run then simply keeps its last good state).

    Args:
      game: an `LQGame` or any `ControlQuadraticGame`.
      key: PRNG key (consumed).
      config: `SolverConfig` (defaults if ``None``).
      checkpoint_dir: directory to checkpoint to and resume from (optional).
      stop_at_step: stop once this many steps are done (optional).

    Returns:
      `Solution`.
    """
    config = resolve_config(game, config)
    dtype = _float_dtype(game, config)
    game = _cast_game(game, dtype)
    controlled = _detect_controlled(game, config)
    init, _ = make_train_step(game, config, controlled=controlled)
    mesh = init.mesh
    concrete = _is_concrete((game, key))
    k_init, k_train, k_diag, k_ref, k_pool = jax.random.split(key, 5)
    state = init(k_init)
    status = _initial_status(game.num_regimes, dtype)
    m = game.num_regimes
    history = {
        "step": np.zeros((0,), np.int64),
        "loss": np.zeros((0,), dtype),
        "residual": np.zeros((0, 2, m), dtype),
    }
    chunks = []
    settings = config._settings()
    key_data = np.asarray(jax.random.key_data(key)) if concrete else None
    if concrete and has_checkpoint(checkpoint_dir):
        state, history = restore_checkpoint(
            checkpoint_dir, state, key_data=key_data, settings=settings
        )
        if config.verbose:
            print(f"[stackjax.solve] resumed from {checkpoint_dir} at step {int(state.step)}")
    done = int(state.step) if concrete else 0
    target = config.num_steps if stop_at_step is None else min(config.num_steps, stop_at_step)
    state, game = replicate((state, game), mesh)
    reference = None
    if concrete and config.reference_every and isinstance(game, LQGame):
        from ._riccati import riccati_reference

        reference = riccati_reference(game, concept=config.concept)
    errors = {"step": [], "seconds": [], "value": [], "mean": []}
    clock = 0.0  # training seconds (compilation included, reference checks excluded)

    def check(step):
        solution = _make_solution(state, game, history, chunks, {}, config, controlled, "")
        err = _reference_errors(solution, reference, k_ref)
        errors["step"].append(step)
        errors["seconds"].append(clock)
        errors["value"].append(err["value"])
        errors["mean"].append(err["mean"])

    message = ""
    t_start = time.perf_counter()
    chunk_index = 0
    while done < target:
        num = min(config.chunk_size, target - done)
        tic = time.perf_counter()
        if config.num_pool_points > 0:
            pool_t, pool_x = _refresh_pool(
                config, controlled, state.params, state.norm, game,
                jax.random.fold_in(k_pool, done), num_points=config.pool_size,
            )  # fmt: skip
            state = state.replace(pool_t=pool_t, pool_x=pool_x)
        # Always the full chunk length (one compilation); steps past `done + num` are skipped.
        stop = jnp.asarray(done + num, jnp.int32)
        state, status, metrics = _run_chunk(
            game, state, status, k_train, stop,
            config=config, controlled=controlled, num=config.chunk_size,
        )  # fmt: skip
        metrics = jax.tree.map(lambda a, num=num: a[:num], metrics)
        chunks.append(metrics)
        done += num
        chunk_index += 1
        if not concrete:
            continue
        loss = np.asarray(metrics["loss"])
        elapsed = time.perf_counter() - tic
        clock += elapsed
        if bool(status.diverged):
            message = _divergence_message(status, config)
            first_bad = int(status.step)
            keep = max(first_bad - (done - num), 0)
            chunks[-1] = jax.tree.map(lambda a, keep=keep: a[:keep], metrics)
            break
        if reference is not None and chunk_index % config.reference_every == 0:
            check(done)
        if config.verbose:
            terms = np.asarray(metrics["residual"][-1])
            worst = np.unravel_index(np.argmax(terms), terms.shape)
            line = (
                f"[stackjax.solve] step {done}/{config.num_steps}  loss {loss[-1]:.3e}  "
                f"(worst: {PLAYERS[worst[0]]} regime {worst[1]} {terms[worst]:.2e})  "
                f"{num / elapsed:.0f} steps/s{' incl. compilation' if chunk_index == 1 else ''}"
            )
            if errors["step"] and errors["step"][-1] == done:
                line += (
                    f"  | max rel. error: value {np.max(errors['value'][-1]):.2e}, "
                    f"policy mean {np.max(errors['mean'][-1]):.2e}"
                )
            print(line, flush=True)
        if checkpoint_dir is not None and (
            chunk_index % config.checkpoint_every == 0 or done >= target
        ):
            hist = _concat_history(history, chunks)
            save_checkpoint(checkpoint_dir, state, hist, key_data=key_data, settings=settings)
    # Gauss-Newton refinement once all Adam steps are done (not after an interruption).
    refine_losses = [np.asarray(history.get("refine_loss", np.zeros((0,), dtype)))]
    done_refine = int(state.refine_step) if concrete else 0
    refine_total = refine_iterations(game, config)
    if not message and done >= config.num_steps and done_refine < refine_total:
        if stop_at_step is None or stop_at_step > config.num_steps:
            tic = time.perf_counter()
            # With reference checks: one iteration per call (iteration j uses fold_in(key, j),
            # so the result does not depend on this), each followed by a check.
            pieces = (
                [1] * (refine_total - done_refine)
                if reference is not None
                else [refine_total - done_refine]
            )
            k_refine = jax.random.fold_in(k_train, config.num_steps + 1)
            for piece in pieces:
                tic_piece = time.perf_counter()
                state, (_, after) = _refine(
                    game, state, k_refine, config=config, controlled=controlled, num=piece
                )
                refine_losses.append(after)
                if reference is not None:
                    jax.block_until_ready(after)
                    clock += time.perf_counter() - tic_piece
                    check(done + int(state.refine_step))
            if concrete:
                after = np.concatenate([np.asarray(a) for a in refine_losses[1:]])
                if config.verbose:
                    print(
                        f"[stackjax.solve] Gauss-Newton refinement: {after.size} iterations, "
                        f"loss {after[0]:.3e} -> {after[-1]:.3e} "
                        f"({time.perf_counter() - tic:.1f} s incl. compilation)",
                        flush=True,
                    )
                if checkpoint_dir is not None:
                    hist = _concat_history(history, chunks)
                    hist["refine_loss"] = np.concatenate(refine_losses)
                    save_checkpoint(
                        checkpoint_dir, state, hist, key_data=key_data, settings=settings
                    )
    train_seconds = time.perf_counter() - t_start
    full_history = _concat_history(history, chunks)
    full_history["refine_loss"] = (
        np.concatenate(refine_losses) if concrete else jnp.concatenate(refine_losses)
    )
    if errors["step"]:
        full_history["error_step"] = np.asarray(errors["step"])
        full_history["error_seconds"] = np.asarray(errors["seconds"])
        full_history["value_error"] = np.stack(errors["value"])
        full_history["mean_error"] = np.stack(errors["mean"])
    else:
        full_history["error_step"] = np.zeros((0,), np.int64)
        full_history["error_seconds"] = np.zeros((0,))
        full_history["value_error"] = np.zeros((0, 2, m))
        full_history["mean_error"] = np.zeros((0, 2, m))
    diagnostics = {}
    if config.diagnostic_points > 0:
        diagnostics = dict(_diagnostics(config, controlled, state.params, state.norm, game, k_diag))
    diagnostics["diverged"] = status.diverged
    diagnostics["train_seconds"] = train_seconds
    if concrete:
        if message:
            warnings.warn(message, TrainingDivergedWarning, stacklevel=2)
        _warn_parabolicity(game, controlled, diagnostics)
    return _make_solution(state, game, full_history, [], diagnostics, config, controlled, message)


def _warn_parabolicity(game, controlled, diagnostics) -> None:
    if game.zero_sum or not controlled or "parabolicity_negative_fraction" not in diagnostics:
        return
    fraction = np.asarray(diagnostics["parabolicity_negative_fraction"])
    if np.any(fraction > 0):
        worst = np.asarray(diagnostics["parabolicity_min"])
        warnings.warn(
            "The coupled HJB system is not parabolic at part of the sample points (MATH.md "
            f"§5.4): negative margin at fractions {np.round(fraction, 3).tolist()} of the points "
            f"per regime (min {np.round(worst, 4).tolist()}). There a small residual does not "
            "imply a small error. Fix: sample where the margin is positive (smaller "
            "state_scale) or add uncontrolled noise to the game.",
            RuntimeWarning,
            stacklevel=3,
        )


def _concat_history(history: dict, chunks: list) -> dict:
    out = {k: v for k, v in history.items()}
    if chunks:
        loss = jnp.concatenate([c["loss"] for c in chunks], axis=-1)
        residual = jnp.concatenate([c["residual"] for c in chunks], axis=-3)
        if _is_concrete((loss, residual)):
            loss, residual = np.asarray(loss), np.asarray(residual)
            start = len(history["loss"])
            out["loss"] = np.concatenate([history["loss"], loss])
            out["residual"] = np.concatenate([history["residual"], residual])
            out["step"] = np.arange(start + loss.shape[-1], dtype=np.int64)
        else:
            out["loss"], out["residual"] = loss, residual
            out["step"] = jnp.arange(loss.shape[-1])
    return out


def _make_solution(state, game, history, chunks, diagnostics, config, controlled, message):
    hist = _concat_history(history, chunks) if chunks else dict(history)
    return Solution(
        state=state,
        game=game,
        history=hist,
        diagnostics=diagnostics,
        config=config,
        controlled=controlled,
        message=message,
    )

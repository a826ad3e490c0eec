"""`SolverConfig`: the neural solver's settings (frozen, hashable, validated at construction)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._hamiltonian import check_concept
from .._operators import OPERATOR_METHODS
from .._sampling import SAMPLERS

__all__ = ["SolverConfig", "TrainingDivergedWarning"]


class TrainingDivergedWarning(RuntimeWarning):
    """Training stopped on a non-finite or exploding loss; the last good state is returned."""


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """Settings of the neural solver.

    Frozen and hashable: a static argument of the jitted pieces (changing a numerical field
    recompiles; changing the game's values does not). ``None`` fields take a game- and
    dimension-dependent default (`resolve_config`, table in `stackjax._solver._defaults`; the
    measurements behind it are in docs/performance.md). ``Solution.config`` is resolved.

    Attributes:
      concept: ``"stackelberg"`` or ``"nash"`` (zero-sum games are flagged on the game).
      num_steps: Adam steps (0: Gauss-Newton refinement only).
      batch_size: collocation points per Adam step (all regimes are evaluated at each point).
      learning_rate: peak Adam learning rate after ``warmup_steps`` of linear warm-up.
        ``None``: ``1e-2 sqrt(3 / B)`` with ``B = (d + 1)(d + 2) / 2`` quadratic-head basis
        functions (Adam moves every coefficient by about the learning rate, so the output
        moves like ``sqrt(B)`` times it).
      final_learning_rate: learning rate at the end of the cosine decay.
      warmup_steps: linear warm-up steps.
      grad_clip: clip the global gradient norm to this value (``None``: no clipping).
      refine_steps: Levenberg-Marquardt (Gauss-Newton) iterations after the Adam steps, each
        on a fresh batch of ``refine_batch_size`` points with ``cg_iterations`` matrix-free
        conjugate-gradient steps (0 disables).
      refine_batch_size, cg_iterations: points and CG steps per Gauss-Newton iteration.
      points_per_time: states sampled at each sampled time; the quadratic head's coefficients
        at a time are computed once and applied to its states as matrix products. Must divide
        ``batch_size`` and ``refine_batch_size`` (times ``num_devices``); not combinable with
        the on-policy / adaptive pool.
      head_form: ``"expanded"`` forms the head's Hessian ``H(tau) = sum_k T_k B_k`` once per
        sampled time; ``"factored"`` applies the ``K`` basis matrices to all vectors of the
        batch as one matrix product (``K`` times the flops, far less memory traffic). Same
        values either way.
      time_basis: Chebyshev polynomials in time of the quadratic head (>= 2).
      width, depth: of the MLP correction.
      correction: use the MLP correction (``None``: unless the game declares a quadratic
        value, ``game.quadratic_value``).
      state_scale: standard deviation ``s`` of the sampled states around ``x0`` (also the
        networks' input scale).
      sampler: ``"gaussian"``, ``"box"`` or ``"multiscale"`` (`sample_points`).
      on_policy_fraction, adaptive_fraction: fractions of each Adam batch drawn from a pool
        of on-policy states and of residual-adaptive points; the pool of ``pool_size``
        points is refreshed between chunks.
      operator: ``"hvp"`` (exact Hessian-vector products), ``"hessian"`` (``jax.hessian``
        reference) or ``"hutchinson"`` (unbiased sketch with ``num_probes`` probes).
      gradient_weight: weight ``w`` of the state-gradient rows: the loss becomes
        ``mean(R^2) + w mean(|s grad_x R|^2)`` (the exact solution has ``grad_x R = 0`` too,
        and each point then gives ``d`` more equations per player and regime). 0 disables.
      controlled_diffusion: ``None`` detects whether the controls enter the diffusion
        (`ControlQuadraticGame.has_controlled_diffusion`); ``False`` skips the ``D``
        columns, ``True`` always includes them.
      dtype: ``None`` (the game's dtype), ``"float32"`` or ``"float64"``.
      num_devices: devices of the ``"data"`` mesh the points are sharded over.
      chunk_size: Adam steps per jitted ``lax.scan`` chunk (progress between chunks).
      verbose: print progress.
      reference_every: every this many chunks, record relative errors against the Riccati
        reference (LQ games; 0 disables).
      checkpoint_every: every this many chunks, write the checkpoint (with a directory).
      divergence_factor: a loss above this multiple of the first loss counts as divergence.
      diagnostic_points: points of the residual and parabolicity diagnostics (0 skips them).
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
        for name, (kind, low, optional) in _FIELDS.items():
            _check_field(name, getattr(self, name), kind, low, optional)
        check_concept(self.concept)
        for name, allowed in (
            ("operator", OPERATOR_METHODS),
            ("sampler", SAMPLERS),
            ("dtype", (None, "float32", "float64")),
            ("head_form", (None, "expanded", "factored")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"SolverConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}."
                )
        refine = 1 if self.refine_steps is None else self.refine_steps
        adam = 1 if self.num_steps is None else self.num_steps
        if adam + refine < 1:
            raise ValueError(
                "SolverConfig.num_steps (Adam) and refine_steps (Gauss-Newton) must not both be "
                f"0, got {self.num_steps} and {self.refine_steps}. Fix: give one of them steps."
            )
        if self.points_per_time is not None and self.points_per_time > 1:
            per = self.points_per_time
            for name in ("batch_size", "refine_batch_size"):
                size = getattr(self, name)
                if size is not None and size % (per * self.num_devices):
                    raise ValueError(
                        f"SolverConfig.{name}={size} must be divisible by points_per_time * "
                        f"num_devices = {per * self.num_devices} (each sampled time carries "
                        "points_per_time states; the times are split over the devices)."
                    )
            if self.num_pool_points > 0:
                raise ValueError(
                    "SolverConfig.points_per_time > 1 cannot be combined with on_policy_fraction "
                    "or adaptive_fraction (pool points carry their own times). Fix: set "
                    "points_per_time=1 (or None)."
                )
        if self.batch_size % self.num_devices:
            raise ValueError(
                f"SolverConfig.batch_size={self.batch_size} must be divisible by "
                f"num_devices={self.num_devices} (points are split evenly over devices)."
            )
        if self.on_policy_fraction + self.adaptive_fraction > 1:
            raise ValueError(
                "SolverConfig.on_policy_fraction + adaptive_fraction must be <= 1, got "
                f"{self.on_policy_fraction} + {self.adaptive_fraction}."
            )

    def replace(self, **changes) -> SolverConfig:
        return dataclasses.replace(self, **changes)

    @property
    def num_pool_points(self) -> int:
        """Points per batch drawn from the on-policy / adaptive pool."""
        return int(round((self.on_policy_fraction + self.adaptive_fraction) * self.batch_size))

    def _settings(self) -> str:
        """Fields that change the optimisation path (checked when resuming; the step
        budgets may grow: the run then continues)."""
        skip = {
            "chunk_size", "verbose", "reference_every", "checkpoint_every", "diagnostic_points",
            "num_steps", "refine_steps",
        }  # fmt: skip
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return repr({k: v for k, v in fields.items() if k not in skip})


#: Type and lower bound of every numeric or boolean field: (kind, minimum, None allowed).
_FIELDS = {
    "num_steps": ("int", 0, True),
    "batch_size": ("int", 1, False),
    "learning_rate": ("positive", None, True),
    "final_learning_rate": ("nonnegative", None, False),
    "warmup_steps": ("int", 0, False),
    "grad_clip": ("positive", None, True),
    "refine_steps": ("int", 0, True),
    "refine_batch_size": ("int", 1, True),
    "cg_iterations": ("int", 1, True),
    "points_per_time": ("int", 1, True),
    "time_basis": ("int", 2, True),
    "width": ("int", 1, False),
    "depth": ("int", 1, False),
    "correction": ("bool", None, True),
    "state_scale": ("positive", None, False),
    "on_policy_fraction": ("fraction", None, False),
    "adaptive_fraction": ("fraction", None, False),
    "pool_size": ("int", 1, False),
    "num_probes": ("int", 1, False),
    "gradient_weight": ("nonnegative", None, True),
    "controlled_diffusion": ("bool", None, True),
    "num_devices": ("int", 1, False),
    "chunk_size": ("int", 1, False),
    "verbose": ("bool", None, False),
    "reference_every": ("int", 0, False),
    "checkpoint_every": ("int", 1, False),
    "divergence_factor": ("greater_than_one", None, False),
    "diagnostic_points": ("int", 0, False),
}


def _check_field(name: str, value, kind: str, low, optional: bool) -> None:
    """Type and range of one `SolverConfig` field (bools are bools, counts are ints, rates
    are finite)."""
    if value is None:
        if optional:
            return
        raise TypeError(f"SolverConfig.{name} must not be None. Fix: pass a value or omit it.")
    got = f"got {value!r} ({type(value).__name__})"
    if kind == "bool":
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"SolverConfig.{name} must be a bool, {got}. Fix: pass True or False.")
        return
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"SolverConfig.{name} must be a number, {got}.")
    if kind == "int":
        if not isinstance(value, int | np.integer):
            raise TypeError(
                f"SolverConfig.{name} must be an int >= {low}, {got}. Fix: pass a whole number."
            )
        if value < low:
            raise ValueError(f"SolverConfig.{name} must be >= {low}, {got}.")
        return
    if not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"SolverConfig.{name} must be a real number, {got}.")
    value = float(value)
    ok = {
        "positive": math.isfinite(value) and value > 0,
        "nonnegative": math.isfinite(value) and value >= 0,
        "fraction": 0 <= value <= 1,
        "greater_than_one": math.isfinite(value) and value > 1,
    }[kind]
    if not ok:
        bound = {
            "positive": "finite and > 0",
            "nonnegative": "finite and >= 0",
            "fraction": "in [0, 1]",
            "greater_than_one": "finite and > 1",
        }[kind]
        raise ValueError(f"SolverConfig.{name} must be {bound}, {got}.")

"""`SolverConfig` and its groups: the neural solver's settings (frozen, hashable, validated at
construction)."""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

from .._hamiltonian import check_concept
from .._operators import OPERATOR_METHODS
from .._sampling import SAMPLERS
from .._validation import check_settings

__all__ = [
    "AdamConfig",
    "GaussNewtonConfig",
    "LayoutConfig",
    "NetworkConfig",
    "OperatorConfig",
    "SamplerConfig",
    "SolverConfig",
    "TrainingDivergedWarning",
]


class TrainingDivergedWarning(RuntimeWarning):
    """Training stopped on a non-finite or exploding loss; the last good state is returned."""


class AccuracyWarning(RuntimeWarning):
    """A solution's residual-implied error indicator exceeds the documented threshold
    (`solution_diagnostics`), so its values and policies may be inaccurate."""


class _Settings:
    """Validation and `replace` of a frozen settings class: ``_checks`` gives each numeric or
    boolean field's ``(kind, minimum, None allowed)`` (`check_setting`), ``_choices`` each
    string field's allowed values."""

    _checks: ClassVar[dict] = {}
    _choices: ClassVar[dict] = {}

    def __post_init__(self):
        cls = type(self).__name__
        check_settings(self, self._checks)
        for name, allowed in self._choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{cls}.{name} must be one of {allowed}, got {getattr(self, name)!r}."
                )

    def replace(self, **changes):
        """A copy with ``changes`` (validated like the original)."""
        names = [f.name for f in dataclasses.fields(self)]
        for name in changes:
            if name not in names:
                raise TypeError(
                    f"{type(self).__name__} has no field {name!r}. Fix: use one of {names}."
                )
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class NetworkConfig(_Settings):
    """The value networks of each regime: a quadratic head in ``x`` with Chebyshev coefficients
    in time, plus an optional MLP correction (`stackjax._solver._networks`).

    Attributes:
      width: units per hidden layer of the MLP correction.
      depth: hidden layers of the MLP correction.
      time_basis: Chebyshev polynomials in time of the quadratic head (>= 2; ``None``: by
        dimension).
      correction: add the MLP correction (``None``: unless the game declares a quadratic
        value, ``game.quadratic_value``).
      head_form: how the head's Hessian is applied: ``"expanded"`` forms it once per sampled
        time, ``"factored"`` applies its basis matrices to all vectors of the batch as one
        matrix product (less memory traffic); same values either way (``None``: by dimension).
    """

    width: int = 32
    depth: int = 2
    time_basis: int | None = None
    correction: bool | None = None
    head_form: str | None = None

    _checks: ClassVar[dict] = {
        "width": ("int", 1, False),
        "depth": ("int", 1, False),
        "time_basis": ("int", 2, True),
        "correction": ("bool", None, True),
    }
    _choices: ClassVar[dict] = {"head_form": (None, "expanded", "factored")}


@dataclasses.dataclass(frozen=True)
class AdamConfig(_Settings):
    """The Adam phase: steps on fresh batches with linear warm-up and cosine decay.

    Attributes:
      steps: Adam steps (0: Gauss-Newton only; ``None``: by game, `resolve_config`).
      batch_size: collocation points per step (every player and regime at each point).
      learning_rate: peak learning rate after the warm-up. ``None``: ``1e-2 sqrt(3 / B)`` with
        ``B = (d + 1)(d + 2) / 2`` quadratic-head basis functions (Adam moves every
        coefficient by about the learning rate, so the output moves like ``sqrt(B)`` times it).
      final_learning_rate: learning rate at the end of the cosine decay (at most the peak).
      warmup_steps: steps of linear warm-up from 0.
      grad_clip: clip the global gradient norm to this value (``None``: no clipping).
    """

    steps: int | None = None
    batch_size: int = 256
    learning_rate: float | None = None
    final_learning_rate: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float | None = None

    _checks: ClassVar[dict] = {
        "steps": ("int", 0, True),
        "batch_size": ("int", 1, False),
        "learning_rate": ("positive", None, True),
        "final_learning_rate": ("nonnegative", None, False),
        "warmup_steps": ("int", 0, False),
        "grad_clip": ("positive", None, True),
    }


@dataclasses.dataclass(frozen=True)
class GaussNewtonConfig(_Settings):
    """The Levenberg-Marquardt (Gauss-Newton) refinement after the Adam steps; each iteration
    draws a fresh batch and solves for its step with matrix-free conjugate gradients.

    Attributes:
      steps: iterations (0 disables; ``None``: by game and dimension).
      batch_size: points per iteration (``None``: by dimension).
      cg_iterations: conjugate-gradient steps per iteration (``None``: by dimension).
    """

    steps: int | None = None
    batch_size: int | None = None
    cg_iterations: int | None = None

    _checks: ClassVar[dict] = {
        "steps": ("int", 0, True),
        "batch_size": ("int", 1, True),
        "cg_iterations": ("int", 1, True),
    }


@dataclasses.dataclass(frozen=True)
class SamplerConfig(_Settings):
    """The collocation points: times uniform on ``[0, T]``, states around ``x0``.

    Attributes:
      distribution: law of the states, ``"gaussian"``, ``"box"`` or ``"multiscale"``
        (`sample_points`).
      scale: standard deviation ``s`` of the states around ``x0`` (also the networks' input
        scale).
      on_policy_fraction: fraction of each Adam batch drawn from states visited by the current
        policies.
      adaptive_fraction: fraction of each Adam batch drawn where the residual is large.
      pool_size: points of the on-policy / adaptive pool, refreshed between chunks.
    """

    distribution: str = "gaussian"
    scale: float = 1.0
    on_policy_fraction: float = 0.0
    adaptive_fraction: float = 0.0
    pool_size: int = 2048

    _checks: ClassVar[dict] = {
        "scale": ("positive", None, False),
        "on_policy_fraction": ("fraction", None, False),
        "adaptive_fraction": ("fraction", None, False),
        "pool_size": ("int", 1, False),
    }
    _choices: ClassVar[dict] = {"distribution": SAMPLERS}

    def __post_init__(self):
        super().__post_init__()
        if self.on_policy_fraction + self.adaptive_fraction > 1:
            raise ValueError(
                "SamplerConfig.on_policy_fraction + adaptive_fraction must be <= 1, got "
                f"{self.on_policy_fraction} + {self.adaptive_fraction}. Fix: lower one of them."
            )


@dataclasses.dataclass(frozen=True)
class OperatorConfig(_Settings):
    """The residual rows: how the diffusion terms are evaluated and which rows enter the loss.

    Attributes:
      method: ``"hvp"`` (exact Hessian-vector products), ``"hessian"`` (``jax.hessian``,
        a reference) or ``"hutchinson"`` (unbiased sketch of the diffusion columns).
      num_probes: random probes of the ``"hutchinson"`` sketch.
      gradient_weight: weight ``w`` of the state-gradient rows: the loss becomes
        ``mean(R^2) + w mean(|s grad_x R|^2)`` (the exact solution has ``grad_x R = 0`` too, so
        each point gives ``d`` more equations per player and regime; 0 disables; ``None``: by
        dimension).
      controlled_diffusion: include the diffusion columns of ``D`` (``None``: when the
        controls enter the diffusion, `ControlQuadraticGame.has_controlled_diffusion`).
    """

    method: str = "hvp"
    num_probes: int = 8
    gradient_weight: float | None = None
    controlled_diffusion: bool | None = None

    _checks: ClassVar[dict] = {
        "num_probes": ("int", 1, False),
        "gradient_weight": ("nonnegative", None, True),
        "controlled_diffusion": ("bool", None, True),
    }
    _choices: ClassVar[dict] = {"method": OPERATOR_METHODS}


@dataclasses.dataclass(frozen=True)
class LayoutConfig(_Settings):
    """How the computation is laid out: precision, devices, points per sampled time.

    Attributes:
      dtype: ``None`` (the game's dtype), ``"float32"`` or ``"float64"``.
      num_devices: devices of the ``"data"`` mesh the points are split over.
      points_per_time: states sampled at each sampled time; the head's coefficients at a time
        are computed once and shared by its states (must divide both batch sizes times
        ``num_devices``; not combinable with the on-policy / adaptive pool; ``None``: by
        dimension).
    """

    dtype: str | None = None
    num_devices: int = 1
    points_per_time: int | None = None

    _checks: ClassVar[dict] = {
        "num_devices": ("int", 1, False),
        "points_per_time": ("int", 1, True),
    }
    _choices: ClassVar[dict] = {"dtype": (None, "float32", "float64")}


#: The groups of `SolverConfig`: field -> class.
_GROUPS = {
    "network": NetworkConfig,
    "adam": AdamConfig,
    "gauss_newton": GaussNewtonConfig,
    "sampler": SamplerConfig,
    "operator": OperatorConfig,
    "layout": LayoutConfig,
}


@dataclasses.dataclass(frozen=True)
class SolverConfig(_Settings):
    """Settings of the neural solver, in groups.

    Frozen and hashable: a static argument of the jitted pieces (changing a setting recompiles;
    changing the game's values does not). ``None`` fields take a game- and dimension-dependent
    default (`resolve_config`); ``Solution.config`` is resolved. Change one setting with
    ``config.replace(adam=config.adam.replace(steps=500))``. The settings of the loop around
    the jitted pieces (chunk size, progress, reference checks, checkpoints, diagnostics) are
    arguments of `solve`.

    Attributes:
      concept: ``"stackelberg"`` or ``"nash"`` (zero-sum games are flagged on the game).
      network: `NetworkConfig`, the value networks.
      adam: `AdamConfig`, the Adam phase.
      gauss_newton: `GaussNewtonConfig`, the Gauss-Newton refinement.
      sampler: `SamplerConfig`, the collocation points.
      operator: `OperatorConfig`, the residual rows.
      layout: `LayoutConfig`, precision, devices and points per sampled time.
    """

    concept: str = "stackelberg"
    network: NetworkConfig = NetworkConfig()
    adam: AdamConfig = AdamConfig()
    gauss_newton: GaussNewtonConfig = GaussNewtonConfig()
    sampler: SamplerConfig = SamplerConfig()
    operator: OperatorConfig = OperatorConfig()
    layout: LayoutConfig = LayoutConfig()

    def __post_init__(self):
        for name, cls in _GROUPS.items():
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise TypeError(
                    f"SolverConfig.{name} must be of type {cls.__name__}, got {value!r} "
                    f"({type(value).__name__}). Fix: pass {name}=stackjax.{cls.__name__}(...)."
                )
        check_concept(self.concept)
        adam, refine, layout = self.adam, self.gauss_newton, self.layout
        if adam.steps == 0 and refine.steps == 0:
            raise ValueError(
                "AdamConfig.steps and GaussNewtonConfig.steps must not both be 0. Fix: give one "
                "of them steps (or None for the default)."
            )
        devices = layout.num_devices
        per = layout.points_per_time
        multiple = (per or 1) * devices
        sizes = (("AdamConfig", adam.batch_size), ("GaussNewtonConfig", refine.batch_size))
        for group, size in sizes:
            if size is not None and size % multiple:
                raise ValueError(
                    f"{group}.batch_size={size} must be divisible by "
                    f"LayoutConfig.points_per_time * num_devices = {multiple} (each sampled "
                    "time carries points_per_time states; the times are split evenly over the "
                    f"devices). Fix: use a multiple of {multiple}, e.g. "
                    f"{-(-size // multiple) * multiple}."
                )
        if per is not None and per > 1 and self.num_pool_points > 0:
            raise ValueError(
                "LayoutConfig.points_per_time > 1 cannot be combined with "
                "SamplerConfig.on_policy_fraction or adaptive_fraction (pool points carry "
                "their own times). Fix: set points_per_time=1 (or None)."
            )

    @property
    def num_pool_points(self) -> int:
        """Points per Adam batch drawn from the on-policy / adaptive pool."""
        fraction = self.sampler.on_policy_fraction + self.sampler.adaptive_fraction
        return int(round(fraction * self.adam.batch_size))

    def _settings(self) -> str:
        """The settings that change the optimisation path (checked when resuming; the step
        budgets may grow: the run then continues)."""
        settings = dataclasses.asdict(self)
        del settings["adam"]["steps"], settings["gauss_newton"]["steps"]
        return repr(settings)


# Flat keyword names of earlier versions -> where each setting lives now (for the error hint).
_LEGACY_NAMES = {
    "num_steps": "adam=AdamConfig(steps=...)",
    "batch_size": "adam=AdamConfig(batch_size=...)",
    "learning_rate": "adam=AdamConfig(learning_rate=...)",
    "final_learning_rate": "adam=AdamConfig(final_learning_rate=...)",
    "warmup_steps": "adam=AdamConfig(warmup_steps=...)",
    "grad_clip": "adam=AdamConfig(grad_clip=...)",
    "refine_steps": "gauss_newton=GaussNewtonConfig(steps=...)",
    "refine_batch_size": "gauss_newton=GaussNewtonConfig(batch_size=...)",
    "cg_iterations": "gauss_newton=GaussNewtonConfig(cg_iterations=...)",
    "width": "network=NetworkConfig(width=...)",
    "depth": "network=NetworkConfig(depth=...)",
    "time_basis": "network=NetworkConfig(time_basis=...)",
    "correction": "network=NetworkConfig(correction=...)",
    "head_form": "network=NetworkConfig(head_form=...)",
    "state_scale": "sampler=SamplerConfig(scale=...)",
    "on_policy_fraction": "sampler=SamplerConfig(on_policy_fraction=...)",
    "adaptive_fraction": "sampler=SamplerConfig(adaptive_fraction=...)",
    "pool_size": "sampler=SamplerConfig(pool_size=...)",
    "num_probes": "operator=OperatorConfig(num_probes=...)",
    "gradient_weight": "operator=OperatorConfig(gradient_weight=...)",
    "controlled_diffusion": "operator=OperatorConfig(controlled_diffusion=...)",
    "dtype": "layout=LayoutConfig(dtype=...)",
    "num_devices": "layout=LayoutConfig(num_devices=...)",
    "points_per_time": "layout=LayoutConfig(points_per_time=...)",
    "chunk_size": "solve(..., chunk_size=...)",
    "verbose": "solve(..., verbose=...)",
    "reference_every": "solve(..., reference_every=...)",
    "checkpoint_every": "solve(..., checkpoint_every=...)",
    "diagnostic_points": "solve(..., diagnostic_points=...)",
}
_generated_init = SolverConfig.__init__


@functools.wraps(_generated_init)
def _init_with_hint(self, *args, **kwargs):
    old = [name for name in kwargs if name in _LEGACY_NAMES]
    if old:
        moves = "; ".join(f"{name} -> {_LEGACY_NAMES[name]}" for name in old)
        raise TypeError(
            f"SolverConfig got the flat setting(s) {old}; settings are grouped now. Fix: {moves} "
            "(e.g. SolverConfig(adam=AdamConfig(steps=500)))."
        )
    _generated_init(self, *args, **kwargs)


SolverConfig.__init__ = _init_with_hint

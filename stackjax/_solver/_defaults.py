"""Every game- and dimension-dependent default of the solver, in one table (`resolve_config`).

The measurements behind each entry are in docs/solver.md (section "Accuracy").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._config import SolverConfig

__all__ = [
    "cast_game",
    "default_learning_rate",
    "detect_controlled",
    "float_dtype",
    "head_vectors_per_time",
    "is_concrete",
    "refine_iterations",
    "resolve_config",
    "uses_correction",
]

#: From this state dimension on: Gauss-Newton only, the state-gradient rows, fewer time
#: polynomials and smaller Gauss-Newton batches (column "d >= 20" of `resolve_config`).
HIGH_DIMENSION = 20
#: From this dimension on games without the MLP correction add the state-gradient rows and
#: group states by time: one row per point leaves fewer than 4 equations per unknown.
LQ_GRADIENT_ROWS_DIMENSION = 5
#: From this dimension on the quadratic head is applied in factored form (when a sampled time
#: carries at most d / 2 vectors): the per-time [2, d, d] arrays outgrow the caches.
FACTORED_HEAD_DIMENSION = 150

#: The table of `resolve_config`: (group, field) -> (d < 20 quadratic, d < 20 with MLP,
#: d >= 20 quadratic, d >= 20 with MLP).
DEFAULTS = {
    ("adam", "steps"): (0, 2000, 0, 0),
    ("gauss_newton", "steps"): (20, 50, 30, 50),
    ("gauss_newton", "batch_size"): (512, 512, 256, 256),
    ("gauss_newton", "cg_iterations"): (40, 40, 20, 20),
    ("network", "time_basis"): (8, 8, 3, 3),
}
#: States per sampled time with the state-gradient rows.
GROUPED_POINTS_PER_TIME = 8


def default_learning_rate(state_dim: int) -> float:
    """Peak Adam learning rate ``1e-2 sqrt(3 / B)`` with ``B = (d + 1)(d + 2) / 2`` quadratic-head
    coefficients (`AdamConfig.learning_rate`)."""
    return 1e-2 * float(np.sqrt(3.0 / ((state_dim + 1) * (state_dim + 2) / 2)))


def is_concrete(tree) -> bool:
    """Whether no leaf of ``tree`` is a tracer."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def uses_correction(game, config: SolverConfig) -> bool:
    """Whether the value networks carry the MLP correction (`NetworkConfig.correction`)."""
    if config.network.correction is not None:
        return bool(config.network.correction)
    return not bool(getattr(game, "quadratic_value", False))


def detect_controlled(game, config: SolverConfig) -> bool:
    """Whether the controls enter the diffusion (static; `OperatorConfig.controlled_diffusion`)."""
    if config.operator.controlled_diffusion is not None:
        return bool(config.operator.controlled_diffusion)
    flag = getattr(game, "has_controlled_diffusion", True)
    return flag if isinstance(flag, bool) else True


def float_dtype(game, config: SolverConfig):
    """The solver's float dtype: ``config.layout.dtype`` or the game's."""
    dtype = config.layout.dtype
    if dtype is None:
        return game.initial_state.dtype
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "LayoutConfig.dtype='float64' needs jax.config.update('jax_enable_x64', True)."
        )
    return jnp.dtype(dtype)


def cast_game(game, dtype):
    """``game`` with its floating-point array leaves cast to ``dtype``."""

    def cast(leaf):
        if isinstance(leaf, jax.Array | np.ndarray) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.astype(dtype)
        return leaf

    return jax.tree.map(cast, game)


def resolve_config(game, config: SolverConfig | None = None) -> SolverConfig:
    """``config`` with every ``None`` field replaced by its value for ``game``.

    ===============================  ==========================  ==========================
    field                            ``d < 20``                  ``d >= 20``
    ===============================  ==========================  ==========================
    ``adam.steps``                   0 (2000 with MLP)           0 (Gauss-Newton only)
    ``gauss_newton.steps``           20 (50 with MLP)            30 (50 with MLP)
    ``gauss_newton.batch_size``      512                         256
    ``gauss_newton.cg_iterations``   40                          20
    ``network.time_basis``           8                           3
    ``operator.gradient_weight``     1 from d = 5 (0 with MLP)   1
    ``layout.points_per_time``       8 with gradient rows        8 (1 with an on-policy or
                                                                 adaptive pool)
    ``network.head_form``            ``"expanded"``              ``"factored"`` from d = 150
                                                                 with at most ``d / 2``
                                                                 vectors per time
    ``adam.learning_rate``           ``1e-2 sqrt(3 / B)``, ``B = (d + 1)(d + 2) / 2``
    ===============================  ==========================  ==========================

    "with MLP": the MLP correction (`uses_correction`: by default for games whose
    ``quadratic_value`` flag is not set). A default Gauss-Newton batch that does not split
    evenly over ``layout.num_devices`` is rounded up to a multiple. `solve` and
    `make_train_step` resolve their config first; ``Solution.config`` is the resolved one.
    """
    if config is not None and not isinstance(config, SolverConfig):
        raise TypeError(
            f"`config` must be a SolverConfig or None, got {type(config).__name__}. Fix: pass "
            "stackjax.SolverConfig(...)."
        )
    config = SolverConfig() if config is None else config
    d = game.state_dim
    high = d >= HIGH_DIMENSION
    correction = uses_correction(game, config)
    column = 2 * high + correction
    changes = {}  # (group, field) -> value

    def default(group, name, value):
        if getattr(getattr(config, group), name) is None:
            changes[group, name] = value

    default("network", "correction", correction)
    default("adam", "learning_rate", default_learning_rate(d))
    for (group, name), values in DEFAULTS.items():
        default(group, name, values[column])
    rows = high or (not correction and d >= LQ_GRADIENT_ROWS_DIMENSION)
    default("operator", "gradient_weight", 1.0 if rows else 0.0)
    batch = changes.get(("gauss_newton", "batch_size"), config.gauss_newton.batch_size)
    per = GROUPED_POINTS_PER_TIME * config.layout.num_devices
    group = (
        rows
        and config.num_pool_points == 0
        and config.adam.batch_size % per == 0
        and batch % per == 0
    )
    default("layout", "points_per_time", GROUPED_POINTS_PER_TIME if group else 1)
    multiple = changes.get(("layout", "points_per_time"), config.layout.points_per_time)
    multiple *= config.layout.num_devices
    if ("gauss_newton", "batch_size") in changes and batch % multiple:  # e.g. 3 devices
        changes["gauss_newton", "batch_size"] = -(-batch // multiple) * multiple
    if config.network.head_form is None:
        resolved = _with_changes(config, changes)
        vectors = head_vectors_per_time(game, resolved, detect_controlled(game, resolved))
        factored = d >= FACTORED_HEAD_DIMENSION and 2 * vectors <= d
        changes["network", "head_form"] = "factored" if factored else "expanded"
    return _with_changes(config, changes)


def _with_changes(config: SolverConfig, changes: dict) -> SolverConfig:
    """``config`` with ``changes`` ((group, field) -> value) applied to its groups."""
    if not changes:
        return config
    groups = {}
    for (group, name), value in changes.items():
        groups.setdefault(group, {})[name] = value
    return config.replace(
        **{group: getattr(config, group).replace(**fields) for group, fields in groups.items()}
    )


def head_vectors_per_time(game, config: SolverConfig, controlled: bool) -> int:
    """Vectors the quadratic head's Hessian is applied to per sampled time (`head_form`).

    ``points_per_time * (1 + r)``: each state ``z`` (the value's gradient) and its ``r``
    diffusion directions (``n`` noise columns, or ``num_probes`` sketched ones with the
    ``"hutchinson"`` operator; times ``1 + k1 + k2`` with a controlled diffusion).
    """
    operator = config.operator
    r = operator.num_probes if operator.method == "hutchinson" else game.noise_dim
    if controlled:
        r *= 1 + game.leader_dim + game.follower_dim
    return int(config.layout.points_per_time or 1) * (1 + int(r))


def refine_iterations(game, config: SolverConfig) -> int:
    """Gauss-Newton iterations `solve` runs for ``game`` (resolves ``GaussNewtonConfig.steps``)."""
    return int(resolve_config(game, config).gauss_newton.steps)

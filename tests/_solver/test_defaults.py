"""`resolve_config`'s table of defaults by game and dimension."""

import math

import jax
import pytest

from stackjax import (
    AdamConfig,
    GaussNewtonConfig,
    LayoutConfig,
    NetworkConfig,
    OperatorConfig,
    SamplerConfig,
    SolverConfig,
    examples,
    resolve_config,
)
from stackjax._solver._step import learning_rate


def _peak_rate(d):
    """``1e-2 sqrt(3 / B)``, ``B = (d + 1)(d + 2) / 2`` quadratic-head coefficients."""
    return 1e-2 * math.sqrt(6 / ((d + 1) * (d + 2)))


def _lq_defaults(d, *, steps, batch, cg, basis, weight, per):
    """The resolved config of an LQ game (no MLP correction) of dimension ``d``."""
    return SolverConfig(
        network=NetworkConfig(time_basis=basis, correction=False, head_form="expanded"),
        adam=AdamConfig(steps=0, learning_rate=_peak_rate(d)),
        gauss_newton=GaussNewtonConfig(steps=steps, batch_size=batch, cg_iterations=cg),
        operator=OperatorConfig(gradient_weight=weight),
        layout=LayoutConfig(points_per_time=per),
    )


@pytest.mark.parametrize(
    "make_game, expected",
    [
        # d < 5: Gauss-Newton only, plain residual rows, one state per time.
        (examples.scalar_game,
         _lq_defaults(1, steps=20, batch=512, cg=40, basis=8, weight=0.0, per=1)),
        (lambda: examples.random_game(jax.random.key(0), 4, 1),
         _lq_defaults(4, steps=20, batch=512, cg=40, basis=8, weight=0.0, per=1)),
        # 5 <= d < 20: the state-gradient rows, 8 states per time (256 and 512 divide by 8).
        (lambda: examples.random_game(jax.random.key(0), 10, 1),
         _lq_defaults(10, steps=20, batch=512, cg=40, basis=8, weight=1.0, per=8)),
        # d >= 20: more, smaller Gauss-Newton iterations and 3 Chebyshev polynomials.
        (lambda: examples.random_game(jax.random.key(0), 20, 1),
         _lq_defaults(20, steps=30, batch=256, cg=20, basis=3, weight=1.0, per=8)),
    ],
)  # fmt: skip
def test_resolved_defaults_of_lq_games(make_game, expected):
    """`resolve_config` fills every ``None`` field from the table in `_defaults` (the peak
    learning rate included) and keeps the rest at the constructor defaults."""
    game = make_game()
    resolved = resolve_config(game, SolverConfig())
    assert resolved == expected
    assert resolve_config(game) == resolved and resolve_config(game, resolved) == resolved
    d = game.state_dim
    assert learning_rate(SolverConfig(), d) == pytest.approx(_peak_rate(d))  # unresolved
    explicit = SolverConfig(adam=AdamConfig(learning_rate=3e-3))
    assert resolve_config(game, explicit).adam.learning_rate == 3e-3


def test_resolved_defaults_with_the_mlp_correction():
    resolved = resolve_config(examples.cole_hopf_game(d=10))
    assert resolved == SolverConfig(
        network=NetworkConfig(time_basis=8, correction=True, head_form="expanded"),
        adam=AdamConfig(steps=2000, learning_rate=_peak_rate(10)),
        gauss_newton=GaussNewtonConfig(steps=50, batch_size=512, cg_iterations=40),
        operator=OperatorConfig(gradient_weight=0.0),
        layout=LayoutConfig(points_per_time=1),
    )


def test_head_form_explicit_fields_and_devices(tiny):
    """The head is factored from d = 150 when a time carries at most d / 2 vectors; explicit
    fields are kept; the default Gauss-Newton batch is rounded up to split over the devices;
    sizes that do not divide are named."""
    low = resolve_config(examples.random_game(jax.random.key(0), 10, 1))
    high = resolve_config(examples.random_game(jax.random.key(0), 20, 1))
    mlp = resolve_config(examples.cole_hopf_game(d=10))
    assert {low.network.head_form, high.network.head_form, mlp.network.head_form} == {"expanded"}
    wide = examples.random_game(jax.random.key(0), 200, 1, noise_dim=8)  # 8 (1 + 8) = 72
    assert resolve_config(wide, SolverConfig()).network.head_form == "factored"
    dense = examples.random_game(jax.random.key(0), 200, 1, noise_dim=24)  # 8 (1 + 24) = 200
    assert resolve_config(dense, SolverConfig()).network.head_form == "expanded"
    sketch = SolverConfig(operator=OperatorConfig(method="hutchinson", num_probes=2))  # 24
    assert resolve_config(dense, sketch).network.head_form == "factored"
    explicit = SolverConfig(
        adam=AdamConfig(steps=7),
        network=NetworkConfig(time_basis=6, head_form="expanded"),
        layout=LayoutConfig(points_per_time=2),
    )
    kept = resolve_config(examples.random_game(jax.random.key(0), 20, 1), explicit)
    assert (kept.adam.steps, kept.network.time_basis, kept.layout.points_per_time) == (7, 6, 2)
    assert resolve_config(wide, explicit).network.head_form == "expanded"
    assert resolve_config(examples.random_game(jax.random.key(0), 20, 1), kept) == kept
    # Three devices: 256 / (8 * 3) does not divide, so one state per time and 512 -> 513.
    three = SolverConfig(adam=AdamConfig(batch_size=255), layout=LayoutConfig(num_devices=3))
    split = resolve_config(examples.random_game(jax.random.key(0), 10, 1), three)
    assert (split.layout.points_per_time, split.gauss_newton.batch_size) == (1, 513)
    with pytest.raises(ValueError, match="GaussNewtonConfig.batch_size"):
        tiny.replace(
            adam=AdamConfig(batch_size=12),
            gauss_newton=GaussNewtonConfig(batch_size=16),
            layout=LayoutConfig(points_per_time=3),
        )
    with pytest.raises(ValueError, match="points_per_time"):
        tiny.replace(
            layout=LayoutConfig(points_per_time=4), sampler=SamplerConfig(on_policy_fraction=0.5)
        )

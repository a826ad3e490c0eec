"""`SolverConfig` and its groups: resolved defaults, hashing, validation, resume settings."""

import dataclasses
import math

import jax
import jax.numpy as jnp
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

GROUPS = (NetworkConfig, AdamConfig, GaussNewtonConfig, SamplerConfig, OperatorConfig, LayoutConfig)


def _lq_defaults(d, *, steps, batch, cg, basis, weight, per):
    """The resolved config of an LQ game (no MLP correction) of dimension ``d``."""
    return SolverConfig(
        network=NetworkConfig(time_basis=basis, correction=False, head_form="expanded"),
        adam=AdamConfig(steps=0),
        gauss_newton=GaussNewtonConfig(steps=steps, batch_size=batch, cg_iterations=cg),
        operator=OperatorConfig(gradient_weight=weight),
        layout=LayoutConfig(points_per_time=per),
    )


@pytest.mark.parametrize(
    "make_game, expected",
    [
        # d = 1 < 5: Gauss-Newton only, plain residual rows, one state per time.
        (examples.scalar_game,
         _lq_defaults(1, steps=20, batch=512, cg=40, basis=8, weight=0.0, per=1)),
        # 5 <= d < 20: the state-gradient rows, 8 states per time (256 and 512 divide by 8).
        (lambda: examples.random_game(jax.random.key(0), 10, 1),
         _lq_defaults(10, steps=20, batch=512, cg=40, basis=8, weight=1.0, per=8)),
        # d >= 20: more, smaller Gauss-Newton iterations and 3 Chebyshev polynomials.
        (lambda: examples.random_game(jax.random.key(0), 50, 1),
         _lq_defaults(50, steps=30, batch=256, cg=20, basis=3, weight=1.0, per=8)),
    ],
)  # fmt: skip
def test_resolved_defaults_of_lq_games(make_game, expected):
    """`resolve_config` fills every ``None`` field from the table in `_defaults` and keeps the
    rest at the constructor defaults; the peak learning rate is ``1e-2 sqrt(3 / B)`` with
    ``B = (d + 1)(d + 2) / 2``."""
    game = make_game()
    resolved = resolve_config(game, SolverConfig())
    assert resolved == expected
    assert resolve_config(game) == resolved and resolve_config(game, resolved) == resolved
    d = game.state_dim
    assert learning_rate(resolved, d) == pytest.approx(1e-2 * math.sqrt(6 / ((d + 1) * (d + 2))))
    assert learning_rate(resolved.replace(adam=AdamConfig(learning_rate=3e-3)), d) == 3e-3


def test_resolved_defaults_with_the_mlp_correction():
    resolved = resolve_config(examples.cole_hopf_game(d=10))
    assert resolved == SolverConfig(
        network=NetworkConfig(time_basis=8, correction=True, head_form="expanded"),
        adam=AdamConfig(steps=2000),
        gauss_newton=GaussNewtonConfig(steps=50, batch_size=512, cg_iterations=40),
        operator=OperatorConfig(gradient_weight=0.0),
        layout=LayoutConfig(points_per_time=1),
    )


def test_configs_are_hashable_static_arguments():
    """Equal configs hash alike, so a jitted function with a config as static argument
    compiles once per distinct setting."""
    for cls in (*GROUPS, SolverConfig):
        assert hash(cls()) == hash(cls()) and cls() == cls()
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls().__setattr__(dataclasses.fields(cls)[0].name, None)
    assert len({AdamConfig(), AdamConfig(), AdamConfig(steps=3)}) == 2
    traces = []

    def scaled(x, config, adam):
        traces.append((config, adam))
        return x * config.layout.num_devices * adam.batch_size

    scaled = jax.jit(scaled, static_argnums=(1, 2))
    x = jnp.ones(())
    assert float(scaled(x, SolverConfig(), AdamConfig(batch_size=4))) == 4.0
    assert float(scaled(x, SolverConfig(), AdamConfig(batch_size=4))) == 4.0
    assert len(traces) == 1
    assert float(scaled(x, SolverConfig(), AdamConfig(batch_size=8))) == 8.0
    two = SolverConfig(layout=LayoutConfig(num_devices=2))
    assert float(scaled(x, two, AdamConfig(batch_size=8))) == 16.0
    assert len(traces) == 3


def test_resume_settings_ignore_the_step_budgets():
    """`SolverConfig._settings` (compared when resuming a checkpoint) leaves out the Adam and
    Gauss-Newton step counts, and nothing else."""
    config = SolverConfig(adam=AdamConfig(steps=10), gauss_newton=GaussNewtonConfig(steps=2))
    longer = config.replace(adam=AdamConfig(steps=50), gauss_newton=GaussNewtonConfig(steps=9))
    assert config._settings() == longer._settings()
    for other in (
        config.replace(adam=AdamConfig(steps=10, batch_size=128)),
        config.replace(gauss_newton=GaussNewtonConfig(steps=2, cg_iterations=5)),
        config.replace(sampler=SamplerConfig(scale=2.0)),
        config.replace(concept="nash"),
    ):
        assert other._settings() != config._settings()


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: SolverConfig(adam={"steps": 1}), TypeError, r"pass adam=stackjax.AdamConfig\("),
        (lambda: SolverConfig(network=AdamConfig()), TypeError, "SolverConfig.network"),
        (lambda: SolverConfig(layout=None), TypeError, "LayoutConfig"),
        (lambda: AdamConfig().replace(num_steps=3), TypeError, "num_steps"),
        (lambda: SolverConfig().replace(chunk_size=3), TypeError, "chunk_size"),
        (lambda: AdamConfig(steps=-1), ValueError, r"AdamConfig.steps must be >= 0"),
        (lambda: AdamConfig(steps=2.5), TypeError, r"AdamConfig.steps .*whole number"),
        (lambda: OperatorConfig(gradient_weight=-1.0), ValueError, "OperatorConfig.gradient_weight"),
        (lambda: OperatorConfig(gradient_weight=float("nan")), ValueError, "gradient_weight"),
        (lambda: OperatorConfig(method="laplace"), ValueError, "OperatorConfig.method"),
        (lambda: NetworkConfig(head_form="dense"), ValueError, "NetworkConfig.head_form"),
        (lambda: SolverConfig(adam=AdamConfig(steps=0), gauss_newton=GaussNewtonConfig(steps=0)),
         ValueError, "GaussNewtonConfig.steps"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_field(make, error, match):
    with pytest.raises(error, match=match):
        make()

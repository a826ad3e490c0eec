"""`SolverConfig` and its groups: hashing, validation, resume settings (defaults: test_defaults)."""

import dataclasses

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
)

GROUPS = (NetworkConfig, AdamConfig, GaussNewtonConfig, SamplerConfig, OperatorConfig, LayoutConfig)


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
        # Flat names of earlier versions say where the setting lives now.
        (lambda: SolverConfig(num_steps=500), TypeError, r"num_steps -> adam=AdamConfig\(steps"),
        (lambda: SolverConfig(refine_steps=5, chunk_size=9), TypeError,
         r"refine_steps -> gauss_newton=.*chunk_size -> solve\(\.\.\., chunk_size"),
        # Every batch splits evenly over the devices (with one state per time too).
        (lambda: SolverConfig(gauss_newton=GaussNewtonConfig(batch_size=100),
                              layout=LayoutConfig(num_devices=8)),
         ValueError, r"GaussNewtonConfig.batch_size=100 .* = 8 .*e.g. 104"),
        (lambda: SolverConfig(adam=AdamConfig(batch_size=10), layout=LayoutConfig(num_devices=4)),
         ValueError, r"AdamConfig.batch_size=10 .*e.g. 12"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_field(make, error, match):
    with pytest.raises(error, match=match):
        make()

"""`resolve_config`'s table of defaults by game and dimension."""

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


def test_dimension_dependent_defaults_and_validation(tiny):
    """Defaults by game and dimension (`resolve_config`): LQ games are fitted by Gauss-Newton
    alone, with the state-gradient rows and grouped times from d = 5; from d = 20 also with
    3 Chebyshev polynomials and smaller batches; the MLP correction keeps Adam below d = 20.
    Explicit fields are kept; sizes that do not divide are named."""

    def summary(c):
        return (c.adam.steps, c.gauss_newton.steps, c.network.time_basis, c.layout.points_per_time)

    def refinement(c):
        return (c.gauss_newton.batch_size, c.gauss_newton.cg_iterations, c.operator.gradient_weight)

    high = resolve_config(examples.random_game(jax.random.key(0), 20, 1), SolverConfig())
    low = resolve_config(examples.random_game(jax.random.key(0), 10, 1), SolverConfig())
    assert summary(high) == (0, 30, 3, 8) and refinement(high) == (256, 20, 1.0)
    assert summary(low) == (0, 20, 8, 8) and refinement(low) == (512, 40, 1.0)
    small = resolve_config(examples.random_game(jax.random.key(0), 4, 1), SolverConfig())
    assert summary(small) == (0, 20, 8, 1) and small.operator.gradient_weight == 0.0
    mlp = resolve_config(examples.cole_hopf_game(d=10), SolverConfig())
    assert summary(mlp) == (2000, 50, 8, 1) and mlp.operator.gradient_weight == 0.0
    # Head form: factored from d = 150 when a time carries at most d / 2 vectors.
    assert (low.network.head_form, high.network.head_form, mlp.network.head_form) == (
        "expanded",
    ) * 3
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

"""`resolve_config`'s table of defaults by game and dimension; `SolverConfig` validation."""

import jax
import pytest

from stackjax import SolverConfig, examples, resolve_config


def test_dimension_dependent_defaults_and_validation(tiny):
    """Defaults by game and dimension (`resolve_config`): LQ games are fitted by Gauss-Newton
    alone, with the state-gradient rows and grouped times from d = 5; from d = 20 also with
    3 Chebyshev polynomials and smaller batches; the MLP correction keeps Adam below d = 20.
    Explicit fields are kept; sizes that do not divide are named."""
    high = resolve_config(examples.random_game(jax.random.key(0), 20, 1), SolverConfig())
    low = resolve_config(examples.random_game(jax.random.key(0), 10, 1), SolverConfig())
    assert (high.num_steps, high.refine_steps, high.time_basis, high.points_per_time) == (
        0, 30, 3, 8,
    )  # fmt: skip
    assert (high.refine_batch_size, high.cg_iterations, high.gradient_weight) == (256, 20, 1.0)
    assert (low.num_steps, low.refine_steps, low.time_basis, low.points_per_time) == (
        0, 20, 8, 8,
    )  # fmt: skip
    assert (low.refine_batch_size, low.cg_iterations, low.gradient_weight) == (512, 40, 1.0)
    small = resolve_config(examples.random_game(jax.random.key(0), 4, 1), SolverConfig())
    assert (small.num_steps, small.refine_steps, small.gradient_weight, small.points_per_time) == (
        0, 20, 0.0, 1,
    )  # fmt: skip
    mlp = resolve_config(examples.cole_hopf_game(d=10), SolverConfig())
    assert (mlp.num_steps, mlp.refine_steps, mlp.gradient_weight, mlp.points_per_time) == (
        2000, 50, 0.0, 1,
    )  # fmt: skip
    # Head form: factored from d = 150 when a time carries at most d / 2 vectors.
    assert (low.head_form, high.head_form, mlp.head_form) == ("expanded",) * 3
    wide = examples.random_game(jax.random.key(0), 200, 1, noise_dim=8)  # 8 (1 + 8) = 72
    assert resolve_config(wide, SolverConfig()).head_form == "factored"
    dense = examples.random_game(jax.random.key(0), 200, 1, noise_dim=24)  # 8 (1 + 24) = 200
    assert resolve_config(dense, SolverConfig()).head_form == "expanded"
    sketch = SolverConfig(operator="hutchinson", num_probes=2)  # 8 (1 + 2) = 24
    assert resolve_config(dense, sketch).head_form == "factored"
    explicit = SolverConfig(num_steps=7, time_basis=6, points_per_time=2, head_form="expanded")
    kept = resolve_config(examples.random_game(jax.random.key(0), 20, 1), explicit)
    assert (kept.num_steps, kept.time_basis, kept.points_per_time) == (7, 6, 2)
    assert resolve_config(wide, explicit).head_form == "expanded"
    assert resolve_config(examples.random_game(jax.random.key(0), 20, 1), kept) == kept
    with pytest.raises(ValueError, match="refine_batch_size"):
        tiny.replace(points_per_time=3, batch_size=12, refine_batch_size=16)
    with pytest.raises(ValueError, match="points_per_time"):
        tiny.replace(points_per_time=4, on_policy_fraction=0.5)


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(gradient_weight=-1.0), "gradient_weight"),
        (dict(gradient_weight=float("nan")), "gradient_weight"),
        (dict(num_steps=-1), "num_steps"),
        (dict(num_steps=0, refine_steps=0), "refine_steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(operator="laplace"), "operator"),
        (dict(head_form="dense"), "head_form"),
    ],
)
def test_bad_solver_config_names_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        SolverConfig(**changes)

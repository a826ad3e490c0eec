"""The guarded Adam loop: divergence stops training, keeps the last good state, and reports a
result code."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax import (
    AdamConfig,
    GaussNewtonConfig,
    LayoutConfig,
    SolverConfig,
    TrainingDivergedWarning,
    examples,
    make_game,
    make_train_step,
    solve,
)
from stackjax._solver._loop import DIVERGENCE_FACTOR


@pytest.mark.slow
def test_divergence_stops_with_message_and_finite_state(tiny, quiet):
    game = examples.cross_term_game()
    config = tiny.replace(
        adam=AdamConfig(steps=40, batch_size=32, learning_rate=1e8, warmup_steps=0),
        layout=LayoutConfig(dtype="float32"),
    )
    named = r"diverged at step \d+: .*(leader|follower) regime \d"
    with pytest.warns(TrainingDivergedWarning, match=named):
        solution = solve(game, jax.random.key(0), config, **quiet)
    assert solution.diverged and bool(solution.diagnostics["diverged"])
    message = solution.message  # the cause comes before the suggested fix
    assert 0 <= message.find("likely cause") < message.find("Fix: lower AdamConfig.learning_rate")
    chex.assert_tree_all_finite(solution.state.params)
    assert int(solution.state.step) < config.adam.steps
    assert np.all(np.isfinite(solution.history["loss"]))


@pytest.mark.slow
def test_divergence_returns_the_state_whose_loss_was_last_seen(tiny, quiet):
    """At learning rate 1e3 the loss explodes within a few steps; the returned state is the
    one before the exploding update: its own loss (evaluated independently by a train step at
    that state) is finite and within `DIVERGENCE_FACTOR` of the first loss."""
    game = examples.scalar_game()
    config = tiny.replace(
        adam=AdamConfig(steps=40, batch_size=32, learning_rate=1e3, warmup_steps=0),
        layout=LayoutConfig(dtype="float64"),
    )
    with pytest.warns(TrainingDivergedWarning, match="last good state"):
        solution = solve(game, jax.random.key(0), config, **quiet)
    assert int(solution.status.code) in (1, 3)
    assert "likely cause" in solution.message
    assert int(solution.state.step) == int(solution.status.step) - 1
    _, train_step = make_train_step(game, solution.config)
    _, metrics = jax.jit(train_step)(solution.state, jax.random.key(5))
    first = float(solution.history["loss"][0])
    assert np.isfinite(float(metrics["loss"]))
    assert float(metrics["loss"]) <= DIVERGENCE_FACTOR * first
    # The message is derived from the traced result code, the same under jit of the status.
    assert solution.message.startswith("stackjax.solve diverged at step")
    assert bool(solution.diverged)


@pytest.mark.slow
def test_non_finite_gauss_newton_loss_is_reported(quiet, tmp_path):
    """A game whose coefficients are NaN away from x0 (finite at x0, so it validates) makes
    the Gauss-Newton loss non-finite: result code 4, a warning, parameters unchanged; run again
    with the same checkpoint directory, it stops the same way."""
    lq = examples.scalar_game()

    def coefficients(x, i):
        coef = lq.coefficients(x, i)
        return coef.replace(f0=coef.f0 + jnp.sqrt(0.25 - x @ x))  # NaN for |x| > 0.5

    game = make_game(
        horizon=lq.T, generator=lq.Gamma, temperatures=lq.lam, initial_state=jnp.zeros(1),
        coefficients=coefficients, terminal_cost=lq.terminal_cost, quadratic_value=True,
    )  # fmt: skip
    config = SolverConfig(gauss_newton=GaussNewtonConfig(steps=2, batch_size=32, cg_iterations=2))
    init, _ = make_train_step(game, config)
    for _ in range(2):
        with pytest.warns(TrainingDivergedWarning, match="Gauss-Newton loss is non-finite"):
            solution = solve(game, jax.random.key(0), config, checkpoint_dir=tmp_path, **quiet)
        assert int(solution.status.code) == 4 and bool(solution.diverged)
    start = init(jax.random.split(jax.random.key(0), 5)[0])
    chex.assert_trees_all_close(solution.state.params, start.params)


def test_solve_validates_games_changed_after_construction():
    game = examples.scalar_game()
    with pytest.raises(ValueError, match="Gamma"):
        solve(game.replace(Gamma=-game.Gamma), jax.random.key(0))
    with pytest.raises(ValueError, match="lam"):
        solve(game.replace(lam=-game.lam), jax.random.key(0))
    with pytest.raises(TypeError, match="PRNG key"):
        solve(game, 0)

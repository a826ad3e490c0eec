"""The guarded Adam loop: divergence stops training, keeps the last good state, and reports a
result code."""

import chex
import jax
import numpy as np
import pytest

from stackjax import TrainingDivergedWarning, examples, solve


def test_divergence_stops_with_message_and_finite_state(tiny):
    game = examples.cross_term_game()
    config = tiny.replace(learning_rate=1e8, warmup_steps=0, dtype="float32", num_steps=40)
    named = r"diverged at step \d+: .*(leader|follower) regime \d"
    with pytest.warns(TrainingDivergedWarning, match=named):
        solution = solve(game, jax.random.key(0), config)
    assert solution.diverged and bool(solution.diagnostics["diverged"])
    chex.assert_tree_all_finite(solution.state.params)
    assert int(solution.state.step) < config.num_steps
    assert np.all(np.isfinite(solution.history["loss"]))

"""The Adam training step: pure, compiled once per game structure."""

import chex
import jax
import numpy as np
import pytest

from stackjax import examples, make_train_step, solve
from stackjax._solver._loop import run_chunk


@pytest.mark.slow
def test_train_step_compiles_once(tiny, quiet):
    game = examples.cross_term_game()
    init, train_step = make_train_step(game, tiny)
    state = init(jax.random.key(0))
    step = jax.jit(chex.assert_max_traces(train_step, n=1))
    other = game.replace(Q=1.1 * game.Q, lam=0.5 * game.lam)  # new values, same shapes
    for i, g in enumerate([game, game, other, game]):
        state, metrics = step(state, jax.random.fold_in(jax.random.key(1), i), g)
    chex.assert_tree_all_finite((state.params, metrics))
    assert int(state.step) == 4
    # `solve` reuses its compiled chunk when only the game's values change, and compiles it
    # once even when the last chunk is shorter (25 steps in chunks of 10: 10, 10, 5).
    config = tiny.replace(adam=tiny.adam.replace(steps=25, warmup_steps=7))  # a static config
    size = run_chunk._cache_size()
    one = solve(game, jax.random.key(2), config, **quiet)
    assert run_chunk._cache_size() == size + 1
    solve(other, jax.random.key(3), config, **quiet)
    assert run_chunk._cache_size() == size + 1
    assert one.history["loss"].shape == (25,) and int(one.state.step) == 25
    # The skipped steps of the last chunk change nothing: same as one chunk of 25 steps.
    whole = solve(game, jax.random.key(2), config, **{**quiet, "chunk_size": 25})
    np.testing.assert_allclose(one.history["loss"], whole.history["loss"], rtol=1e-12)
    chex.assert_trees_all_close(one.state.params, whole.state.params, rtol=1e-12, atol=0)

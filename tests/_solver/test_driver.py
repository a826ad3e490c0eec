"""`solve` against the Riccati reference, under vmap and grad, sharded, resumed, with pools.

Small configurations (d = 2, m = 2) keep CI fast.
"""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax import (
    AdamConfig,
    GaussNewtonConfig,
    LayoutConfig,
    SamplerConfig,
    SolverConfig,
    TrainingDivergedWarning,
    evaluate,
    examples,
    riccati_reference,
    solve,
)

# float32 training (the library default without x64); errors are measured in float64.
ACCURACY = SolverConfig(
    adam=AdamConfig(steps=1000, batch_size=256),
    gauss_newton=GaussNewtonConfig(steps=4, batch_size=256, cg_iterations=30),
    layout=LayoutConfig(dtype="float32"),
)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::stackjax.AccuracyWarning")  # errors ~1e-3: it may warn
@pytest.mark.long_loops
@pytest.mark.parametrize(
    "name, concept",
    [("cross_term", "stackelberg"), ("cross_term", "nash"), ("zero_sum", "stackelberg")],
)
def test_trained_solution_matches_riccati(name, concept):
    game = {"cross_term": examples.cross_term_game, "zero_sum": examples.zero_sum_game}[name]()
    solution = solve(
        game, jax.random.key(0), ACCURACY.replace(concept=concept), verbose=False,
        diagnostic_points=64,
    )  # fmt: skip
    reference = riccati_reference(game, concept=concept)
    err = evaluate(solution, reference, jax.random.key(1), num_points=2048)
    assert not solution.diverged
    assert np.all(np.asarray(err["value"]) <= 2e-2), err["value"]
    assert np.all(np.asarray(err["mean_leader"]) <= 2e-2), err["mean_leader"]
    assert np.all(np.asarray(err["mean_follower"]) <= 2e-2), err["mean_follower"]
    # Pointwise at (0, x0) the reference can be small (0.3 for the Nash follower): absolute check.
    v0, v0_ref = solution.value(0.0, game.x0), reference.value(0.0, game.x0)
    assert np.all(np.abs(v0 - v0_ref) <= 2e-2 * np.max(np.abs(v0_ref))), (v0, v0_ref)
    # Zero-sum: V_2 = -V_1 exactly; general sum with uncontrolled noise: margin >= 0 (§5.4).
    v = solution.value(0.5, game.x0)
    if game.zero_sum:
        np.testing.assert_array_equal(v[1], -v[0])
    assert np.all(np.asarray(solution.diagnostics["parabolicity_min"]) >= 0)
    # The error indicators (no reference) are conservative, within a factor 50 of the error.
    predicted = max(
        np.max(solution.diagnostics[k]) for k in ("error_indicator", "error_indicator_x0")
    )
    actual = max(np.max(err["value"]), np.max(err["value_at_x0"]))
    assert actual <= predicted <= 50 * actual, (predicted, actual)
    assert solution.history["loss"].shape == (ACCURACY.adam.steps,)
    assert solution.history["loss"][-1] < 1e-2 * solution.history["loss"][0]


@pytest.mark.slow
def test_solve_under_vmap_matches_loop_and_grad_is_finite(tiny, quiet):
    game = examples.cross_term_game()
    config = tiny.replace(adam=tiny.adam.replace(steps=6))
    quiet["chunk_size"] = 6
    keys = jax.random.split(jax.random.key(0), 2)
    batched = jax.vmap(lambda k: solve(game, k, config, **quiet))(keys)
    # Batched and single programs may order their reductions differently (float64 round-off,
    # 1e-16, amplified by Adam's normalised steps to ~1e-8 after 6 steps); a semantic
    # difference would show at the loss's own scale.
    for i in [1]:
        single = solve(game, keys[i], config, **quiet)
        np.testing.assert_allclose(batched.history["loss"][i], single.history["loss"], rtol=1e-7)
        np.testing.assert_allclose(
            jax.tree.map(lambda a, i=i: a[i], batched).value(0.3, game.x0),
            single.value(0.3, game.x0),
            rtol=1e-7,
        )

    def value_at_x0(lam):
        return solve(game.replace(lam=lam), keys[0], config, **quiet).value(0.0, game.x0)[0, 0]

    grad = jax.grad(value_at_x0)(game.lam)
    assert grad.shape == (2,) and np.all(np.isfinite(grad)) and np.any(grad != 0)


@pytest.mark.slow
def test_grad_through_refinement_matches_finite_differences(tiny, quiet):
    """``jax.grad`` through Adam steps and Gauss-Newton refinement (unrolled CG) equals central
    finite differences of the whole `solve` (float64)."""
    game = examples.cross_term_game()
    config = tiny.replace(
        adam=tiny.adam.replace(steps=6),
        gauss_newton=GaussNewtonConfig(steps=2, batch_size=16, cg_iterations=3),
    )
    quiet["chunk_size"] = 6

    def value_at_x0(lam):
        solution = solve(game.replace(lam=lam), jax.random.key(0), config, **quiet)
        return solution.value(0.0, game.x0)[0, 0]

    lam = jnp.asarray(game.lam)
    grad = jax.grad(value_at_x0)(lam)
    eps = 1e-5  # one component keeps the test cheap (two extra forward solves)
    fd = (value_at_x0(lam.at[1].add(eps)) - value_at_x0(lam.at[1].add(-eps))) / (2 * eps)
    assert np.all(np.isfinite(grad)) and abs(float(fd)) > 1e-3
    np.testing.assert_allclose(grad[1], fd, rtol=1e-5)


@pytest.mark.slow
def test_sharded_and_unsharded_losses_agree(tiny, quiet):
    assert jax.device_count() >= 8, "conftest forces 8 CPU devices"
    game = examples.cross_term_game()
    config = tiny.replace(
        adam=tiny.adam.replace(batch_size=64, steps=10), layout=LayoutConfig(dtype="float32")
    )
    single = solve(game, jax.random.key(0), config, **quiet)
    sharded_config = config.replace(layout=config.layout.replace(num_devices=8))
    sharded = solve(game, jax.random.key(0), sharded_config, **quiet)
    np.testing.assert_allclose(sharded.history["loss"], single.history["loss"], rtol=2e-5)
    chex.assert_trees_all_close(sharded.state.params, single.state.params, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_resume_gives_the_same_parameters(tiny, quiet, tmp_path):
    game = examples.controlled_diffusion_game()
    config = tiny.replace(gauss_newton=GaussNewtonConfig(steps=2, batch_size=16, cg_iterations=3))
    one_run = solve(game, jax.random.key(0), config, **quiet)
    first = solve(
        game, jax.random.key(0), config, checkpoint_dir=tmp_path, stop_at_step=10, **quiet
    )
    assert int(first.state.step) == 10 and int(first.state.refine_step) == 0
    resumed = solve(game, jax.random.key(0), config, checkpoint_dir=tmp_path, **quiet)
    assert int(resumed.state.step) == 20 and int(resumed.state.refine_step) == 2
    chex.assert_trees_all_close(resumed.state.params, one_run.state.params, rtol=1e-12, atol=0)
    np.testing.assert_allclose(resumed.history["loss"], one_run.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(
        resumed.history["refine_loss"], one_run.history["refine_loss"], rtol=1e-12
    )
    with pytest.raises(ValueError, match="another key"):
        solve(game, jax.random.key(1), config, checkpoint_dir=tmp_path, **quiet)


@pytest.mark.slow
def test_on_policy_fraction_runs_and_solution_policy_simulates(tiny, quiet):
    """On-policy + adaptive pools in training; the solution's policy plugs into the simulator."""
    from stackjax import monte_carlo_cost

    game = examples.cross_term_game()
    pool = SamplerConfig(on_policy_fraction=0.25, adaptive_fraction=0.25, pool_size=32)
    config = tiny.replace(sampler=pool)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingDivergedWarning)
        solution = solve(game, jax.random.key(0), config, **quiet)
    assert solution.state.pool_x.shape == (32, game.state_dim)
    chex.assert_tree_all_finite(solution.state.pool_x)
    mean, stderr = monte_carlo_cost(
        game, solution.policy, jax.random.key(1), num_paths=16, num_steps=8
    )
    assert mean.shape == (2,) and np.all(np.isfinite(mean)) and np.all(stderr > 0)


@pytest.mark.slow
def test_progress_meter_receives_every_phase(tiny, quiet):
    """Progress lines go to the meter (Adam chunks, Gauss-Newton pieces with their rate), not
    to stdout; under vmap the meter is not called."""
    game = examples.scalar_game()
    config = tiny.replace(gauss_newton=GaussNewtonConfig(steps=8, batch_size=32, cg_iterations=2))
    quiet["verbose"] = True
    seen = []
    solve(game, jax.random.key(0), config, progress=lambda line, info: seen.append(info), **quiet)
    phases = [info["phase"] for info in seen]
    assert phases.count("adam") == 2  # 20 steps in chunks of 10
    assert phases.count("gauss_newton") == 4 and phases[-1] == "gauss_newton_done"
    assert all(info["rate"] > 0 for info in seen if "rate" in info)
    assert [info["step"] for info in seen if info["phase"] == "gauss_newton"] == [2, 4, 6, 8]
    seen.clear()
    adam_only = config.replace(gauss_newton=GaussNewtonConfig(steps=0))
    jax.vmap(lambda k: solve(game, k, adam_only, progress=seen.append, **quiet))(
        jax.random.split(jax.random.key(1), 2)
    )
    assert not seen

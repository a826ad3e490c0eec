"""Neural solver against the Riccati reference, plus purity, compile-once, sharding, resume and
divergence behaviour (issue 3). Small configurations (d = 2, m = 2) to keep CI fast."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax import evaluate, examples, riccati_reference
from stackjax._sampling import resample_by_residual, sample_points
from stackjax._train import (
    SolverConfig,
    TrainingDivergedWarning,
    _pcg,
    _run_chunk,
    make_train_step,
    solve,
)

# float32 training (the library default without x64); errors are measured in float64.
ACCURACY = SolverConfig(
    num_steps=1000, chunk_size=500, batch_size=256, refine_steps=4, refine_batch_size=256,
    cg_iterations=30, dtype="float32", verbose=False, diagnostic_points=64,
)  # fmt: skip
TINY = SolverConfig(
    num_steps=20, chunk_size=10, batch_size=32, refine_steps=0, diagnostic_points=0,
    verbose=False,
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, concept",
    [("cross_term", "stackelberg"), ("cross_term", "nash"), ("zero_sum", "stackelberg")],
)
def test_trained_solution_matches_riccati(name, concept):
    game = {"cross_term": examples.cross_term_game, "zero_sum": examples.zero_sum_game}[name]()
    solution = solve(game, jax.random.key(0), ACCURACY.replace(concept=concept))
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
    assert solution.history["loss"].shape == (ACCURACY.num_steps,)
    assert solution.history["loss"][-1] < 1e-2 * solution.history["loss"][0]


def test_train_step_compiles_once():
    game = examples.cross_term_game()
    init, train_step = make_train_step(game, TINY)
    state = init(jax.random.key(0))
    step = jax.jit(chex.assert_max_traces(train_step, n=1))
    other = game.replace(Q=1.1 * game.Q, lam=0.5 * game.lam)  # new values, same shapes
    for i, g in enumerate([game, game, other, game]):
        state, metrics = step(state, jax.random.fold_in(jax.random.key(1), i), g)
    chex.assert_tree_all_finite((state.params, metrics))
    assert int(state.step) == 4
    # `solve` reuses its compiled chunk when only the game's values change, and compiles it
    # once even when the last chunk is shorter (25 steps in chunks of 10: 10, 10, 5).
    config = TINY.replace(num_steps=25, warmup_steps=7)  # a static config of its own
    size = _run_chunk._cache_size()
    one = solve(game, jax.random.key(2), config)
    assert _run_chunk._cache_size() == size + 1
    solve(other, jax.random.key(3), config)
    assert _run_chunk._cache_size() == size + 1
    assert one.history["loss"].shape == (25,) and int(one.state.step) == 25
    # The skipped steps of the last chunk change nothing: same as one chunk of 25 steps.
    whole = solve(game, jax.random.key(2), config.replace(chunk_size=25))
    np.testing.assert_allclose(one.history["loss"], whole.history["loss"], rtol=1e-12)
    chex.assert_trees_all_close(one.state.params, whole.state.params, rtol=1e-12, atol=0)


def test_solve_under_vmap_matches_loop_and_grad_is_finite():
    game = examples.cross_term_game()
    config = TINY.replace(num_steps=6, chunk_size=6)
    keys = jax.random.split(jax.random.key(0), 2)
    batched = jax.vmap(lambda k: solve(game, k, config))(keys)
    for i in [1]:
        single = solve(game, keys[i], config)
        np.testing.assert_allclose(batched.history["loss"][i], single.history["loss"], rtol=1e-9)
        np.testing.assert_allclose(
            jax.tree.map(lambda a, i=i: a[i], batched).value(0.3, game.x0),
            single.value(0.3, game.x0),
            rtol=1e-9,
        )

    def value_at_x0(lam):
        return solve(game.replace(lam=lam), keys[0], config).value(0.0, game.x0)[0, 0]

    grad = jax.grad(value_at_x0)(game.lam)
    assert grad.shape == (2,) and np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_grad_through_refinement_matches_finite_differences():
    """``jax.grad`` through Adam steps and Gauss-Newton refinement (unrolled CG) equals central
    finite differences of the whole `solve` (float64)."""
    game = examples.cross_term_game()
    config = TINY.replace(
        num_steps=6, chunk_size=6, refine_steps=2, refine_batch_size=16, cg_iterations=3
    )

    def value_at_x0(lam):
        return solve(game.replace(lam=lam), jax.random.key(0), config).value(0.0, game.x0)[0, 0]

    lam = jnp.asarray(game.lam)
    grad = jax.grad(value_at_x0)(lam)
    eps = 1e-5  # one component keeps the test cheap (two extra forward solves)
    fd = (value_at_x0(lam.at[1].add(eps)) - value_at_x0(lam.at[1].add(-eps))) / (2 * eps)
    assert np.all(np.isfinite(grad)) and abs(float(fd)) > 1e-3
    np.testing.assert_allclose(grad[1], fd, rtol=1e-5)


def test_random_game_is_the_same_in_float32_and_float64():
    """The draw does not depend on the float mode: float32 arrays equal the float64 ones up to
    float32 rounding (relative 1e-6 of each array's largest entry)."""
    with jax.enable_x64(False):
        g32 = examples.random_game(jax.random.key(3), d=4, m=2, controlled_diffusion=True)
    g64 = examples.random_game(jax.random.key(3), d=4, m=2, controlled_diffusion=True)
    leaves32, leaves64 = jax.tree.leaves(g32), jax.tree.leaves(g64)
    assert len(leaves32) == len(leaves64)
    for a, b in zip(leaves32, leaves64, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if np.issubdtype(b.dtype, np.floating):
            assert a.dtype == np.float32 and b.dtype == np.float64
            scale = max(np.max(np.abs(b)), 1e-30)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * scale)


def test_sharded_and_unsharded_losses_agree():
    assert jax.device_count() >= 8, "conftest forces 8 CPU devices"
    game = examples.cross_term_game()
    config = TINY.replace(batch_size=64, dtype="float32", num_steps=10, chunk_size=10)
    single = solve(game, jax.random.key(0), config)
    sharded = solve(game, jax.random.key(0), config.replace(num_devices=8))
    np.testing.assert_allclose(sharded.history["loss"], single.history["loss"], rtol=2e-5)
    chex.assert_trees_all_close(sharded.state.params, single.state.params, rtol=1e-4, atol=1e-6)


def test_resume_gives_the_same_parameters(tmp_path):
    game = examples.controlled_diffusion_game()
    config = TINY.replace(refine_steps=2, refine_batch_size=16, cg_iterations=3)
    one_run = solve(game, jax.random.key(0), config)
    first = solve(game, jax.random.key(0), config, checkpoint_dir=tmp_path, stop_at_step=10)
    assert int(first.state.step) == 10 and int(first.state.refine_step) == 0
    resumed = solve(game, jax.random.key(0), config, checkpoint_dir=tmp_path)
    assert int(resumed.state.step) == 20 and int(resumed.state.refine_step) == 2
    chex.assert_trees_all_close(resumed.state.params, one_run.state.params, rtol=1e-12, atol=0)
    np.testing.assert_allclose(resumed.history["loss"], one_run.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(
        resumed.history["refine_loss"], one_run.history["refine_loss"], rtol=1e-12
    )
    with pytest.raises(ValueError, match="another key"):
        solve(game, jax.random.key(1), config, checkpoint_dir=tmp_path)


def test_divergence_stops_with_message_and_finite_state():
    game = examples.cross_term_game()
    config = TINY.replace(learning_rate=1e8, warmup_steps=0, dtype="float32", num_steps=40)
    named = r"diverged at step \d+: .*(leader|follower) regime \d"
    with pytest.warns(TrainingDivergedWarning, match=named):
        solution = solve(game, jax.random.key(0), config)
    assert solution.diverged and bool(solution.diagnostics["diverged"])
    chex.assert_tree_all_finite(solution.state.params)
    assert int(solution.state.step) < config.num_steps
    assert np.all(np.isfinite(solution.history["loss"]))


def test_multiscale_sampler_spreads_distances_uniformly():
    """``"multiscale"``: ``x = x0 + s u xi``, ``u ~ U[0, 1]``: per-coordinate variance s^2 / 3,
    ``E|x - x0|^4 = s^4 d (d + 2) / 5`` and distances / (s sqrt(d)) close to U[0, 1] (Kolmogorov
    distance; the Gaussian's all sit near 1), against the closed forms at N = 20000."""
    game = examples.random_game(jax.random.key(0), 50, 1)
    s, n, d = 0.7, 20_000, 50
    t, x = sample_points(jax.random.key(3), game, n, scale=s, distribution="multiscale")
    z = np.asarray(x, np.float64) - np.asarray(game.x0)
    assert t.shape == (n,) and x.shape == (n, d) and float(jnp.min(t)) >= 0
    np.testing.assert_allclose(np.mean(z**2), s**2 / 3, rtol=0.02)  # MC error ~0.5%
    r2 = np.sum(z**2, axis=1)
    np.testing.assert_allclose(np.mean(r2**2), s**4 * d * (d + 2) / 5, rtol=0.03)
    u = np.sort(np.sqrt(r2) / (s * np.sqrt(d)))
    ks = np.max(np.abs(np.clip(u, 0, 1) - (np.arange(n) + 0.5) / n))  # vs the U[0, 1] CDF
    assert ks < 0.06  # |xi| / sqrt(d) = 1 +- 0.1 smears the CDF near u = 1 (measured 0.035)
    _, g = sample_points(jax.random.key(3), game, n, scale=s, distribution="gaussian")
    rg = np.linalg.norm(np.asarray(g) - np.asarray(game.x0), axis=1) / (s * np.sqrt(d))
    assert np.mean(rg < 0.5) < 1e-3 and np.mean(u < 0.5) > 0.45


def test_residual_adaptive_resampling_follows_weights():
    t, x = sample_points(jax.random.key(0), examples.cross_term_game(), 8)
    size = jnp.zeros(8).at[3].set(1.0).at[5].set(3.0)
    t_new, _ = resample_by_residual(jax.random.key(1), t, x, size, 20_000, uniform_weight=0.2)
    picked = np.asarray(t_new)[:, None] == np.asarray(t)[None, :]
    freq = picked.mean(axis=0)
    expected = 0.8 * np.asarray(size) / 4.0 + 0.2 / 8
    assert np.all(np.abs(freq - expected) <= 4 * np.sqrt(expected * (1 - expected) / 20_000))


def test_on_policy_fraction_runs_and_solution_policy_simulates():
    """On-policy + adaptive pools in training; the solution's policy plugs into the simulator."""
    from stackjax import monte_carlo_cost

    game = examples.cross_term_game()
    config = TINY.replace(on_policy_fraction=0.25, adaptive_fraction=0.25, pool_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingDivergedWarning)
        solution = solve(game, jax.random.key(0), config)
    assert solution.state.pool_x.shape == (32, game.state_dim)
    chex.assert_tree_all_finite(solution.state.pool_x)
    mean, stderr = monte_carlo_cost(
        game, solution.policy, jax.random.key(1), num_paths=16, num_steps=8
    )
    assert mean.shape == (2,) and np.all(np.isfinite(mean)) and np.all(stderr > 0)


def _random_params(like, scale=0.05):
    """Random parameters shaped like ``like`` (so the networks' Hessians are not zero)."""
    leaves, tree = jax.tree.flatten(like)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    return jax.tree.unflatten(
        tree, [scale * jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves)]
    )


@pytest.mark.parametrize(
    "make_game, correction",
    [
        (lambda: examples.random_game(jax.random.key(3), 5, 2), False),
        (lambda: examples.random_game(jax.random.key(4), 4, 2, controlled_diffusion=True), True),
        (lambda: examples.cole_hopf_game(d=3), True),  # no terminal_hessian: autodiff psi
    ],
)
def test_structured_products_equal_jax_hessian_residual(make_game, correction):
    """The default operator applies the quadratic head's (and G's) exact Hessian as a matrix
    product and HVPs only the rest; its residuals equal the jax.hessian path to 1e-10."""
    game = make_game()
    base = TINY.replace(correction=correction, dtype="float64")
    init, _ = make_train_step(game, base)
    state = init(jax.random.key(0))
    params = _random_params(state.params)
    t, x = sample_points(jax.random.key(2), game, 16, scale=1.0, distribution="gaussian")
    pkeys = jax.random.split(jax.random.key(5), 16)
    residuals = {}
    for op in ("hvp", "hessian"):
        init_op, _ = make_train_step(game, base.replace(operator=op))
        residuals[op] = jax.jit(init_op.batch_residuals)(params, state.norm, game, t, x, pkeys)
    assert float(jnp.max(jnp.abs(residuals["hessian"]))) > 1e-2  # a non-trivial comparison
    np.testing.assert_allclose(residuals["hvp"], residuals["hessian"], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "make_game, changes",
    [
        (lambda: examples.random_game(jax.random.key(6), 3, 2), {}),
        # MLP correction through the jax.hessian reference, states grouped by time:
        (lambda: examples.random_game(jax.random.key(7), 4, 3), dict(
            correction=True, operator="hessian", points_per_time=2)),
        # zero-sum (one network per regime, V_2 = -V_1), factored head, sketched diffusion:
        (examples.zero_sum_game, dict(head_form="factored", operator="hutchinson")),
    ],
)  # fmt: skip
def test_residual_state_gradients_match_finite_differences(make_game, changes):
    """The gradient-enhanced loss's rows s grad_x R equal central differences of R (float64);
    they are assembled per regime (own V_t + H differentiated, coupling from the values'
    gradients), so this checks that assembly against the whole residual."""
    game = make_game()
    config = TINY.replace(dtype="float64", gradient_weight=1.0, **changes)
    init, _ = make_train_step(game, config)
    state = init(jax.random.key(0))
    params = _random_params(state.params)
    d = game.state_dim
    t, x = sample_points(jax.random.key(2), game, 4, scale=1.0, distribution="gaussian")
    pkeys = jax.random.split(jax.random.key(5), 4)
    if config.points_per_time == 2:  # two times, two states each
        t, x, pkeys = t[:2], x.reshape(2, 2, d), pkeys.reshape(2, 2)
    residuals = jax.jit(init.batch_residuals)  # compiled once for the 7 evaluations below
    r, jac = jax.jit(init.batch_residual_gradients)(params, state.norm, game, t, x, pkeys)
    np.testing.assert_allclose(r, residuals(params, state.norm, game, t, x, pkeys), rtol=1e-12)
    h = 1e-5
    for a in range(d):
        e = jnp.zeros(x.shape).at[..., a].set(h)
        up = residuals(params, state.norm, game, t, x + e, pkeys)
        down = residuals(params, state.norm, game, t, x - e, pkeys)
        fd = (up - down) / (2 * h) * float(state.norm.state_scale)
        np.testing.assert_allclose(jac[..., a], fd, rtol=1e-6, atol=1e-7)
    assert float(jnp.max(jnp.abs(jac))) > 1e-2
    # The loss is mean(R^2) + w mean(|s grad R|^2) over the same points.
    _, vec = jax.jit(init.residual_vector)(params, state.norm, game, t, x, pkeys)
    expected = jnp.mean(r**2) + jnp.sum(jac**2) / r.size
    np.testing.assert_allclose(jnp.sum(vec**2) / r.size, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "make_game, correction",
    [
        (lambda: examples.random_game(jax.random.key(3), 5, 2), False),
        (lambda: examples.random_game(jax.random.key(4), 4, 2, controlled_diffusion=True), True),
        (lambda: examples.cole_hopf_game(d=3), True),
    ],
)
def test_time_grouped_points_equal_per_point_residuals(make_game, correction):
    """States sharing a time (``points_per_time``) reuse the head's coefficients and Hessian;
    residuals and state-gradient rows equal the per-point evaluation (and the jax.hessian
    reference) at the same points to 1e-10 in float64."""
    game = make_game()
    config = TINY.replace(correction=correction, dtype="float64", points_per_time=4)
    init, _ = make_train_step(game, config)
    state = init(jax.random.key(0))
    params = _random_params(state.params)
    t, x, pkeys = init.sample_batch(jax.random.key(2), jax.random.key(5), game, 16)
    assert t.shape == (4,) and x.shape == (4, 4, game.state_dim)
    flat_t = jnp.repeat(t, 4)
    flat_x, flat_keys = x.reshape(16, -1), pkeys.reshape(16)
    grouped = jax.jit(init.batch_residuals)(params, state.norm, game, t, x, pkeys)
    reference, _ = make_train_step(game, config.replace(operator="hessian", points_per_time=1))
    flat = jax.jit(reference.batch_residuals)(params, state.norm, game, flat_t, flat_x, flat_keys)
    assert float(jnp.max(jnp.abs(flat))) > 1e-2
    np.testing.assert_allclose(grouped, flat, rtol=1e-10, atol=1e-10)
    per_point, _ = make_train_step(game, config.replace(points_per_time=1))
    r, jac = jax.jit(init.batch_residual_gradients)(params, state.norm, game, t, x, pkeys)
    r_ref, jac_ref = jax.jit(per_point.batch_residual_gradients)(
        params, state.norm, game, flat_t, flat_x, flat_keys
    )
    np.testing.assert_allclose(r, r_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jac, jac_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "make_game, correction, per",
    [
        (
            lambda: examples.random_game(jax.random.key(4), 3, 2, controlled_diffusion=True),
            False,
            4,
        ),
        (lambda: examples.zero_sum_game(), False, 1),
    ],
)
def test_factored_head_equals_expanded(make_game, correction, per):
    """The factored head form (``sum_k T_k (B_k v)``, no per-time Hessian) gives the expanded
    form's residuals and state-gradient rows (grouped, 4 states per time, and flat points) and
    its Gauss-Newton products (grouped) to 1e-10 (float64)."""
    game = make_game()
    config = TINY.replace(
        correction=correction, dtype="float64", points_per_time=per, gradient_weight=1.0
    )
    init, _ = make_train_step(game, config.replace(head_form="expanded"))
    fact, _ = make_train_step(game, config.replace(head_form="factored"))
    state = init(jax.random.key(0))
    params = _random_params(state.params)
    t, x, pkeys = init.sample_batch(jax.random.key(2), jax.random.key(5), game, 16)
    if per == 1:
        t, x, pkeys = t[:, 0] if t.ndim > 1 else t, x.reshape(16, -1), pkeys.reshape(16)

    def gauss_newton_product(i, p, v):
        f = lambda q: i.residual_vector(q, state.norm, game, t, x, pkeys)[1]  # noqa: E731
        _, lin = jax.linearize(f, p)
        return jax.linear_transpose(lin, p)(lin(v))[0]

    r_e, jac_e = jax.jit(init.batch_residual_gradients)(params, state.norm, game, t, x, pkeys)
    r_f, jac_f = jax.jit(fact.batch_residual_gradients)(params, state.norm, game, t, x, pkeys)
    assert float(jnp.max(jnp.abs(r_e))) > 1e-2 and float(jnp.max(jnp.abs(jac_e))) > 1e-2
    np.testing.assert_allclose(r_f, r_e, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jac_f, jac_e, rtol=1e-10, atol=1e-10)
    # J^T J v covers both the linearisation (forward mode, Gauss-Newton) and its transpose
    # (reverse mode: Adam's jax.grad is the same transpose of the same linearisation).
    if per == 1:  # the flat zero-sum case checks the residual rows only (keeps CI short)
        return
    v = _random_params(params, scale=1.0)
    mv_e, mv_f = (jax.jit(lambda p, u, i=i: gauss_newton_product(i, p, u))(params, v)
                  for i in (init, fact))  # fmt: skip
    for a, b in zip(jax.tree.leaves(mv_f), jax.tree.leaves(mv_e), strict=True):
        scale = max(float(jnp.max(jnp.abs(b))), 1e-30)
        np.testing.assert_allclose(a / scale, b / scale, rtol=0, atol=1e-10)


def test_dimension_dependent_defaults_and_validation():
    """Defaults by game and dimension (`resolve_config`): LQ games are fitted by Gauss-Newton
    alone, with the state-gradient rows and grouped times from d = 5; from d = 20 also with
    3 Chebyshev polynomials and smaller batches; the MLP correction keeps Adam below d = 20.
    Explicit fields are kept; sizes that do not divide are named."""
    from stackjax._train import resolve_config

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
        TINY.replace(points_per_time=3, batch_size=12, refine_batch_size=16)
    with pytest.raises(ValueError, match="points_per_time"):
        TINY.replace(points_per_time=4, on_policy_fraction=0.5)


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


@pytest.mark.parametrize("unroll", [1, 4, 12])
def test_pcg_solves_spd_system_for_any_unroll(unroll):
    """Jacobi-preconditioned CG on a 12 x 12 SPD system (condition number 10) reaches numpy's
    solve in 12 steps (exact arithmetic: n steps; float32 here); unrolling the loop (benchmarks' FLOP count) changes
    nothing but round-off."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    a = (q * np.linspace(1.0, 10.0, 12)) @ q.T  # condition number 10
    b = rng.normal(size=12)
    matvec = lambda v: jnp.asarray(a, jnp.float32) @ v  # noqa: E731
    x = _pcg(matvec, jnp.asarray(b, jnp.float32), jnp.asarray(np.diag(a), jnp.float32), 12, unroll)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)

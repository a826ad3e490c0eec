"""Bad input across the continuous-time API: each case raises the stated exception and names
the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax as sj
from stackjax import rl

LQ = sj.examples.scalar_game()
SYM = {k: np.asarray(v) for k, v in LQ.to_dict().items() if k != "zero_sum"}
REF = sj.riccati_reference(LQ, num_times=5)


def lq(**changes):
    return sj.make_lq_game(**{**SYM, **changes})


def functional(**changes):
    good = dict(
        horizon=1.0,
        generator=LQ.Gamma,
        temperatures=[0.1, 0.1],
        initial_state=[0.0],
        coefficients=LQ.coefficients,
        terminal_cost=LQ.terminal_cost,
    )
    return sj.make_game(**{**good, **changes})


ENV = rl.sde_env(LQ, 0.25)
COEF = LQ.coefficients(LQ.x0, 0)


def _act(key, n, obs):
    return jax.random.normal(key, (1,)), jnp.zeros(1)


# Every public function taking a key, as a function of that key (small sizes).
# fmt: off
KEYED = [
    ("evaluate", lambda k: sj.evaluate(REF, REF, k, num_points=8)["value"]),
    ("simulate", lambda k: sj.simulate(LQ, REF.policy, k, num_paths=2, num_steps=4).costs),
    ("monte_carlo_cost", lambda k: sj.monte_carlo_cost(LQ, REF.policy, k, num_paths=2, num_steps=4)),
    ("sample_points", lambda k: sj.sample_points(LQ, k, 4)),
    ("sample_on_policy", lambda k: sj.sample_on_policy(LQ, REF.policy, k, 4)),
    ("resample_by_residual", lambda k: sj.resample_by_residual(jnp.arange(4.0), jnp.zeros((4, 1)), jnp.ones(4), k, 2)),
    ("sketch_diffusion", lambda k: sj.sketch_diffusion(COEF, k, 2).c),
    ("parabolicity_margin", lambda k: sj.parabolicity_margin(COEF, jnp.zeros((2, 1)), sj.hessian_products(jnp.ones((2, 1, 1)), COEF), LQ.lam, k)),
    ("make_train_step", lambda k: sj.make_train_step(LQ)[0](k).params),
    ("random_game", lambda k: sj.examples.random_game(k, 2, 1).A),
    ("rl.rollout", lambda k: rl.rollout(ENV, _act, k, 2).states),
    ("rl.fit_policy_values", lambda k: rl.fit_policy_values(ENV, REF.policy, k, num_episodes=2, time_basis=1)),
]
# fmt: on


KEY = "`key` must be a JAX PRNG key"

# fmt: off
CASES = [
    # make_lq_game: symbols, shapes, values, types
    ("make_lq_game", lambda: lq(T=-1.0), ValueError, "`T` must be > 0"),
    ("make_lq_game", lambda: lq(T=0.0), ValueError, "`T` must be > 0"),
    ("make_lq_game", lambda: lq(T=np.nan), ValueError, "`T` has non-finite entries"),
    ("make_lq_game", lambda: lq(T=[1.0, 2.0]), ValueError, "`T` must be a scalar"),
    ("make_lq_game", lambda: lq(Gamma=[[0.0, 1.0], [1.0, -1.0]]), ValueError, "Gamma"),
    ("make_lq_game", lambda: lq(Gamma=[[-1.0, -1.0], [1.0, -1.0]]), ValueError, "Gamma"),
    ("make_lq_game", lambda: lq(Gamma=[[0.0]]), ValueError, r"`A` must have shape \[m, d, d\] = \(1, 1, 1\)"),
    ("make_lq_game", lambda: lq(Gamma=np.zeros((2, 3))), ValueError, "Gamma"),
    ("make_lq_game", lambda: lq(A=np.zeros((2, 1))), ValueError, r"`A` must have shape \[m, d, d\], got \(2, 1\)"),
    ("make_lq_game", lambda: lq(B1=np.zeros((2, 1))), ValueError, r"`B1` must have shape \[m, d, k\]"),
    ("make_lq_game", lambda: lq(B2=np.zeros((2, 1, 0))), ValueError, "`B2` has zero control columns"),
    ("make_lq_game", lambda: lq(R11=-SYM["R11"]), ValueError, "`R11`.*not positive definite"),
    ("make_lq_game", lambda: lq(R22=-SYM["R22"]), ValueError, "`R22` of the follower must be positive definite"),
    ("make_lq_game", lambda: lq(R11=SYM["R11"][0]), ValueError, r"`R11` must have shape \[2, m, k1, k1\]"),
    ("make_lq_game", lambda: lq(Q=SYM["Q"] * np.nan), ValueError, "`Q` has non-finite entries"),
    ("make_lq_game", lambda: lq(G=SYM["G"] + np.inf), ValueError, "`G` has non-finite entries"),
    ("make_lq_game", lambda: lq(lam=[-0.1, 0.1]), ValueError, "`lam` temperatures must be >= 0"),
    ("make_lq_game", lambda: lq(lam=[0.1]), ValueError, r"`lam` must have shape \[2\]"),
    ("make_lq_game", lambda: lq(x0=[0.0, 0.0]), ValueError, r"`x0` must have shape \[d\]"),
    ("make_lq_game", lambda: lq(C=np.zeros((2, 1, 2, 2))), ValueError, r"`C` must have shape \[m, n, d, d\]"),
    ("make_lq_game", lambda: lq(s=np.zeros((2, 3))), ValueError, r"`s` must have shape \[m, n, d\]"),
    ("make_lq_game", lambda: lq(q=np.zeros((1, 2, 1))), ValueError, r"`q` must have shape \[2, m, d\]"),
    ("make_lq_game", lambda: lq(g0=np.zeros((2,))), ValueError, r"`g0` must have shape \[2, m\]"),
    ("make_lq_game", lambda: sj.make_lq_game(**{k: v for k, v in SYM.items() if k != "A"}), ValueError, "`A` is required"),
    ("make_lq_game", lambda: sj.make_lq_game(**{k: v for k, v in SYM.items() if k != "lam"}), ValueError, "`lam` is required"),
    ("make_lq_game", lambda: lq(T="1.0"), TypeError, "`T` must be array-like of real numbers"),
    ("make_lq_game", lambda: lq(T=True), TypeError, "`T` must hold real numbers"),
    ("make_lq_game", lambda: lq(C="abc"), TypeError, "`C` must be array-like of real numbers"),
    ("make_lq_game", lambda: lq(zero_sum="no"), TypeError, "`zero_sum` must be a bool"),
    # make_game and GameBase
    ("make_game", lambda: functional(horizon=-1.0), ValueError, "horizon"),
    ("make_game", lambda: functional(horizon="1.0"), TypeError, "horizon"),
    ("make_game", lambda: functional(horizon=True), TypeError, "horizon"),
    ("make_game", lambda: functional(horizon=1j), TypeError, "horizon"),
    ("make_game", lambda: functional(generator=[[0.0, 1.0], [1.0, -1.0]]), ValueError, "generator"),
    ("make_game", lambda: functional(generator=[1.0]), ValueError, "generator"),
    ("make_game", lambda: functional(temperatures=[0.1]), ValueError, "temperatures"),
    ("make_game", lambda: functional(temperatures=[-0.1, 0.1]), ValueError, "temperatures"),
    ("make_game", lambda: functional(temperatures=[np.nan, 0.1]), ValueError, "temperatures"),
    ("make_game", lambda: functional(initial_state=[[0.0]]), ValueError, "initial_state"),
    ("make_game", lambda: functional(initial_state=[np.nan]), ValueError, "coefficients"),
    ("make_game", lambda: functional(coefficients=3), TypeError, "coefficients"),
    ("make_game", lambda: functional(terminal_cost=None), TypeError, "terminal_cost"),
    ("make_game", lambda: functional(zero_sum="no"), TypeError, "zero_sum"),
    ("make_game", lambda: functional(quadratic_value=1), TypeError, "quadratic_value"),
    ("make_game", lambda: functional(has_controlled_diffusion="yes"), TypeError, "has_controlled_diffusion"),
    ("make_game", lambda: functional(terminal_cost=lambda x, i: x[:1]), ValueError, "terminal_cost"),
    ("make_game", lambda: functional(coefficients=lambda x, i: LQ.coefficients(x, i).replace(B1=jnp.zeros((2, 1)))), ValueError, r"`coefficients\(x, i\)\.B1` must have shape"),
    ("make_game", lambda: functional(coefficients=lambda x, i: 1 / "x"), TypeError, "coefficients"),
    # SolverConfig and its groups: every field type- and range-checked, the cross-field checks
    ("AdamConfig", lambda: sj.AdamConfig(steps=10.7), TypeError, "AdamConfig.steps"),
    ("AdamConfig", lambda: sj.AdamConfig(steps=-1), ValueError, "AdamConfig.steps"),
    ("AdamConfig", lambda: sj.AdamConfig(steps=True), TypeError, "AdamConfig.steps"),
    ("AdamConfig", lambda: sj.AdamConfig(batch_size=0), ValueError, "AdamConfig.batch_size"),
    ("AdamConfig", lambda: sj.AdamConfig(learning_rate=0.0), ValueError, "AdamConfig.learning_rate"),
    ("AdamConfig", lambda: sj.AdamConfig(learning_rate=np.inf), ValueError, "AdamConfig.learning_rate"),
    ("AdamConfig", lambda: sj.AdamConfig(learning_rate="1e-3"), TypeError, "AdamConfig.learning_rate"),
    ("AdamConfig", lambda: sj.AdamConfig(final_learning_rate=-1.0), ValueError, "AdamConfig.final_learning_rate"),
    ("AdamConfig", lambda: sj.AdamConfig(warmup_steps=-1), ValueError, "AdamConfig.warmup_steps"),
    ("AdamConfig", lambda: sj.AdamConfig(grad_clip=-1.0), ValueError, "AdamConfig.grad_clip"),
    ("GaussNewtonConfig", lambda: sj.GaussNewtonConfig(steps=-2), ValueError, "GaussNewtonConfig.steps"),
    ("GaussNewtonConfig", lambda: sj.GaussNewtonConfig(batch_size=0), ValueError, "GaussNewtonConfig.batch_size"),
    ("GaussNewtonConfig", lambda: sj.GaussNewtonConfig(cg_iterations=0), ValueError, "GaussNewtonConfig.cg_iterations"),
    ("LayoutConfig", lambda: sj.LayoutConfig(points_per_time=0), ValueError, "LayoutConfig.points_per_time"),
    ("NetworkConfig", lambda: sj.NetworkConfig(time_basis=1), ValueError, "NetworkConfig.time_basis"),
    ("NetworkConfig", lambda: sj.NetworkConfig(width=0), ValueError, "NetworkConfig.width"),
    ("NetworkConfig", lambda: sj.NetworkConfig(depth=0), ValueError, "NetworkConfig.depth"),
    ("NetworkConfig", lambda: sj.NetworkConfig(correction="yes"), TypeError, "NetworkConfig.correction"),
    ("SamplerConfig", lambda: sj.SamplerConfig(scale=0.0), ValueError, "SamplerConfig.scale"),
    ("SamplerConfig", lambda: sj.SamplerConfig(on_policy_fraction=1.5), ValueError, "SamplerConfig.on_policy_fraction"),
    ("SamplerConfig", lambda: sj.SamplerConfig(adaptive_fraction=-0.1), ValueError, "SamplerConfig.adaptive_fraction"),
    ("SamplerConfig", lambda: sj.SamplerConfig(on_policy_fraction=0.6, adaptive_fraction=0.6), ValueError, "adaptive_fraction"),
    ("SamplerConfig", lambda: sj.SamplerConfig(pool_size=0), ValueError, "SamplerConfig.pool_size"),
    ("OperatorConfig", lambda: sj.OperatorConfig(num_probes=0), ValueError, "OperatorConfig.num_probes"),
    ("OperatorConfig", lambda: sj.OperatorConfig(gradient_weight=np.nan), ValueError, "OperatorConfig.gradient_weight"),
    ("OperatorConfig", lambda: sj.OperatorConfig(controlled_diffusion="no"), TypeError, "OperatorConfig.controlled_diffusion"),
    ("LayoutConfig", lambda: sj.LayoutConfig(num_devices=0), ValueError, "LayoutConfig.num_devices"),
    ("SolverConfig", lambda: sj.SolverConfig(concept="nash-ish"), ValueError, "concept"),
    ("OperatorConfig", lambda: sj.OperatorConfig(method="laplace"), ValueError, "OperatorConfig.method"),
    ("SamplerConfig", lambda: sj.SamplerConfig(distribution="sobol"), ValueError, "SamplerConfig.distribution"),
    ("LayoutConfig", lambda: sj.LayoutConfig(dtype="float16"), ValueError, "LayoutConfig.dtype"),
    ("NetworkConfig", lambda: sj.NetworkConfig(head_form="dense"), ValueError, "NetworkConfig.head_form"),
    ("SolverConfig", lambda: sj.SolverConfig(adam={"steps": 10}), TypeError, r"pass adam=stackjax.AdamConfig\("),
    ("SolverConfig", lambda: sj.SolverConfig(layout=sj.NetworkConfig()), TypeError, "SolverConfig.layout"),
    ("SolverConfig", lambda: sj.SolverConfig(adam=sj.AdamConfig(steps=0), gauss_newton=sj.GaussNewtonConfig(steps=0)), ValueError, "GaussNewtonConfig.steps"),
    ("SolverConfig", lambda: sj.SolverConfig(adam=sj.AdamConfig(batch_size=32), layout=sj.LayoutConfig(points_per_time=3)), ValueError, "AdamConfig.batch_size"),
    ("SolverConfig", lambda: sj.SolverConfig(layout=sj.LayoutConfig(points_per_time=4), sampler=sj.SamplerConfig(on_policy_fraction=0.5)), ValueError, "points_per_time"),
    ("SolverConfig", lambda: sj.SolverConfig(adam=sj.AdamConfig(batch_size=30), layout=sj.LayoutConfig(num_devices=4)), ValueError, "AdamConfig.batch_size"),
    ("SolverConfig", lambda: sj.SolverConfig().replace(num_steps=5), TypeError, "num_steps"),
    # solve: the loop's arguments, checked before anything is compiled
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), chunk_size=0), ValueError, "chunk_size"),
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), chunk_size=2.5), TypeError, "chunk_size"),
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), verbose="false"), TypeError, "verbose"),
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), reference_every=-1), ValueError, "reference_every"),
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), reference="riccati"), TypeError, "reference"),
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), checkpoint_every=0), ValueError, "checkpoint_every"),
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), diagnostic_points=-1), ValueError, "diagnostic_points"),
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), stop_at_step=-1), ValueError, "stop_at_step"),
    # solve: the game re-validated, keys, config type
    ("solve", lambda: sj.solve(LQ.replace(Gamma=-LQ.Gamma), jax.random.key(0)), ValueError, "`Gamma`"),
    ("solve", lambda: sj.solve(LQ.replace(lam=-LQ.lam), jax.random.key(0)), ValueError, "`lam` temperatures must be >= 0"),
    ("solve", lambda: sj.solve(LQ.replace(Q=LQ.Q * jnp.nan), jax.random.key(0)), ValueError, "`Q` has non-finite entries"),
    ("solve", lambda: sj.solve(LQ, 0), TypeError, KEY),
    ("solve", lambda: sj.solve(LQ, None), TypeError, KEY),
    ("solve", lambda: sj.solve(LQ, jnp.zeros(3, jnp.uint32)), TypeError, KEY),
    ("solve", lambda: sj.solve(LQ, jax.random.key(0), {"num_steps": 1}), TypeError, "config"),
    ("make_train_step", lambda: sj.make_train_step(LQ, {"adam": {"steps": 1}}), TypeError, "`config` must be a SolverConfig"),
    # samplers: counts are ints >= 1, scales and weights in range, pools of matching shapes
    ("sample_points", lambda: sj.sample_points(LQ, jax.random.key(0), -3), ValueError, "`num_points` must be >= 0"),
    ("sample_points", lambda: sj.sample_points(LQ, jax.random.key(0), 2.5), TypeError, "`num_points` must be an int >= 0"),
    ("sample_points", lambda: sj.sample_points(LQ, jax.random.key(0), 4, scale=-1.0), ValueError, "`scale` must be finite and > 0"),
    ("sample_on_policy", lambda: sj.sample_on_policy(LQ, REF.policy, jax.random.key(0), 0), ValueError, "`num_points` must be >= 1"),
    ("sample_on_policy", lambda: sj.sample_on_policy(LQ, REF.policy, jax.random.key(0), 4, num_steps=0), ValueError, "`num_steps` must be >= 1"),
    ("sample_on_policy", lambda: sj.sample_on_policy(LQ, REF.policy, jax.random.key(0), 4, spread=-0.1), ValueError, "`spread` must be finite and >= 0"),
    ("resample_by_residual", lambda: sj.resample_by_residual(jnp.arange(4.0), jnp.zeros((4, 1)), jnp.ones(4), jax.random.key(0), 0), ValueError, "`num_points` must be >= 1"),
    ("resample_by_residual", lambda: sj.resample_by_residual(jnp.arange(4.0), jnp.zeros((4, 1)), jnp.ones(4), jax.random.key(0), 2, uniform_weight=1.5), ValueError, r"`uniform_weight` must be in \[0, 1\]"),
    ("resample_by_residual", lambda: sj.resample_by_residual(jnp.arange(4.0), jnp.zeros((4, 1)), jnp.ones(4), jax.random.key(0), 2, uniform_weight=np.nan), ValueError, r"`uniform_weight` must be in \[0, 1\]"),
    ("resample_by_residual", lambda: sj.resample_by_residual(jnp.arange(4.0), jnp.zeros((4, 1)), jnp.ones(4), jax.random.key(0), 2, power=-1.0), ValueError, "`power` must be finite and >= 0"),
    ("resample_by_residual", lambda: sj.resample_by_residual(jnp.zeros((4, 1)), jnp.zeros((4, 1)), jnp.ones(4), jax.random.key(0), 2), ValueError, "`t` must have 1 dimension"),
    ("resample_by_residual", lambda: sj.resample_by_residual(jnp.arange(4.0), jnp.zeros((3, 1)), jnp.ones(4), jax.random.key(0), 2), ValueError, r"`x` must have shape \(4, '\*'\)"),
    ("resample_by_residual", lambda: sj.resample_by_residual(jnp.arange(4.0), jnp.zeros((4, 1)), jnp.ones(3), jax.random.key(0), 2), ValueError, r"`residual_size` must have shape \(4,\)"),
    ("resample_by_residual", lambda: sj.resample_by_residual(jnp.zeros(0), jnp.zeros((0, 1)), jnp.ones(0), jax.random.key(0), 2), ValueError, "`t` must hold at least one candidate"),
    # simulate and monte_carlo_cost: counts are ints >= 1
    ("simulate", lambda: sj.simulate(LQ, REF.policy, jax.random.key(0), num_paths=2.5, num_steps=4), TypeError, "`num_paths` must be an int >= 1"),
    ("simulate", lambda: sj.simulate(LQ, REF.policy, jax.random.key(0), num_paths=2, num_steps=0), ValueError, "`num_steps` must be >= 1"),
    ("simulate", lambda: sj.simulate(LQ, REF.policy, jax.random.key(0), num_paths="2", num_steps=4), TypeError, "`num_paths` must be an int >= 1"),
    ("simulate", lambda: sj.simulate(LQ, REF.policy, jax.random.key(0), num_paths=2, num_steps=4, regime0=0.5), TypeError, "`regime0` must be an int >= 0"),
    ("monte_carlo_cost", lambda: sj.monte_carlo_cost(LQ, REF.policy, jax.random.key(0), num_paths=2.5, num_steps=4), TypeError, "`num_paths` must be an int >= 2"),
    ("monte_carlo_cost", lambda: sj.monte_carlo_cost(LQ, REF.policy, jax.random.key(0), num_paths=1, num_steps=4), ValueError, "`num_paths` must be >= 2"),
    ("sketch_diffusion", lambda: sj.sketch_diffusion(COEF, jax.random.key(0), 0), ValueError, "`num_probes` must be >= 1"),
    ("monte_carlo_cost", lambda: sj.monte_carlo_cost(LQ, REF.policy, jax.random.key(0), num_paths=2, num_steps=1.5, richardson=True), TypeError, "`num_steps` must be an int >= 1"),
    # evaluate
    ("evaluate", lambda: sj.evaluate(REF, REF, jax.random.key(0), num_points=0), ValueError, "num_points"),
    ("evaluate", lambda: sj.evaluate(REF, REF, jax.random.key(0), num_points=2.5), ValueError, "num_points"),
    # keys: ints and None are refused naming `key` (legacy uint32 keys are accepted, below)
    *[(name, lambda call=call: call(0), TypeError, KEY) for name, call in KEYED],
    *[(name, lambda call=call: call(None), TypeError, KEY) for name, call in KEYED],
    ("rl.learn", lambda: rl.learn(ENV, 0), TypeError, KEY),
    ("rl.evaluate_policy", lambda: rl.evaluate_policy(ENV, REF.policy, 0), TypeError, KEY),
    ("rl.check_environment", lambda: rl.check_environment(ENV, 0), TypeError, KEY),
    # riccati reference
    ("riccati_reference", lambda: sj.riccati_reference(LQ, concept="nashh"), ValueError, "concept"),
    ("riccati_reference", lambda: sj.riccati_reference(LQ, num_times=2.5), TypeError, "`num_times` must be an int >= 2"),
    ("riccati_reference", lambda: sj.riccati_reference(LQ, num_times=1), ValueError, "`num_times` must be >= 2"),
    ("riccati_reference", lambda: sj.riccati_reference(LQ, max_steps=0), ValueError, "`max_steps` must be >= 1"),
    ("riccati_reference", lambda: sj.riccati_reference(LQ, rtol=-1e-6), ValueError, "`rtol` must be finite and > 0"),
    # examples
    ("make_example", lambda: sj.examples.make_example("nope"), ValueError, "`name` must be one of"),
]
# fmt: on


@pytest.mark.parametrize("name, call, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_argument(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("name, call", KEYED, ids=[c[0] for c in KEYED])
def test_legacy_keys_give_the_new_style_result(name, call):
    """A legacy uint32 key (``jax.random.PRNGKey(seed)``) gives the result of the new-style
    ``jax.random.key(seed)``."""
    legacy = jax.tree.leaves(call(jax.random.PRNGKey(3)))
    typed = jax.tree.leaves(call(jax.random.key(3)))
    assert len(legacy) == len(typed)
    for a, b in zip(legacy, typed):
        np.testing.assert_array_equal(a, b)


def test_the_tables_are_large():
    """This table and the discrete one together try at least 150 malformed inputs."""
    import pathlib

    other = pathlib.Path(__file__).parent / "discrete" / "test_bad_input.py"
    discrete = sum(line.startswith('    ("') for line in other.read_text().splitlines())
    assert len(CASES) >= 75 and len(CASES) + discrete >= 150

"""Monte Carlo simulator against the Riccati values and the chain's transition matrix (docs/math.md §9.5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

import stackjax as sj
from stackjax.examples import controlled_diffusion_game, cross_term_game, scalar_game, zero_sum_game


def loop_jit(fun):
    """``jax.jit`` at LLVM level 1: the suite compiles at level 0 (tests/conftest.py), which
    makes these many-step simulations several times slower to run."""
    return jax.jit(fun, compiler_options={"xla_backend_optimization_level": 1})


# (game, scheme, regime0, plain Euler visibly biased): both schemes, both starting regimes,
# controlled diffusion, zero sum. The controlled-diffusion game's Euler bias at N = 16 is below
# this test's resolution for the leader (mean z +0.30, standard error 0.13).
_CASES = {
    "scalar-sampled": (scalar_game, "sampled", 0, True),
    "cross-term-averaged": (cross_term_game, "averaged", 1, True),
    "controlled-diffusion-sampled": (controlled_diffusion_game, "sampled", 0, False),
    "zero-sum-averaged": (zero_sum_game, "averaged", 0, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_CASES))
def test_monte_carlo_cost_is_centred_on_the_value_with_richardson_and_biased_without(name):
    """Equilibrium play of the exact Riccati policy, S = 32 independent estimates of 1000 paths:
    the mean z-score ``(J_MC - V(0, x0)) / stderr`` of ``monte_carlo_cost(richardson=True)``
    (N = 16 and 32 Euler steps) is within 3 standard errors of 0 for both players, while plain
    Euler with N = 16 is more than 3 standard errors positive, so the check tells a biased
    simulator from an unbiased one."""
    make, scheme, regime0, biased = _CASES[name]
    game = make()
    sol = sj.riccati_reference(game, num_times=41)
    value = np.asarray(sol.value(0.0, game.x0)[:, regime0])
    seeds = jax.random.split(jax.random.key(11), 32)

    def z_scores(richardson):
        run = loop_jit(jax.vmap(lambda k: sj.monte_carlo_cost(
            game, sol.policy, k, regime0=regime0, num_paths=1000, num_steps=16, scheme=scheme,
            richardson=richardson,
        )))  # fmt: skip
        mean, stderr = (np.asarray(a) for a in run(seeds))
        z = (mean - value) / stderr  # [S, 2]
        pooled = stderr.mean(axis=0) / np.sqrt(len(seeds))  # of the 32 000-path mean
        return z.mean(axis=0), z.std(axis=0, ddof=1) / np.sqrt(len(seeds)), pooled

    centre, se, pooled = z_scores(True)
    assert np.all(np.abs(centre) < 3 * se), (name, centre, se)
    assert np.all(pooled < 0.01 * np.abs(value) + 0.01), (name, pooled, value)  # informative
    if not biased:
        return
    plain, se_plain, _ = z_scores(False)
    # Zero sum: the follower's cost is the leader's negated, so its bias is negative.
    bias_sign = np.array([1.0, -1.0]) if game.zero_sum else np.ones(2)
    assert np.all(bias_sign * plain > 3 * se_plain), (name, plain, se_plain)


@pytest.mark.slow
def test_regime_chain_matches_transition_matrix():
    """Empirical law of alpha_T against expm(Gamma T)[i0] (exponential clocks, split steps)."""
    game = scalar_game()
    sol = sj.riccati_reference(game, num_times=5)
    traj = loop_jit(
        lambda k: sj.simulate(game, sol.policy, k, regime0=0, num_paths=40_000, num_steps=20)
    )(jax.random.key(3))
    final = np.asarray(traj.regimes[:, -1])
    empirical = np.bincount(final, minlength=2) / final.size
    exact = expm(np.asarray(game.Gamma) * float(game.T))[0]
    se = np.sqrt(exact * (1 - exact) / final.size)
    assert np.all(np.abs(empirical - exact) < 4 * se), (empirical, exact)
    # Intermediate time as well (t = T / 2 is step 10 of 20).
    mid = np.asarray(traj.regimes[:, 10])
    exact_mid = expm(np.asarray(game.Gamma) * float(game.T) / 2)[0]
    emp_mid = np.bincount(mid, minlength=2) / mid.size
    assert np.all(np.abs(emp_mid - exact_mid) < 4 * np.sqrt(exact_mid * (1 - exact_mid) / mid.size))


@pytest.mark.slow
def test_simulate_shapes_and_reproducibility():
    game = cross_term_game()
    sol = sj.riccati_reference(game, num_times=5)
    run = jax.jit(lambda k: sj.simulate(game, sol.policy, k, num_paths=7, num_steps=11))
    a, b = run(jax.random.key(0)), run(jax.random.key(0))
    assert a.states.shape == (7, 12, 2) and a.regimes.shape == (7, 12) and a.costs.shape == (7, 2)
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_allclose(a.states[:, 0], jnp.broadcast_to(game.x0, (7, 2)))
    c = run(jax.random.key(1))
    assert not np.allclose(a.states[:, -1], c.states[:, -1])


def test_simulate_rejects_bad_arguments():
    game = scalar_game()
    sol = sj.riccati_reference(game, num_times=5)
    with pytest.raises(ValueError, match="scheme"):
        sj.simulate(game, sol.policy, jax.random.key(0), scheme="milstein")
    with pytest.raises(ValueError, match="x0"):
        sj.simulate(game, sol.policy, jax.random.key(0), x0=jnp.zeros(3))
    with pytest.raises(ValueError, match="regime0"):
        sj.simulate(game, sol.policy, jax.random.key(0), regime0=5)


@pytest.mark.slow
def test_evaluate_reports_errors_against_reference():
    """Stackelberg vs Nash in the cross-term game: `evaluate`'s relative L2 value error equals a
    direct numpy computation on the same points; a solution against itself has zero error."""
    game = cross_term_game()
    st = sj.riccati_reference(game, num_times=11)
    na = sj.riccati_reference(game, concept="nash", num_times=11)
    key = jax.random.key(9)
    same = sj.evaluate(st, st, key, num_points=64)
    np.testing.assert_allclose(same["value"], 0.0, atol=1e-15)
    errors = sj.evaluate(na, st, key, num_points=64)
    t, x = sj._evaluate.sample_evaluation_points(game, key, 64)
    v_na = np.asarray(jax.vmap(na.value)(t, x))
    v_st = np.asarray(jax.vmap(st.value)(t, x))
    direct = np.sqrt(((v_na - v_st) ** 2).sum(0) / (v_st**2).sum(0))
    np.testing.assert_allclose(errors["value"], direct, rtol=1e-12)
    assert float(errors["mean_leader"].min()) > 1e-3
    # At (0, x0): relative to |V_st(0, x0)| unless that is below a tenth of the RMS value.
    v0_na, v0_st = np.asarray(na.value(0.0, game.x0)), np.asarray(st.value(0.0, game.x0))
    scale = np.maximum(np.abs(v0_st), 0.1 * np.sqrt((v_st**2).mean(0)))
    np.testing.assert_allclose(errors["value_at_x0"], np.abs(v0_na - v0_st) / scale, rtol=1e-12)


class _Shifted:
    """A reference's values minus their value at ``(0, x0)``: ``V(0, x0) = 0`` exactly."""

    def __init__(self, base, offset):
        self.base, self.offset, self.game = base, offset, base.game

    def value(self, t, x):
        return self.base.value(t, x) - self.offset

    def policy(self, t, x):
        return self.base.policy(t, x)


def test_value_at_x0_is_finite_when_the_reference_vanishes_there():
    """A reference value that is 0 at (0, x0): the error there is measured against a tenth of
    the reference's RMS over the sample (the floor), not divided by zero."""
    game = scalar_game()
    st = sj.riccati_reference(game, num_times=11)
    zero_at_x0 = _Shifted(st, st.value(0.0, game.x0))
    key = jax.random.key(4)
    errors = sj.evaluate(st, zero_at_x0, key, num_points=64)
    t, x = sj._evaluate.sample_evaluation_points(game, key, 64)
    v_ref = np.asarray(jax.vmap(zero_at_x0.value)(t, x))
    expected = np.abs(np.asarray(st.value(0.0, game.x0))) / (0.1 * np.sqrt((v_ref**2).mean(0)))
    np.testing.assert_allclose(errors["value_at_x0"], expected, rtol=1e-12)
    assert np.all(np.isfinite(errors["value_at_x0"]))

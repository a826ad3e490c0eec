"""MFE solvers: identical iterates to MFGLib's at temperature 0, convergence to the
(regularized) MFE, the fixed-point property, vmap over leader parameters, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax.meanfield as mf

torch = pytest.importorskip("torch")
mfglib_alg = pytest.importorskip("mfglib.alg")
Env = pytest.importorskip("mfglib.env").Environment


@pytest.fixture(autouse=True)
def torch_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


SOLVERS = {
    "fictitious_play": (mf.fictitious_play, lambda: mfglib_alg.FictitiousPlay(0.0)),
    "fixed_point": (mf.fixed_point, lambda: mfglib_alg.FictitiousPlay(1.0)),
    "fixed_point_damped": (
        lambda g, **kw: mf.fixed_point(g, damping=0.3, **kw),
        lambda: mfglib_alg.FictitiousPlay(0.3),
    ),
    "online_mirror_descent": (
        lambda g, **kw: mf.online_mirror_descent(g, alpha=0.5, **kw),
        lambda: mfglib_alg.OnlineMirrorDescent(0.5),
    ),
}


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_solvers_match_mfglib_iterates(solver):
    ours_fn, reference = SOLVERS[solver]
    ours = jax.jit(lambda g: ours_fn(g, num_iterations=8))(mf.beach_bar())
    pis, expls, _ = reference().solve(Env.beach_bar(), max_iter=8, atol=None, rtol=None)
    np.testing.assert_allclose(np.asarray(ours.exploitability), np.array(expls), atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(ours.policy).reshape(-1), pis[-1].numpy().reshape(-1), atol=1e-12
    )


@pytest.mark.slow
def test_regularized_solvers_converge_to_the_fixed_point():
    game = mf.beach_bar(T=3, n=5, temperature=0.5)
    omd = jax.jit(lambda g: mf.online_mirror_descent(g, num_iterations=300, alpha=1.0))(game)
    fp = jax.jit(lambda g: mf.fixed_point(g, num_iterations=300, damping=0.5))(game)
    newton = jax.jit(mf.newton_equilibrium)(game)
    # Fixed-point property of the polished equilibrium: pi = BR_tau(L(pi)).
    br, _, _ = mf.best_response(game, mf.mean_field(game, newton))
    np.testing.assert_allclose(np.asarray(br), np.asarray(newton), atol=1e-12)
    assert abs(float(mf.exploitability(game, newton))) < 1e-12
    for sol in (omd, fp):
        assert float(sol.exploitability[-1]) < 1e-8
        assert float(sol.exploitability[-1]) < 1e-4 * float(sol.exploitability[0])
        np.testing.assert_allclose(np.asarray(sol.policy), np.asarray(newton), atol=1e-6)


def test_fictitious_play_exploitability_decreases_at_zero_temperature():
    sol = jax.jit(lambda g: mf.fictitious_play(g, num_iterations=200))(mf.beach_bar())
    expl = np.asarray(sol.exploitability)
    assert expl[-1] < 0.05 * expl[0]
    assert expl[-1] < 2e-2


def test_vmap_over_leader_parameters_matches_loop():
    game = mf.left_right_toll(0.3)
    tolls = jnp.asarray([[0.1], [0.6], [1.2]])
    solve = lambda w: mf.fixed_point(game, w, num_iterations=60, damping=0.3)  # noqa: E731
    batched = jax.jit(jax.vmap(solve))(tolls)
    for i in range(3):
        single = jax.jit(solve)(tolls[i])
        np.testing.assert_allclose(
            np.asarray(batched.policy[i]), np.asarray(single.policy), atol=1e-14
        )
        np.testing.assert_allclose(
            np.asarray(batched.exploitability[i]), np.asarray(single.exploitability), atol=1e-14
        )


def test_bad_input_raises_clear_errors():
    game = mf.beach_bar()
    bad = np.full((game.horizon, game.num_states, game.num_actions), 0.5)
    with pytest.raises(ValueError, match="`policy` must sum to 1"):
        mf.mean_field(game, bad)
    with pytest.raises(ValueError, match="`policy` must have shape"):
        mf.exploitability(game, np.ones((2, 2)))
    with pytest.raises(ValueError, match="`temperature` must be finite and >= 0"):
        mf.beach_bar(temperature=-0.1)
    with pytest.raises(ValueError, match="`initial` must sum to 1"):
        mf.left_right(mu0=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="`initial` must hold one probability per state"):
        mf.left_right(mu0=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"`leader` must have shape \(1,\)"):
        mf.stackelberg_objective(mf.left_right_toll(0.1), jnp.ones(3))
    with pytest.raises(ValueError, match="`alpha` must be in"):
        mf.fictitious_play(game, alpha=1.5)
    with pytest.raises(ValueError, match="`damping` must be in"):
        mf.fixed_point(game, damping=0.0)

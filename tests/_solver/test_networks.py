"""The value network's time map: the game's fastest rate, the stretched basis argument and the
saturating envelope, and the accuracy they buy on a long horizon."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax as sj
from stackjax._solver._networks import estimate_normalization, fastest_rate, time_map
from stackjax.examples import scalar_game


def test_fastest_rate_of_the_scalar_game_by_hand():
    """Scalar game at x0: leaving rates 0.5 and 1; drift |A| <= 0.3; leader M = 1 / 1 with
    psi'' = 2 G = 2 and, in regime 1, f0'' = 2 Q = 4 (rate 2 + sqrt 4 = 4); follower
    M = 0.25 / 1 with psi'' = 1, f0'' = 1 (0.25 + 0.5). The largest is the leader's 4."""
    assert float(fastest_rate(scalar_game())) == pytest.approx(4.0, rel=1e-6)


@pytest.mark.parametrize("horizon, plain", [(1.0, True), (10.0, False)])
def test_time_scale_is_plain_for_short_horizons_and_two_over_rho_t_otherwise(horizon, plain):
    game = scalar_game().replace(T=jnp.asarray(horizon))
    norm = estimate_normalization(game, 1.0)
    if plain:  # rho T = 4 <= 6
        assert np.isinf(float(norm.time_scale))
    else:
        assert float(norm.time_scale) == pytest.approx(2.0 / (4.0 * horizon))
    # Both maps run from 0 at t = T to 1 at t = 0, increasing; plain: both equal tau.
    t = jnp.linspace(0.0, horizon, 201)
    sigma, phi = time_map(norm, t)
    for f in (sigma, phi):
        assert float(f[0]) == pytest.approx(1.0) and float(f[-1]) == pytest.approx(0.0, abs=1e-12)
        assert np.all(np.diff(np.asarray(f)) < 0)
    tau = (horizon - t) / horizon
    if plain:
        np.testing.assert_allclose(sigma, tau) and np.testing.assert_allclose(phi, tau)
    else:  # the layer near T takes a larger share of the basis than of the horizon
        eps = float(norm.time_scale)
        np.testing.assert_allclose(phi, np.expm1(-tau / eps) / np.expm1(-1.0 / eps), rtol=1e-12)
        assert float(sigma[-2]) > 5 * float(tau[-2])


def test_time_scale_has_no_derivative():
    """A discretisation choice: jax.grad through the normalisation sees no dependence of the
    time scale on the game (and no NaN from the eigenvalue routines)."""
    game = scalar_game().replace(T=jnp.asarray(10.0))
    grad = jax.grad(lambda g: estimate_normalization(g, 1.0).time_scale)(game)
    leaves = [
        np.asarray(x)
        for x in jax.tree.leaves(grad)
        if np.issubdtype(np.asarray(x).dtype, np.floating)
    ]
    assert all(np.all(leaf == 0) for leaf in leaves)


@pytest.mark.slow
@pytest.mark.long_loops
def test_long_horizon_is_solved_to_1e_3():
    """T = 10 (rho T = 40): the default solve reaches a worst relative value error <= 1e-3
    against Riccati (measured 3.2e-4; 9.9e-3 with the plain map)."""
    game = scalar_game().replace(T=jnp.asarray(10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.AccuracyWarning)
        solution = sj.solve(game, jax.random.key(0), verbose=False)
    err = sj.evaluate(solution, sj.riccati_reference(game), jax.random.key(1), num_points=2048)
    assert float(np.max(err["value"])) <= 1e-3, err["value"]

"""The three economics environments: MFGLib's follower game recovered at zero leader
influence, implicit gradients against finite differences, equilibrium at the gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax.meanfield as mf

GAMES = {
    "market_entrance": (
        mf.market_entrance,
        lambda: mf.left_right(),
        jnp.asarray([0.0]),
        jnp.asarray([0.3]),
    ),
    "equilibrium_pricing": (
        mf.equilibrium_pricing,
        lambda: mf.equilibrium_price(T=2),
        jnp.asarray([0.0]),
        jnp.asarray([0.4]),
    ),
}


@pytest.mark.parametrize("name", sorted(GAMES))
def test_zero_leader_recovers_mfglib_game(name):
    make, base, zero, _ = GAMES[name]
    game, plain = make(), base()
    joint = jax.random.dirichlet(jax.random.key(0), jnp.ones(game.num_states * game.num_actions))
    joint = joint.reshape(game.num_states, game.num_actions)
    for t in range(game.horizon):
        np.testing.assert_allclose(
            np.asarray(game.reward_fn(game.params, t, joint, zero)),
            np.asarray(plain.reward_fn(plain.params, t, joint, plain.leader_init)),
            atol=1e-14,
        )


def test_shop_positioning_with_a_sure_location_is_beach_bar():
    n = 5
    game = mf.shop_positioning(n=n)
    logits = jnp.full(n, -3.0).at[2].set(3.0)
    weights = jax.nn.softmax(logits)
    joint = jnp.full((n, 3), 1.0 / (3 * n))
    ours = game.reward_fn(game.params, 0, joint, logits)
    expected = sum(
        w
        * mf.beach_bar(n=n, bar_loc=b).reward_fn(
            mf.beach_bar(n=n, bar_loc=b).params, 0, joint, jnp.zeros(0)
        )
        for b, w in enumerate(weights)
    )
    np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["market_entrance", "equilibrium_pricing", "shop_positioning"])
def test_implicit_gradient_matches_finite_differences(name):
    game = getattr(mf, name)()
    omega = (
        jnp.asarray([0.3, -0.5, 0.2, 0.8, -0.1])
        if name == "shop_positioning"
        else jnp.asarray([0.35])
    )
    f = jax.jit(lambda w: mf.stackelberg_objective(game, w))
    grad = jax.jit(jax.grad(lambda w: mf.stackelberg_objective(game, w)))(omega)
    eps = 1e-5
    fd = [
        (f(omega.at[i].add(eps)) - f(omega.at[i].add(-eps))) / (2 * eps)
        for i in range(omega.shape[0])
    ]
    np.testing.assert_allclose(np.asarray(grad), np.asarray(fd), atol=1e-7)
    policy = mf.equilibrium_policy(game, omega)
    assert abs(float(mf.exploitability(game, policy, omega))) < 1e-10

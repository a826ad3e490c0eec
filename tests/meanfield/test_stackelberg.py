"""The exact Stackelberg oracle: toll closed form, logit optimum against SciPy, implicit
gradient against finite differences, brute-force grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special

import stackjax.meanfield as mf


def _logit_share(theta, tau):
    """mu_R solving mu = sigmoid((1 - 3 mu - theta) / tau), by bracketing (independent)."""
    return optimize.brentq(
        lambda m: m - special.expit((1 - 3 * m - theta) / tau), 0.0, 1.0, xtol=1e-15
    )


def _logit_optimum(tau):
    res = optimize.minimize_scalar(
        lambda th: -th * _logit_share(th, tau),
        bounds=(0.0, 2.0),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return res.x, -res.fun


@pytest.mark.slow
def test_toll_exact_best_response_closed_form():
    res = mf.stackelberg_equilibrium(
        mf.left_right_toll(0.0), jax.random.key(0), num_restarts=2, num_steps=40
    )
    assert abs(float(res.leader_params[0]) - 0.5) < 1e-6
    assert abs(float(res.population[1, 2]) - 1 / 6) < 1e-6
    assert abs(float(res.leader_value) - 1 / 12) < 1e-8
    assert 0.0 <= float(res.exploitability) <= 1e-8


@pytest.mark.slow
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_toll_logit_optimum_matches_scipy(tau):
    theta, value = _logit_optimum(tau)
    res = mf.stackelberg_equilibrium(
        mf.left_right_toll(tau), jax.random.key(1), num_restarts=2, num_steps=60
    )
    assert abs(float(res.leader_params[0]) - theta) < 1e-6
    assert abs(float(res.leader_value) - value) < 1e-10
    assert abs(float(res.population[1, 2]) - _logit_share(theta, tau)) < 1e-6
    assert abs(float(res.exploitability)) <= 1e-8


@pytest.mark.slow
def test_toll_oracle_beats_brute_force_grid():
    tau = 0.2
    game = mf.left_right_toll(tau)
    grid = np.linspace(0.0, 2.0, 401)
    values = np.array([th * _logit_share(th, tau) for th in grid])  # independent of stackjax
    batched = jax.jit(jax.vmap(lambda th: mf.stackelberg_objective(game, th[None])))
    ours = np.asarray(batched(jnp.asarray(grid)))
    np.testing.assert_allclose(ours, values, atol=1e-10)
    res = mf.stackelberg_equilibrium(game, jax.random.key(2), num_restarts=2, num_steps=60)
    assert float(res.leader_value) >= values.max() - 1e-12
    assert abs(float(res.leader_params[0]) - grid[values.argmax()]) <= grid[1] - grid[0]


_toll_gradient = jax.jit(jax.grad(mf.stackelberg_objective, argnums=1))


@pytest.mark.slow
@pytest.mark.parametrize("theta", [0.2, 0.7, 1.4])
def test_toll_implicit_gradient_matches_finite_differences(theta):
    game = mf.left_right_toll(0.2)
    grad = _toll_gradient(game, jnp.asarray([theta]))[0]
    eps = 1e-5
    fd = (
        _logit_share(theta + eps, 0.2) * (theta + eps)
        - _logit_share(theta - eps, 0.2) * (theta - eps)
    ) / (2 * eps)
    assert abs(float(grad) - fd) < 1e-7


def _subsidized_beach(tau):
    """Beach bar (T = 2, n = 4) where a planner pays subsidies omega_s to agents at s and
    earns the (bar-distance weighted) presence minus what it pays."""
    base = mf.beach_bar(T=2, n=4, bar_loc=1, temperature=tau)

    def reward(params, t, joint, leader):
        return base.reward_fn(params, t, joint, leader) + leader[:, None]

    def planner(params, t, joint, leader):
        mu = joint.sum(-1)
        return jnp.sum(mu * (params["distance"] + 1.0 - leader)) - 0.1 * jnp.sum(leader**2)

    return mf.make_mean_field_game(
        initial=base.initial,
        params=base.params,
        reward_fn=reward,
        transition_fn=base.transition_fn,
        leader_reward_fn=planner,
        horizon=base.horizon,
        action_shape=base.action_shape,
        temperature=tau,
        leader_init=jnp.zeros(4),
        leader_lower=-2.0,
        leader_upper=2.0,
    )


@pytest.mark.slow
def test_vector_leader_implicit_gradient_matches_finite_differences():
    game = _subsidized_beach(0.4)
    omega = jnp.asarray([0.3, -0.2, 0.1, 0.5])
    f = jax.jit(lambda w: mf.stackelberg_objective(game, w))
    grad = jax.jit(jax.grad(lambda w: mf.stackelberg_objective(game, w)))(omega)
    eps = 1e-5
    fd = np.array(
        [(f(omega.at[i].add(eps)) - f(omega.at[i].add(-eps))) / (2 * eps) for i in range(4)]
    )
    np.testing.assert_allclose(np.asarray(grad), fd, atol=1e-7)
    # The equilibrium behind it is a regularized MFE (exploitability ~ 0).
    policy = mf.equilibrium_policy(game, omega)
    assert abs(float(mf.exploitability(game, policy, omega))) < 1e-10


def test_oracle_rejects_games_without_leader():
    with pytest.raises(ValueError, match="has no leader parameters"):
        mf.stackelberg_equilibrium(mf.beach_bar(temperature=0.1), jax.random.key(0))


KEYED = [
    ("stackelberg_equilibrium", lambda k: mf.stackelberg_equilibrium(mf.left_right_toll(0.1), k)),
    ("make_train", lambda k: mf.make_train(mf.left_right_toll(0.3), mf.ACSMFGConfig())(k)),
    ("random_linear", lambda k: mf.random_linear(k)),
]


@pytest.mark.parametrize("name, call", KEYED, ids=[c[0] for c in KEYED])
def test_int_key_is_refused_naming_it(name, call):
    with pytest.raises(TypeError, match="`key` must be a JAX PRNG key"):
        call(0)

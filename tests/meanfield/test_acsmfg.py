"""AC-SMFG and baselines: reaching the toll game's optimum, the gradient-alignment ratio
against its closed form, vmap over seeds equals a loop, compile-once, config validation."""

import chex
import jax
import numpy as np
import pytest
from scipy import optimize, special

import stackjax.meanfield as mf

TAU = 0.3


def _share(theta, tau=TAU):
    return optimize.brentq(
        lambda m: m - special.expit((1 - 3 * m - theta) / tau), 0.0, 1.0, xtol=1e-15
    )


def _optimum(tau=TAU):
    res = optimize.minimize_scalar(
        lambda th: -th * _share(th, tau),
        bounds=(0.0, 2.0),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return -res.fun


def _config(**kw):
    base = dict(
        num_updates=300,
        batch_size=64,
        leader_lr=0.1,
        follower_lr=0.1,
        critic_lr=0.5,
        mean_field_lr=0.2,
    )
    base.update(kw)
    return mf.ACSMFGConfig(**base)


@pytest.mark.slow
def test_implicit_single_loop_reaches_toll_optimum_within_one_percent():
    game = mf.left_right_toll(TAU)
    train = jax.jit(jax.vmap(mf.make_train(game, _config(leader_gradient="implicit"))))
    _, metrics = train(jax.random.split(jax.random.key(0), 2))
    gap = (_optimum() - np.asarray(metrics["leader_objective"])[:, -1]) / _optimum()
    assert np.all(gap < 0.01) and np.all(gap > -1e-9)


@pytest.mark.slow
def test_alignment_ratio_matches_closed_form_and_partial_gradient_misleads():
    game = mf.left_right_toll(TAU)
    _, metrics = jax.jit(mf.make_train(game, _config(num_updates=40)))(jax.random.key(0))
    theta = float(game.leader_init[0])
    mu = _share(theta)
    s = mu * (1 - mu)
    dmu = -s / (TAU + 3 * s)  # implicit derivative of mu = sigmoid((1 - 3 mu - theta) / tau)
    ratio = abs(theta * dmu) / abs(mu + theta * dmu)
    assert abs(float(metrics["alignment_ratio"][0]) - ratio) < 1e-6
    # The partial gradient (mu_R > 0) always says "raise the toll": the leader drifts up.
    theta_path = np.asarray(metrics["leader_params"])[:, 0]
    assert theta_path[-1] > theta_path[0] + 0.5


@pytest.mark.slow
def test_vmap_over_seeds_equals_loop_and_compiles_once():
    game = mf.left_right_toll(TAU)
    train = mf.make_train(game, _config(num_updates=15, leader_gradient="implicit"))
    keys = jax.random.split(jax.random.key(3), 2)
    _, batched = jax.jit(jax.vmap(train))(keys)
    counted = jax.jit(chex.assert_max_traces(train, n=1))
    for i in range(2):
        _, single = counted(keys[i])
        for name in ("leader_objective", "leader_params", "follower_exploitability"):
            np.testing.assert_allclose(
                np.asarray(batched[name][i]), np.asarray(single[name]), rtol=1e-10, atol=1e-12
            )
    assert batched["leader_objective"].shape == (2, 15)


def test_config_validation():
    with pytest.raises(ValueError, match="time-scale ordering"):
        mf.ACSMFGConfig(leader_lr=0.5, follower_lr=0.1)
    with pytest.raises(ValueError, match="`leader_gradient` must be one of"):
        mf.ACSMFGConfig(leader_gradient="magic")
    with pytest.raises(ValueError, match="ACSMFGConfig.batch_size must be >= 1"):
        mf.ACSMFGConfig(batch_size=0)
    with pytest.raises(ValueError, match="`game.temperature` must be > 0"):
        mf.make_train(mf.left_right_toll(0.0), mf.ACSMFGConfig())
    with pytest.raises(ValueError, match="has no leader"):
        mf.make_train(mf.beach_bar(temperature=0.2), mf.ACSMFGConfig())

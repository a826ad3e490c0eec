"""Learning the follower's reward from its actions; optimistic online and pessimistic offline
leaders. All statistical tests use fixed keys and sizes chosen to pass with a margin (checked on
several seeds while developing)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax.discrete as sd


@pytest.fixture(scope="module")
def bandit_game():
    # Myopic follower that observes the leader's action, horizon 1: a contextual logit model.
    return sd.random_markov_game(
        jax.random.key(0), 2, 2, 3, horizon=1, temperature=0.5, myopic_follower=True
    )


def test_mle_error_shrinks_like_inverse_sqrt_n_and_confidence_set_covers(bandit_game):
    game = bandit_game
    sizes = np.array([400, 1600, 6400])
    n_max = int(sizes[-1])
    behaviour = jnp.full((1, 2, 2), 0.5)
    truth = sd.identified_follower_reward(game)

    @jax.jit
    def errors(key):
        data = sd.collect_dataset(key, game, behaviour, n_max)

        def one(n):
            masked = data.replace(mask=(jnp.arange(n_max) < n).astype(data.mask.dtype))
            fit = sd.fit_follower_model(game, masked, regularization=1e-3)
            err = jnp.linalg.norm(sd.identified_follower_reward(game, fit.parameter) - truth)
            covered = sd.confidence_set(fit, confidence=0.9).contains(game.follower_parameter)
            return err, covered

        return jax.vmap(one)(jnp.asarray(sizes))

    err, covered = jax.vmap(errors)(jax.random.split(jax.random.key(1), 16))
    mean_err = np.asarray(err).mean(axis=0)
    slope = np.polyfit(np.log(sizes), np.log(mean_err), 1)[0]
    assert -0.65 <= slope <= -0.35, (slope, mean_err)
    assert mean_err[-1] < 0.1
    # The chi^2-based Fisher ellipsoid covers the truth at (at least roughly) its nominal rate.
    assert np.asarray(covered).mean() >= 0.8


@pytest.mark.slow
def test_log_likelihood_gradient_and_fisher_against_finite_differences(bandit_game):
    game = bandit_game
    data = sd.collect_dataset(jax.random.key(3), game, jnp.full((1, 2, 2), 0.5), 200)
    theta = game.follower_parameter + 0.1
    grad = jax.grad(sd.follower_log_likelihood)(theta, game, data)
    eps = 1e-6
    for i in (0, 5, 11):
        e = jnp.zeros_like(theta).at[i].set(eps)
        fd = (
            sd.follower_log_likelihood(theta + e, game, data)
            - sd.follower_log_likelihood(theta - e, game, data)
        ) / (2 * eps)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-6, atol=1e-6)
    # For the logit model the expected Fisher information equals minus the Hessian.
    fit = sd.fit_follower_model(game, data, regularization=1e-3)
    hess = jax.hessian(sd.follower_log_likelihood)(fit.parameter, game, data)
    np.testing.assert_allclose(fit.fisher_information, -hess, atol=1e-9)
    # Stationarity of the penalized MLE.
    g = jax.grad(sd.follower_log_likelihood)(fit.parameter, game, data) - 1e-3 * fit.parameter
    assert float(jnp.max(jnp.abs(g))) < 1e-8


@pytest.mark.parametrize("myopic, episodes", [(True, 80), (False, 40)])
def test_online_optimistic_regret_decreases(myopic, episodes):
    game = sd.random_markov_game(
        jax.random.key(2), 2, 2, 3, horizon=2, temperature=0.5, myopic_follower=myopic
    )
    optimal = sd.markov_quantal_stackelberg(jax.random.key(0), game).leader_value
    regrets = np.stack(
        [
            np.asarray(
                sd.online_optimistic_leader(
                    jax.random.key(10 + s), game, episodes, radius=0.3, optimal_value=optimal
                ).regret
            )
            for s in range(3)
        ]
    ).mean(axis=0)
    quarter = episodes // 4
    first, last = regrets[:quarter].mean(), regrets[-quarter:].mean()
    assert last < 0.5 * first, (first, last)
    running = np.cumsum(regrets) / np.arange(1, episodes + 1)
    assert running[-1] < running[quarter - 1]
    assert regrets.min() >= -1e-6  # the reference QSE is (numerically) optimal


@pytest.mark.slow
def test_offline_pessimistic_suboptimality_decreases_with_data():
    game = sd.random_markov_game(
        jax.random.key(4), 2, 2, 3, horizon=2, temperature=0.5, myopic_follower=True
    )
    optimal = float(sd.markov_quantal_stackelberg(jax.random.key(0), game).leader_value)
    sizes = [8, 64, 512]
    n_max = sizes[-1]
    behaviour = jnp.full((2, 2, 2), 0.5)

    @jax.jit
    def suboptimality(key, n):
        k_data, k_plan = jax.random.split(key)
        data = sd.collect_dataset(k_data, game, behaviour, n_max)
        mask = jnp.repeat((jnp.arange(n_max) < n).astype(data.mask.dtype), game.horizon)
        result = sd.offline_pessimistic_leader(k_plan, game, data.replace(mask=mask), radius=1.0)
        return optimal - sd.leader_value(game, result.leader_policy), result.pessimistic_value

    keys = jax.random.split(jax.random.key(5), 8)
    subopt = np.array([[float(suboptimality(k, n)[0]) for k in keys] for n in sizes]).mean(axis=1)
    assert np.all(subopt >= -1e-9)
    assert subopt[1] <= subopt[0] + 1e-9 and subopt[2] <= subopt[1] + 1e-9, subopt
    assert subopt[2] < 0.5 * subopt[0], subopt
    # Pessimism: the certified value never exceeds the true value of the returned policy
    # (checked at the largest dataset, where the confidence set is reliable).
    gaps = [suboptimality(k, n_max) for k in keys[:3]]
    for gap, pessimistic in gaps:
        assert float(pessimistic) <= optimal - float(gap) + 1e-9


def test_learning_input_validation(bandit_game):
    with pytest.raises(ValueError, match="leader_policy"):
        sd.collect_dataset(jax.random.key(0), bandit_game, jnp.full((2, 2, 2), 0.5), 4)
    with pytest.raises(ValueError, match="confidence"):
        sd.confidence_radius(3, 1.5)
    with pytest.raises(ValueError, match="num_episodes"):
        sd.online_optimistic_leader(jax.random.key(0), bandit_game, 0)

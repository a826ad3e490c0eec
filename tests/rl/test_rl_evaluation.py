"""Policy evaluation from trajectories against the exact values of linear-Gaussian policies
(a Lyapunov ODE, integrated with scipy, in a user environment independent of `simulate`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax import rl
from stackjax.rl._evaluation import _entropy_costs, fit_values

from ._user_env import exact_values, user_env, user_policy

POINTS = [(0.0, 0.5), (0.5, 0.0), (0.0, -0.3), (0.8, 1.0)]


@pytest.mark.slow
def test_policy_evaluation_matches_lyapunov_values():
    """Both estimators (orthogonality conditions and martingale loss, fitted on the same
    episodes): the mean over 8 independent runs is within 4 standard errors + 0.02 (the O(dt)
    bias of the dt = 0.01 Euler environment with per-step switching, measured 0.005-0.02) of the
    exact continuous-time values of both players in both regimes."""
    env = user_env()

    def one(key):
        batch = rl.rollout(env, _sampler, key, 1500)
        costs = batch.costs + _entropy_costs(env, user_policy, batch)
        out = []
        for method in rl.METHODS:
            params = fit_values(env, batch, costs, time_basis=4, method=method, ridge=1e-10)
            est = rl.ValueEstimate(params=params, horizon=env.horizon)
            out.append(jnp.stack([est.value(t, jnp.array([x])) for t, x in POINTS]))
        return jnp.stack(out)

    values = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), 8)))
    exact = np.stack([exact_values(t, x) for t, x in POINTS])
    mean, se = values.mean(0), values.std(0, ddof=1) / np.sqrt(8)
    assert np.all(np.abs(mean - exact) <= 4 * se + 0.02), (mean - exact, se)
    assert np.all(se < 0.03), se  # informative: the statistical error is small
    # Without the entropy terms the values are off by far more than the tolerance.
    assert np.all(np.abs(exact_values(0.0, 0.5, (0.0, 0.0)) - exact[0]) > 0.1)


def _sampler(key, n, obs):
    pol = user_policy(obs.time, obs.state).regime(obs.regime)
    k1, k2 = jax.random.split(key)
    return (
        pol.mean_leader + jnp.sqrt(pol.cov_leader[0]) * jax.random.normal(k1, (1,)),
        pol.mean_follower + jnp.sqrt(pol.cov_follower[0]) * jax.random.normal(k2, (1,)),
    )


@pytest.mark.slow
def test_evaluate_policy_entry_point_and_method_check():
    env = user_env()
    est = rl.evaluate_policy(env, user_policy, jax.random.key(1), num_episodes=500, time_basis=3)
    assert est.value(0.0, jnp.array([0.5])).shape == (2, 2)
    with pytest.raises(ValueError, match="`method` must be one of"):
        rl.evaluate_policy(env, user_policy, jax.random.key(1), method="td")

"""The shared soft response and finite-horizon recursions against NumPy brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax.discrete import forward_flow, soft_backward, soft_response


@pytest.mark.parametrize("tau", [0.05, 0.7, 3.0])
def test_soft_response_is_the_entropy_regularized_maximizer(tau):
    q = np.random.default_rng(0).normal(size=(4, 5))
    policy, value = soft_response(jnp.asarray(q), tau)
    # Closed form, then the variational identity V = <pi, q> + tau H(pi) at the softmax.
    expected = np.exp((q - q.max(-1, keepdims=True)) / tau)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(policy, expected, rtol=1e-12)
    entropy = -np.sum(expected * np.log(expected), -1)
    np.testing.assert_allclose(value, np.sum(expected * q, -1) + tau * entropy, rtol=1e-12)
    # Any other distribution does worse (the objective is strictly concave).
    other = np.random.default_rng(1).dirichlet(np.ones(5), size=(200, 4))
    worse = np.sum(other * q, -1) + tau * -np.sum(other * np.log(other), -1)
    assert np.all(worse <= np.asarray(value) + 1e-12)


def test_zero_temperature_is_best_response_with_ties_split():
    q = jnp.asarray([[1.0, 3.0, 3.0, -2.0], [0.0, -1.0, 5.0, 4.0]])
    policy, value = soft_response(q, 0.0)
    np.testing.assert_allclose(policy, [[0, 0.5, 0.5, 0], [0, 0, 1, 0]])
    np.testing.assert_allclose(value, [3.0, 5.0])
    # Continuity: a small temperature approaches it.
    small, small_value = soft_response(q, 1e-4)
    np.testing.assert_allclose(small, policy, atol=1e-6)
    np.testing.assert_allclose(small_value, value, atol=1e-3)


def test_soft_response_other_axis_and_gradient():
    q = jnp.asarray(np.random.default_rng(2).normal(size=(3, 4)))
    p0, v0 = soft_response(q, 0.5, axis=0)
    p1, v1 = soft_response(q.T, 0.5)
    np.testing.assert_allclose(p0, p1.T, rtol=1e-12)
    np.testing.assert_allclose(v0, v1, rtol=1e-12)
    # dV/dq = policy (envelope theorem).
    grad = jax.grad(lambda z: soft_response(z, 0.5)[1].sum())(q)
    np.testing.assert_allclose(grad, soft_response(q, 0.5)[0], rtol=1e-10)


def _random_mdp(seed, H=4, S=3, A=2):
    rng = np.random.default_rng(seed)
    reward = rng.normal(size=(H, S, A))
    kernel = rng.dirichlet(np.ones(S), size=(H, S, A))
    return reward, kernel


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_soft_backward_matches_loop(tau):
    reward, kernel = _random_mdp(3)
    H, S, A = reward.shape
    policy, q, values = soft_backward(jnp.asarray(reward), jnp.asarray(kernel), tau)
    v = np.zeros(S)
    for h in reversed(range(H)):
        qh = reward[h] + kernel[h] @ v
        if tau > 0:
            v = tau * np.log(np.sum(np.exp(qh / tau), -1))
        else:
            v = qh.max(-1)
        np.testing.assert_allclose(q[h], qh, rtol=1e-12)
        np.testing.assert_allclose(values[h], v, rtol=1e-12)
    np.testing.assert_allclose(values[H], 0.0)
    # The kernel may also be a function of the step.
    fn = soft_backward(jnp.asarray(reward), lambda h: jnp.asarray(kernel)[h], tau)
    np.testing.assert_allclose(fn[2], values, rtol=1e-12)


def test_forward_flow_matches_loop_and_conserves_mass():
    reward, kernel = _random_mdp(4)
    H, S, A = reward.shape
    policy = np.random.default_rng(5).dirichlet(np.ones(A), size=(H, S))
    mu0 = np.array([0.2, 0.5, 0.3])
    flow = forward_flow(jnp.asarray(mu0), jnp.asarray(policy), jnp.asarray(kernel))
    mu = mu0
    np.testing.assert_allclose(flow[0], mu0)
    for h in range(H):
        mu = np.array(
            [
                sum(
                    mu[s] * policy[h, s, a] * kernel[h, s, a, t] for s in range(S) for a in range(A)
                )
                for t in range(S)
            ]
        )
        np.testing.assert_allclose(flow[h + 1], mu, rtol=1e-12)
    np.testing.assert_allclose(flow.sum(-1), 1.0, rtol=1e-12)

"""Episodic leader-follower Markov games: environment, soft response, QSE for a known model.

References: an independent numpy soft value iteration, Monte Carlo returns of the environment,
and exhaustive search over a grid of leader policies (including every deterministic policy)
followed by local refinement with scipy.optimize.minimize on tiny games.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from stackjax.discrete import (
    follower_response,
    leader_value,
    make_markov_game,
    markov_quantal_stackelberg,
    random_markov_game,
    reset,
    rollout,
    step,
)


def numpy_soft_response(P, r_F, tau, pi, myopic, observes):
    """Independent soft value iteration (plain loops), returns nu (H, S, A, B), V (H+1, S)."""
    H, S, A = pi.shape
    B = r_F.shape[2]
    V = np.zeros((H + 1, S))
    nu = np.zeros((H, S, A, B))
    for h in reversed(range(H)):
        for s in range(S):
            Q = np.zeros((A, B))
            for a in range(A):
                for b in range(B):
                    cont = 0.0 if myopic else sum(P[s, a, b, t] * V[h + 1, t] for t in range(S))
                    Q[a, b] = r_F[s, a, b] + cont
            if observes:
                for a in range(A):
                    m = Q[a].max()
                    z = np.exp((Q[a] - m) / tau)
                    nu[h, s, a] = z / z.sum()
                    V[h, s] += pi[h, s, a] * (m + tau * np.log(z.sum()))
            else:
                qbar = pi[h, s] @ Q
                m = qbar.max()
                z = np.exp((qbar - m) / tau)
                nu[h, s, :] = z / z.sum()
                V[h, s] = m + tau * np.log(z.sum())
    return nu, V


def numpy_leader_values_batch(P, r_L, r_F, rho, tau, pis, myopic, observes):
    """Vectorized numpy leader value for a batch of policies pis (N, H, S, A)."""
    N, H, S, A = pis.shape
    V = np.zeros((N, S))
    U = np.zeros((N, S))
    for h in reversed(range(H)):
        Q = r_F[None] + (0.0 * V[:, :, None, None] if myopic else np.einsum("sabt,nt->nsab", P, V))
        pi = pis[:, h]
        if observes:
            m = Q.max(-1, keepdims=True)
            z = np.exp((Q - m) / tau)
            nu = z / z.sum(-1, keepdims=True)
            V = np.einsum("nsa,nsa->ns", pi, m[..., 0] + tau * np.log(z.sum(-1)))
        else:
            qbar = np.einsum("nsa,nsab->nsb", pi, Q)
            m = qbar.max(-1, keepdims=True)
            z = np.exp((qbar - m) / tau)
            nu = np.broadcast_to((z / z.sum(-1, keepdims=True))[:, :, None, :], Q.shape)
            V = m[..., 0] + tau * np.log(z.sum(-1))
        G = r_L[None] + np.einsum("sabt,nt->nsab", P, U)
        U = np.einsum("nsa,nsab,nsab->ns", pi, nu, G)
    return U @ rho


def tiny_game(seed, myopic, observes, tau=0.3, H=2):
    game = random_markov_game(
        jax.random.key(seed),
        2,
        2,
        2,
        horizon=H,
        temperature=tau,
        myopic_follower=myopic,
        follower_observes_action=observes,
    )
    return game, [
        np.asarray(x)
        for x in (
            game.transition,
            game.leader_reward,
            game.follower_reward,
            game.initial_distribution,
        )
    ]


@pytest.mark.slow
@pytest.mark.parametrize("myopic", [False, True])
@pytest.mark.parametrize("observes", [True, False])
def test_soft_response_matches_numpy_value_iteration(myopic, observes):
    game = random_markov_game(
        jax.random.key(1),
        3,
        2,
        3,
        horizon=4,
        temperature=0.4,
        myopic_follower=myopic,
        follower_observes_action=observes,
    )
    pi = np.asarray(jax.random.dirichlet(jax.random.key(2), jnp.ones(2), shape=(4, 3)))
    resp = follower_response(game, jnp.asarray(pi))
    nu, V = numpy_soft_response(
        np.asarray(game.transition), np.asarray(game.follower_reward), 0.4, pi, myopic, observes
    )
    np.testing.assert_allclose(resp.policy, nu, atol=1e-12)
    if not myopic:
        np.testing.assert_allclose(resp.values, V, atol=1e-12)
    # Leader value against the independent vectorized evaluation.
    P, r_L, r_F, rho = (
        np.asarray(x)
        for x in (
            game.transition,
            game.leader_reward,
            game.follower_reward,
            game.initial_distribution,
        )
    )
    ref = numpy_leader_values_batch(P, r_L, r_F, rho, 0.4, pi[None], myopic, observes)[0]
    np.testing.assert_allclose(leader_value(game, jnp.asarray(pi)), ref, atol=1e-12)


@pytest.mark.slow
def test_environment_monte_carlo_matches_leader_value():
    game = random_markov_game(jax.random.key(3), 3, 2, 2, horizon=3, temperature=0.5)
    pi = jax.random.dirichlet(jax.random.key(4), jnp.ones(2), shape=(3, 3))
    nu = follower_response(game, pi).policy
    traj = jax.jit(jax.vmap(lambda k: rollout(k, game, pi, nu)))(
        jax.random.split(jax.random.key(5), 8_000)
    )
    returns = np.asarray(traj.leader_rewards.sum(axis=1))
    exact = float(leader_value(game, pi))
    # 5 standard errors.
    assert abs(returns.mean() - exact) < 5 * returns.std() / np.sqrt(returns.size)
    # reset / step contract.
    obs, state = reset(jax.random.key(0), game)
    assert int(state.step) == 0 and int(obs) == int(state.state)
    _, state2, reward, done, info = step(jax.random.key(1), state, jnp.array([1, 0]), game)
    assert int(state2.step) == 1 and reward.shape == (2,) and not bool(done) and info == {}
    np.testing.assert_allclose(reward[0], game.leader_reward[obs, 1, 0])
    np.testing.assert_allclose(reward[1], game.follower_reward[obs, 1, 0])


def _brute_force_markov_qse(P, r_L, r_F, rho, tau, H, myopic, observes, resolution=20):
    """Exhaustive grid over p[h, s] = pi_h(0 | s) (includes all 2^(H S) deterministic policies),
    then L-BFGS-B refinement from the 4 best grid points. Returns the best value found."""
    S = P.shape[0]
    levels = np.linspace(0.0, 1.0, resolution + 1)
    grid = np.array(list(itertools.product(levels, repeat=H * S)))
    pis = np.stack([grid, 1 - grid], axis=-1).reshape(-1, H, S, 2)
    values = numpy_leader_values_batch(P, r_L, r_F, rho, tau, pis, myopic, observes)
    best = values.max()

    def negative(p):
        pi = np.stack([p, 1 - p], axis=-1).reshape(1, H, S, 2)
        return -numpy_leader_values_batch(P, r_L, r_F, rho, tau, pi, myopic, observes)[0]

    for idx in np.argsort(values)[-4:]:
        res = minimize(negative, grid[idx], method="L-BFGS-B", bounds=[(0, 1)] * (H * S))
        best = max(best, -res.fun)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("observes", [True, False])
def test_markov_qse_matches_exhaustive_search(seed, observes):
    game, (P, r_L, r_F, rho) = tiny_game(seed, myopic=False, observes=observes)
    sol = markov_quantal_stackelberg(jax.random.key(seed), game, num_restarts=6)
    ref = _brute_force_markov_qse(P, r_L, r_F, rho, 0.3, 2, False, observes)
    # Independent evaluation of the returned policy.
    pi = np.asarray(sol.leader_policy)
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-12)
    own = numpy_leader_values_batch(P, r_L, r_F, rho, 0.3, pi[None], False, observes)[0]
    np.testing.assert_allclose(sol.leader_value, own, atol=1e-12)
    assert float(sol.leader_value) >= ref - 1e-6
    assert float(sol.leader_value) <= ref + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("observes", [True, False])
def test_markov_qse_myopic_matches_exhaustive_search(observes):
    game, (P, r_L, r_F, rho) = tiny_game(7, myopic=True, observes=observes, tau=0.2)
    sol = markov_quantal_stackelberg(jax.random.key(0), game, num_restarts=6)
    ref = _brute_force_markov_qse(P, r_L, r_F, rho, 0.2, 2, True, observes)
    np.testing.assert_allclose(sol.leader_value, ref, atol=1e-6)


def test_markov_game_validation():
    P = np.full((2, 2, 2, 2), 0.5)
    r = np.zeros((2, 2, 2))
    with pytest.raises(ValueError, match="transition"):
        make_markov_game(np.full((2, 2, 2, 2), 0.4), r, r, horizon=2, temperature=0.1)
    with pytest.raises(ValueError, match="transition"):
        make_markov_game(np.full((2, 2, 2, 3), 1 / 3), r, r, horizon=2, temperature=0.1)
    with pytest.raises(ValueError, match="leader_reward"):
        make_markov_game(P, np.zeros((2, 2, 3)), r, horizon=2, temperature=0.1)
    with pytest.raises(ValueError, match="follower_reward"):
        make_markov_game(P, r, np.full((2, 2, 2), np.nan), horizon=2, temperature=0.1)
    with pytest.raises(ValueError, match="temperature"):
        make_markov_game(P, r, r, horizon=2, temperature=0.0)
    with pytest.raises(ValueError, match="initial_distribution"):
        make_markov_game(P, r, r, horizon=2, temperature=0.1, initial_distribution=[0.3, 0.3])
    with pytest.raises(ValueError, match="horizon"):
        make_markov_game(P, r, r, horizon=0, temperature=0.1)
    with pytest.raises(ValueError, match="follower_parameter"):
        make_markov_game(
            P,
            r,
            horizon=2,
            temperature=0.1,
            follower_features=np.zeros((2, 2, 2, 3)),
            follower_parameter=np.zeros(4),
        )

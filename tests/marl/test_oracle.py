"""Exact Stackelberg oracle against independent brute force (plain NumPy/Python loops)."""

import itertools

import jax
import numpy as np
import pytest

from stackjax.marl import (
    GAME_NAMES,
    battle_of_the_sexes,
    exact_stackelberg,
    iterated_matrix_game,
    matrix_game,
    random_matrix_game,
)


def observe(last, memory, small):
    """Observations (leader, follower) of the previous joint action (a_L, a_F) or None."""
    if last is None or not memory:
        return 0, 0
    a, b = last
    return (1 + b, 1 + a) if small else (1 + a + 2 * b,) * 2


def play(payoffs, offset, horizon, leader, follower, memory=True, small=False):
    """Deterministic episode; ``follower(t, last, obs_F)`` gives the follower's action."""
    last, total = None, np.zeros(2)
    for t in range(horizon):
        o_l, o_f = observe(last, memory, small)
        a, b = leader[o_l], follower(t, last, o_f)
        total += payoffs[a, b] + offset
        last = (a, b)
    return total


def brute_stationary(payoffs, offset, horizon, memory=True, small=False):
    n_obs = (3 if small else 5) if memory else 1
    best = None
    for leader in itertools.product(range(2), repeat=n_obs):
        results = [
            play(payoffs, offset, horizon, leader, lambda t, last, o, f=f: f[o], memory, small)
            for f in itertools.product(range(2), repeat=n_obs)
        ]
        f_best = max(r[1] for r in results)
        value = max((r for r in results if r[1] >= f_best - 1e-9), key=lambda r: r[0])
        if best is None or value[0] > best[0]:
            best = value
    return best


@pytest.mark.parametrize("small", [False, True])
def test_stationary_oracle_matches_brute_force(small):
    horizon = 5 if small else 10
    for name in GAME_NAMES:
        env = iterated_matrix_game(name, episode_length=horizon, small_memory=small)
        result = exact_stackelberg(env)
        ref = brute_stationary(np.asarray(env.params.payoffs), -2.5, horizon, small=small)
        np.testing.assert_allclose(
            [result.leader_return, result.follower_return], ref, rtol=0, atol=1e-9
        )


def test_reference_thresholds():
    # The reference repository's success threshold for the 10-round prisoners' dilemma.
    assert float(exact_stackelberg(iterated_matrix_game("prisoners_dilemma")).leader_return) == 6.0
    bots = exact_stackelberg(battle_of_the_sexes())
    assert (float(bots.leader_return), float(bots.follower_return)) == (2.0, 1.0)
    assert int(bots.leader_policy[0]) == 0


def brute_markov(payoffs, horizon):
    """Leader tables x all deterministic follower policies of (round, previous joint action)."""
    states = [None] + [(a, b) for b in range(2) for a in range(2)]
    slots = [(0, None)] + [(t, s) for t in range(1, horizon) for s in states[1:]]
    best = None
    for leader in itertools.product(range(2), repeat=5):
        results = []
        for choice in itertools.product(range(2), repeat=len(slots)):
            table = dict(zip(slots, choice, strict=True))
            results.append(
                play(payoffs, 0.0, horizon, leader, lambda t, last, o, tb=table: tb[(t, last)])
            )
        f_best = max(r[1] for r in results)
        value = max((r for r in results if r[1] >= f_best - 1e-9), key=lambda r: r[0])
        if best is None or value[0] > best[0]:
            best = value
    return best


def test_markov_oracle_matches_brute_force():
    for seed in (0,):
        env = random_matrix_game(jax.random.key(seed), episode_length=3, memory=True)
        result = exact_stackelberg(env, follower="markov")
        ref = brute_markov(np.asarray(env.params.payoffs), 3)
        np.testing.assert_allclose(
            [result.leader_return, result.follower_return], ref, rtol=0, atol=1e-9
        )


def brute_quantal(payoffs, horizon, tau):
    """Soft backward induction and exact expectations over all follower action sequences."""
    best = None
    for leader in itertools.product(range(2), repeat=5):

        def soft_q(t, last, leader=leader):
            a = leader[observe(last, True, False)[0]]
            q = np.zeros(2)
            for b in range(2):
                q[b] = payoffs[a, b, 1]
                if t + 1 < horizon:
                    nq = soft_q(t + 1, (a, b))
                    q[b] += tau * np.log(np.sum(np.exp(nq / tau)))
            return q

        value = np.zeros(2)
        for seq in itertools.product(range(2), repeat=horizon):
            last, prob, total = None, 1.0, np.zeros(2)
            for t, b in enumerate(seq):
                q = soft_q(t, last)
                prob *= np.exp(q[b] / tau) / np.sum(np.exp(q / tau))
                a = leader[observe(last, True, False)[0]]
                total += payoffs[a, b]
                last = (a, b)
            value += prob * total
        if best is None or value[0] > best[0]:
            best = value
    return best


def test_quantal_oracle_matches_brute_force():
    env = random_matrix_game(jax.random.key(3), episode_length=3, memory=True)
    for tau in (0.3, 2.0):
        result = exact_stackelberg(env, follower="quantal", temperature=tau)
        ref = brute_quantal(np.asarray(env.params.payoffs), 3, tau)
        np.testing.assert_allclose(
            [result.leader_return, result.follower_return], ref, rtol=0, atol=1e-9
        )
    # Vanishing temperature recovers the best response (no ties in a random game).
    cold = exact_stackelberg(env, follower="quantal", temperature=1e-3)
    hard = exact_stackelberg(env, follower="markov")
    np.testing.assert_allclose(cold.leader_return, hard.leader_return, rtol=0, atol=1e-6)


def test_bad_input():
    env = iterated_matrix_game("hero")
    with pytest.raises(ValueError, match="temperature"):
        exact_stackelberg(env, follower="quantal", temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        exact_stackelberg(env, follower="quantal", temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        exact_stackelberg(env, temperature=1.0)
    with pytest.raises(ValueError, match="follower"):
        exact_stackelberg(env, follower="optimal")
    with pytest.raises(TypeError, match="env"):
        exact_stackelberg("hero")
    big = matrix_game(np.zeros((4, 4, 2)), episode_length=2, memory=True)
    with pytest.raises(ValueError, match="env"):
        exact_stackelberg(big)

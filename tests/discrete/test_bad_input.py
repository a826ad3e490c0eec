"""Bad input across the discrete-time API: each case raises the stated exception and names the
argument (the table runs every case eagerly; traced inputs are documented as unchecked)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax.discrete as sd

GAME = sd.random_markov_game(jax.random.key(0), 3, 2, 2, horizon=2, num_features=3)
H, S, A, B = 2, 3, 2, 2
PI = jnp.full((H, S, A), 1 / A)
NU = jnp.full((H, S, A, B), 1 / B)
DATA = sd.collect_dataset(jax.random.key(1), GAME, PI, 4)
FIT = sd.fit_follower_model(GAME, DATA, regularization=1e-2, num_iterations=3)
P = np.full((S, A, B, S), 1 / S)
R = np.zeros((S, A, B))
MAT = np.ones((2, 3))


def _bad_pi():
    return PI.at[0, 0, 0].set(0.9)  # row sums to 1.4


# fmt: off
CASES = [
    # normal form
    ("strong_stackelberg", lambda: sd.strong_stackelberg(MAT, np.ones((3, 2))), ValueError, "follower_payoff"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg(np.ones(3), np.ones(3)), ValueError, "leader_payoff"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg(MAT, np.full((2, 3), np.inf)), ValueError, "follower_payoff"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg(MAT.astype(complex), MAT), TypeError, "leader_payoff"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg("abc", MAT), TypeError, "leader_payoff"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg(MAT, np.full((2, 3), np.nan)), ValueError, "follower_payoff"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(MAT, MAT, 0.0), ValueError, "temperature"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(MAT, MAT, -1.0), ValueError, "temperature"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(MAT, MAT, np.nan), ValueError, "temperature"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(MAT, np.ones((3, 3)), 0.1), ValueError, "follower_payoff"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(np.array([[np.nan, 1, 0], [0, 1, 2.0]]), MAT, 0.1), ValueError, "leader_payoff"),
    # Markov game construction
    ("make_markov_game", lambda: sd.make_markov_game(P[:, :, :, :2], R, R, horizon=2, temperature=0.5), ValueError, "transition"),
    ("make_markov_game", lambda: sd.make_markov_game(P * 2, R, R, horizon=2, temperature=0.5), ValueError, "transition"),
    ("make_markov_game", lambda: sd.make_markov_game(-P, R, R, horizon=2, temperature=0.5), ValueError, "transition"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R[:, :1], R, horizon=2, temperature=0.5), ValueError, "leader_reward"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R[:2], horizon=2, temperature=0.5), ValueError, "follower_reward"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R, horizon=2, temperature=0.0), ValueError, "temperature"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R, horizon=2, temperature=-1.0), ValueError, "temperature"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R, horizon=0, temperature=0.5), ValueError, "horizon"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R, horizon=2, temperature=0.5, initial_distribution=[0.5, 0.6, 0.0]), ValueError, "initial_distribution"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R * np.nan, R, horizon=2, temperature=0.5), ValueError, "leader_reward"),
    # environment
    ("step", lambda: sd.step(jax.random.key(0), sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([2, 0]), GAME), ValueError, "action"),
    ("step", lambda: sd.step(jax.random.key(0), sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([0, -1]), GAME), ValueError, "action"),
    ("step", lambda: sd.step(jax.random.key(0), sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([0, 0, 0]), GAME), ValueError, "action"),
    ("step", lambda: sd.step(jax.random.key(0), sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([0.0, 1.0]), GAME), TypeError, "action"),
    ("rollout", lambda: sd.rollout(jax.random.key(0), GAME, _bad_pi(), NU), ValueError, "leader_policy"),
    ("rollout", lambda: sd.rollout(jax.random.key(0), GAME, PI, NU[..., :1]), ValueError, "follower_policy"),
    ("rollout", lambda: sd.rollout(jax.random.key(0), GAME, PI, NU * 2), ValueError, "follower_policy"),
    # soft response and values
    ("follower_response", lambda: sd.follower_response(GAME, PI[:1]), ValueError, "leader_policy"),
    ("follower_response", lambda: sd.follower_response(GAME, _bad_pi()), ValueError, "leader_policy"),
    ("follower_response", lambda: sd.follower_response(GAME, -PI), ValueError, "leader_policy"),
    ("follower_response", lambda: sd.follower_response(GAME, PI, jnp.ones(2)), ValueError, "follower_parameter"),
    ("follower_response", lambda: sd.follower_response(GAME, PI, jnp.full(3, jnp.nan)), ValueError, "follower_parameter"),
    ("leader_value", lambda: sd.leader_value(GAME, PI[..., :1]), ValueError, "leader_policy"),
    ("leader_value", lambda: sd.leader_value(GAME, _bad_pi()), ValueError, "leader_policy"),
    ("leader_value", lambda: sd.leader_value(GAME, PI, NU[:1]), ValueError, "follower_policy"),
    ("leader_value", lambda: sd.leader_value(GAME, PI, NU * 0.5), ValueError, "follower_policy"),
    ("leader_value", lambda: sd.leader_value(GAME, PI, NU.at[0, 0, 0, 0].set(jnp.nan)), ValueError, "follower_policy"),
    # data and learning
    ("collect_dataset", lambda: sd.collect_dataset(jax.random.key(0), GAME, _bad_pi(), 2), ValueError, "leader_policy"),
    ("collect_dataset", lambda: sd.collect_dataset(jax.random.key(0), GAME, PI, 0), ValueError, "num_episodes"),
    ("collect_dataset", lambda: sd.collect_dataset(jax.random.key(0), GAME, PI, 2.5), TypeError, "num_episodes"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, regularization=0.0), ValueError, "regularization"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, regularization=-1.0), ValueError, "regularization"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, regularization=np.nan), ValueError, "regularization"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, num_iterations=0), ValueError, "num_iterations"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, initial_parameter=jnp.ones(2)), ValueError, "initial_parameter"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(states=DATA.states + 5)), ValueError, "dataset.states"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(follower_actions=DATA.follower_actions - 3)), ValueError, "dataset.follower_actions"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(leader_actions=DATA.leader_actions + 2)), ValueError, "dataset.leader_actions"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(steps=DATA.steps + 2)), ValueError, "dataset.steps"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(leader_policies=DATA.leader_policies * 3)), ValueError, "dataset.leader_policies"),
    ("follower_log_likelihood", lambda: sd.follower_log_likelihood(jnp.ones(4), GAME, DATA), ValueError, "parameter"),
    ("follower_log_likelihood", lambda: sd.follower_log_likelihood(jnp.ones(3), GAME, DATA.replace(states=DATA.states - 9)), ValueError, "dataset.states"),
    ("confidence_radius", lambda: sd.confidence_radius(3, 1.0), ValueError, "confidence"),
    ("confidence_radius", lambda: sd.confidence_radius(3, 0.0), ValueError, "confidence"),
    ("confidence_radius", lambda: sd.confidence_radius(3, "0.9"), TypeError, "confidence"),
    ("confidence_radius", lambda: sd.confidence_radius(0, 0.9), ValueError, "num_features"),
    ("confidence_radius", lambda: sd.confidence_radius(2.5, 0.9), TypeError, "num_features"),
    ("confidence_set", lambda: sd.confidence_set(FIT, radius=-1.0), ValueError, "radius"),
    ("confidence_set", lambda: sd.confidence_set(FIT, radius=np.nan), ValueError, "radius"),
    ("optimistic_value", lambda: sd.optimistic_value(GAME, _bad_pi(), sd.confidence_set(FIT)), ValueError, "leader_policy"),
    ("optimistic_value", lambda: sd.optimistic_value(GAME, PI, sd.confidence_set(FIT), sign=0.5), ValueError, "sign"),
    ("offline_pessimistic_leader", lambda: sd.offline_pessimistic_leader(jax.random.key(0), GAME, DATA, radius=-0.5), ValueError, "radius"),
    ("offline_pessimistic_leader", lambda: sd.offline_pessimistic_leader(jax.random.key(0), GAME, DATA, regularization=0.0), ValueError, "regularization"),
    ("offline_pessimistic_leader", lambda: sd.offline_pessimistic_leader(jax.random.key(0), GAME, DATA, num_restarts=0), ValueError, "num_restarts"),
    ("offline_pessimistic_leader", lambda: sd.offline_pessimistic_leader(jax.random.key(0), GAME, DATA.replace(states=DATA.states + 3)), ValueError, "dataset.states"),
    ("online_optimistic_leader", lambda: sd.online_optimistic_leader(jax.random.key(0), GAME, 0), ValueError, "num_episodes"),
    ("online_optimistic_leader", lambda: sd.online_optimistic_leader(jax.random.key(0), GAME, 3, radius=-1.0), ValueError, "radius"),
    ("online_optimistic_leader", lambda: sd.online_optimistic_leader(jax.random.key(0), GAME, 3, regularization=-0.1), ValueError, "regularization"),
    ("online_optimistic_leader", lambda: sd.online_optimistic_leader(jax.random.key(0), GAME, 3, num_iterations=0), ValueError, "num_iterations"),
    ("dataset_from_trajectories", lambda: sd.dataset_from_trajectories(jax.tree.map(lambda a: a.reshape(2, 4), sd.rollout(jax.random.key(0), sd.random_markov_game(jax.random.key(0), 3, 2, 2, horizon=8), jnp.full((8, 3, 2), 0.5), jnp.full((8, 3, 2, 2), 0.5))), jnp.full((2, 4, 3, 2), 0.7)), ValueError, "leader_policies"),
    # shared soft response
    ("soft_backward", lambda: sd.soft_backward(jnp.zeros((2, 3, 2)), jnp.zeros((2, 3, 3, 3)), 0.1), ValueError, "transition"),
    ("soft_backward", lambda: sd.soft_backward(jnp.zeros((3, 2)), jnp.zeros((3, 2, 3)), 0.1), ValueError, "reward"),
    ("forward_flow", lambda: sd.forward_flow(jnp.ones(2) / 2, jnp.full((2, 3, 2), 0.5), jnp.full((2, 3, 2, 3), 1 / 3)), ValueError, "initial"),
    ("forward_flow", lambda: sd.forward_flow(jnp.ones(3) / 3, jnp.full((2, 3, 2), 0.5), jnp.full((2, 3, 2, 2), 0.5)), ValueError, "transition"),
]
# fmt: on


@pytest.mark.parametrize("name, call, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_argument(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_table_is_large():
    assert len(CASES) >= 70

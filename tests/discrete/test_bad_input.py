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
    ("strong_stackelberg", lambda: sd.strong_stackelberg(MAT, np.ones((3, 2))), ValueError, "`follower_payoff`"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg(np.ones(3), np.ones(3)), ValueError, "`leader_payoff`"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg(MAT, np.full((2, 3), np.inf)), ValueError, "`follower_payoff`"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg(MAT.astype(complex), MAT), TypeError, "`leader_payoff`"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg("abc", MAT), TypeError, "`leader_payoff`"),
    ("strong_stackelberg", lambda: sd.strong_stackelberg(MAT, np.full((2, 3), np.nan)), ValueError, "`follower_payoff`"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(MAT, MAT, 0.0), ValueError, "`temperature`"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(MAT, MAT, -1.0), ValueError, "`temperature`"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(MAT, MAT, np.nan), ValueError, "`temperature`"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(MAT, np.ones((3, 3)), 0.1), ValueError, "`follower_payoff`"),
    ("quantal_stackelberg", lambda: sd.quantal_stackelberg(np.array([[np.nan, 1, 0], [0, 1, 2.0]]), MAT, 0.1), ValueError, "`leader_payoff`"),
    # Markov game construction
    ("make_markov_game", lambda: sd.make_markov_game(P[:, :, :, :2], R, R, horizon=2, temperature=0.5), ValueError, "`transition`"),
    ("make_markov_game", lambda: sd.make_markov_game(P * 2, R, R, horizon=2, temperature=0.5), ValueError, "`transition`"),
    ("make_markov_game", lambda: sd.make_markov_game(-P, R, R, horizon=2, temperature=0.5), ValueError, "`transition`"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R[:, :1], R, horizon=2, temperature=0.5), ValueError, "`leader_reward`"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R[:2], horizon=2, temperature=0.5), ValueError, "`follower_reward`"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R, horizon=2, temperature=0.0), ValueError, "`temperature`"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R, horizon=2, temperature=-1.0), ValueError, "`temperature`"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R, horizon=0, temperature=0.5), ValueError, "`horizon`"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R, R, horizon=2, temperature=0.5, initial_distribution=[0.5, 0.6, 0.0]), ValueError, "`initial_distribution`"),
    ("make_markov_game", lambda: sd.make_markov_game(P, R * np.nan, R, horizon=2, temperature=0.5), ValueError, "`leader_reward`"),
    # environment
    ("step", lambda: sd.step(jax.random.key(0), sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([2, 0]), GAME), ValueError, r"`action\[0\] \(leader action\)` must be in"),
    ("step", lambda: sd.step(jax.random.key(0), sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([0, -1]), GAME), ValueError, r"`action\[1\] \(follower action\)` must be in"),
    ("step", lambda: sd.step(jax.random.key(0), sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([0, 0, 0]), GAME), ValueError, "`action`"),
    ("step", lambda: sd.step(jax.random.key(0), sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([0.0, 1.0]), GAME), TypeError, r"`action\[0\] \(leader action\)` must hold integers"),
    ("rollout", lambda: sd.rollout(jax.random.key(0), GAME, _bad_pi(), NU), ValueError, "`leader_policy`"),
    ("rollout", lambda: sd.rollout(jax.random.key(0), GAME, PI, NU[..., :1]), ValueError, "`follower_policy`"),
    ("rollout", lambda: sd.rollout(jax.random.key(0), GAME, PI, NU * 2), ValueError, "`follower_policy`"),
    # soft response and values
    ("follower_response", lambda: sd.follower_response(GAME, PI[:1]), ValueError, "`leader_policy`"),
    ("follower_response", lambda: sd.follower_response(GAME, _bad_pi()), ValueError, "`leader_policy`"),
    ("follower_response", lambda: sd.follower_response(GAME, -PI), ValueError, "`leader_policy`"),
    ("follower_response", lambda: sd.follower_response(GAME, PI, jnp.ones(2)), ValueError, "`follower_parameter`"),
    ("follower_response", lambda: sd.follower_response(GAME, PI, jnp.full(3, jnp.nan)), ValueError, "`follower_parameter`"),
    ("leader_value", lambda: sd.leader_value(GAME, PI[..., :1]), ValueError, "`leader_policy`"),
    ("leader_value", lambda: sd.leader_value(GAME, _bad_pi()), ValueError, "`leader_policy`"),
    ("leader_value", lambda: sd.leader_value(GAME, PI, NU[:1]), ValueError, "`follower_policy`"),
    ("leader_value", lambda: sd.leader_value(GAME, PI, NU * 0.5), ValueError, "`follower_policy`"),
    ("leader_value", lambda: sd.leader_value(GAME, PI, NU.at[0, 0, 0, 0].set(jnp.nan)), ValueError, "`follower_policy`"),
    # data and learning
    ("collect_dataset", lambda: sd.collect_dataset(jax.random.key(0), GAME, _bad_pi(), 2), ValueError, "`leader_policy`"),
    ("collect_dataset", lambda: sd.collect_dataset(jax.random.key(0), GAME, PI, 0), ValueError, "`num_episodes`"),
    ("collect_dataset", lambda: sd.collect_dataset(jax.random.key(0), GAME, PI, 2.5), TypeError, "`num_episodes`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, regularization=0.0), ValueError, "`regularization`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, regularization=-1.0), ValueError, "`regularization`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, regularization=np.nan), ValueError, "`regularization`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, num_iterations=0), ValueError, "`num_iterations`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA, initial_parameter=jnp.ones(2)), ValueError, "`initial_parameter`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(states=DATA.states + 5)), ValueError, "`dataset.states`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(follower_actions=DATA.follower_actions - 3)), ValueError, "`dataset.follower_actions`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(leader_actions=DATA.leader_actions + 2)), ValueError, "`dataset.leader_actions`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(steps=DATA.steps + 2)), ValueError, "`dataset.steps`"),
    ("fit_follower_model", lambda: sd.fit_follower_model(GAME, DATA.replace(leader_policies=DATA.leader_policies * 3)), ValueError, "`dataset.leader_policies`"),
    ("follower_log_likelihood", lambda: sd.follower_log_likelihood(jnp.ones(4), GAME, DATA), ValueError, "`parameter`"),
    ("follower_log_likelihood", lambda: sd.follower_log_likelihood(jnp.ones(3), GAME, DATA.replace(states=DATA.states - 9)), ValueError, "`dataset.states`"),
    ("confidence_radius", lambda: sd.confidence_radius(3, 1.0), ValueError, "`confidence`"),
    ("confidence_radius", lambda: sd.confidence_radius(3, 0.0), ValueError, "`confidence`"),
    ("confidence_radius", lambda: sd.confidence_radius(3, "0.9"), TypeError, "`confidence`"),
    ("confidence_radius", lambda: sd.confidence_radius(0, 0.9), ValueError, "`num_features`"),
    ("confidence_radius", lambda: sd.confidence_radius(2.5, 0.9), TypeError, "`num_features`"),
    ("confidence_set", lambda: sd.confidence_set(FIT, radius=-1.0), ValueError, "`radius`"),
    ("confidence_set", lambda: sd.confidence_set(FIT, radius=np.nan), ValueError, "`radius`"),
    ("optimistic_value", lambda: sd.optimistic_value(GAME, _bad_pi(), sd.confidence_set(FIT)), ValueError, "`leader_policy`"),
    ("optimistic_value", lambda: sd.optimistic_value(GAME, PI, sd.confidence_set(FIT), sign=0.5), ValueError, "`sign`"),
    ("offline_pessimistic_leader", lambda: sd.offline_pessimistic_leader(jax.random.key(0), GAME, DATA, radius=-0.5), ValueError, "`radius`"),
    ("offline_pessimistic_leader", lambda: sd.offline_pessimistic_leader(jax.random.key(0), GAME, DATA, regularization=0.0), ValueError, "`regularization`"),
    ("offline_pessimistic_leader", lambda: sd.offline_pessimistic_leader(jax.random.key(0), GAME, DATA, num_restarts=0), ValueError, "`num_restarts`"),
    ("offline_pessimistic_leader", lambda: sd.offline_pessimistic_leader(jax.random.key(0), GAME, DATA.replace(states=DATA.states + 3)), ValueError, "`dataset.states`"),
    ("online_optimistic_leader", lambda: sd.online_optimistic_leader(jax.random.key(0), GAME, 0), ValueError, "`num_episodes`"),
    ("online_optimistic_leader", lambda: sd.online_optimistic_leader(jax.random.key(0), GAME, 3, radius=-1.0), ValueError, "`radius`"),
    ("online_optimistic_leader", lambda: sd.online_optimistic_leader(jax.random.key(0), GAME, 3, regularization=-0.1), ValueError, "`regularization`"),
    ("online_optimistic_leader", lambda: sd.online_optimistic_leader(jax.random.key(0), GAME, 3, num_iterations=0), ValueError, "`num_iterations`"),
    ("dataset_from_trajectories", lambda: sd.dataset_from_trajectories(jax.tree.map(lambda a: a.reshape(2, 4), sd.rollout(jax.random.key(0), sd.random_markov_game(jax.random.key(0), 3, 2, 2, horizon=8), jnp.full((8, 3, 2), 0.5), jnp.full((8, 3, 2, 2), 0.5))), jnp.full((2, 4, 3, 2), 0.7)), ValueError, "`leader_policies`"),
    # shared soft response
    ("soft_backward", lambda: sd.soft_backward(jnp.zeros((2, 3, 2)), jnp.zeros((2, 3, 3, 3)), 0.1), ValueError, "`transition`"),
    ("soft_backward", lambda: sd.soft_backward(jnp.zeros((3, 2)), jnp.zeros((3, 2, 3)), 0.1), ValueError, "`reward`"),
    ("forward_flow", lambda: sd.forward_flow(jnp.ones(2) / 2, jnp.full((2, 3, 2), 0.5), jnp.full((2, 3, 2, 3), 1 / 3)), ValueError, "`initial`"),
    ("forward_flow", lambda: sd.forward_flow(jnp.ones(3) / 3, jnp.full((2, 3, 2), 0.5), jnp.full((2, 3, 2, 2), 0.5)), ValueError, "`transition`"),
    ("soft_backward", lambda: sd.soft_backward(jnp.zeros((2, 3, 2)), jnp.full((2, 3, 2, 3), 0.5), 0.1), ValueError, "`transition` must sum to 1"),
    ("soft_backward", lambda: sd.soft_backward(jnp.zeros((2, 3, 2)), -jnp.full((2, 3, 2, 3), 1 / 3), 0.1), ValueError, "`transition` must contain finite non-negative"),
    ("soft_backward", lambda: sd.soft_backward(jnp.zeros((2, 3, 2)), jnp.full((2, 3, 2, 3), 1 / 3), -1.0), ValueError, "`temperature` must be finite and >= 0"),
    ("soft_backward", lambda: sd.soft_backward(jnp.zeros((2, 3, 2)), jnp.full((2, 3, 2, 3), 1 / 3), np.nan), ValueError, "`temperature` must be finite and >= 0"),
    ("forward_flow", lambda: sd.forward_flow(jnp.array([0.5, 0.5, 0.5]), jnp.full((2, 3, 2), 0.5), jnp.full((2, 3, 2, 3), 1 / 3)), ValueError, "`initial` must sum to 1"),
    ("forward_flow", lambda: sd.forward_flow(jnp.ones(3) / 3, jnp.full((2, 3, 2), 0.7), jnp.full((2, 3, 2, 3), 1 / 3)), ValueError, "`policy` must sum to 1"),
    ("forward_flow", lambda: sd.forward_flow(jnp.ones(3) / 3, jnp.full((2, 3, 2), 0.5), jnp.full((2, 3, 2, 3), 0.5)), ValueError, "`transition` must sum to 1"),
    ("forward_flow", lambda: sd.forward_flow(jnp.array([1.5, -0.5, 0.0]), jnp.full((2, 3, 2), 0.5), jnp.full((2, 3, 2, 3), 1 / 3)), ValueError, "`initial` must contain finite non-negative"),
    ("soft_response", lambda: sd.soft_response(jnp.ones(3), -1.0), ValueError, "`temperature` must be finite and >= 0"),
    ("soft_response", lambda: sd.soft_response(jnp.ones(3), np.nan), ValueError, "`temperature` must be finite and >= 0"),
    ("soft_response", lambda: sd.soft_response(jnp.array([0.0, np.nan]), 0.5), ValueError, "`q` must not contain NaN"),
    ("quantal_response", lambda: sd.quantal_response(jnp.array([0.5, 0.6]), MAT, 0.5), ValueError, "`leader_strategy` must sum to 1"),
    ("quantal_response", lambda: sd.quantal_response(jnp.array([0.5, 0.5]), np.ones((3, 2)), 0.5), ValueError, "`follower_payoff` must have shape"),
    ("quantal_response", lambda: sd.quantal_response(jnp.array([0.5, 0.5]), np.full((2, 3), np.nan), 0.5), ValueError, "`follower_payoff` must contain only finite"),
    ("quantal_response", lambda: sd.quantal_response(jnp.array([0.5, 0.5]), MAT, -0.5), ValueError, "`temperature` must be finite and >= 0"),
    ("quantal_response", lambda: sd.quantal_response(jnp.array([0.5, 0.5]), MAT, np.nan), ValueError, "`temperature` must be finite and >= 0"),
    ("quantal_response", lambda: sd.quantal_response(jnp.array([0.5, 0.5]), MAT, np.ones(2)), ValueError, "`temperature` must have 0 dimension"),
    ("quantal_response", lambda: sd.quantal_response("ab", MAT, 0.5), TypeError, "`leader_strategy` must be array-like"),
    # sizes and restarts
    ("random_markov_game", lambda: sd.random_markov_game(jax.random.key(0), 0, 2, 2, horizon=2), ValueError, "`num_states` must be >= 1"),
    ("random_markov_game", lambda: sd.random_markov_game(jax.random.key(0), 3, 2.5, 2, horizon=2), TypeError, "`num_leader_actions` must be an int"),
    ("random_markov_game", lambda: sd.random_markov_game(jax.random.key(0), 3, 2, 0, horizon=2), ValueError, "`num_follower_actions` must be >= 1"),
    ("random_markov_game", lambda: sd.random_markov_game(jax.random.key(0), 3, 2, 2, horizon=2, num_features=0), ValueError, "`num_features` must be >= 1"),
    ("initial_policies", lambda: sd.initial_policies(jax.random.key(0), GAME, 0), ValueError, "`num_restarts` must be >= 1"),
    ("initial_policies", lambda: sd.initial_policies(jax.random.key(0), GAME, 1.5), TypeError, "`num_restarts` must be an int"),
    ("markov_quantal_stackelberg", lambda: sd.markov_quantal_stackelberg(jax.random.key(0), GAME, num_restarts=0), ValueError, "`num_restarts` must be >= 1"),
    ("markov_quantal_stackelberg", lambda: sd.markov_quantal_stackelberg(jax.random.key(0), GAME, num_iterations=-1), ValueError, "`num_iterations` must be >= 0"),
]
# Every keyed function refuses an int or None key before doing any work.
KEYED = [
    ("random_markov_game", lambda k: sd.random_markov_game(k, 3, 2, 2, horizon=2)),
    ("reset", lambda k: sd.reset(k, GAME)),
    ("step", lambda k: sd.step(k, sd.reset(jax.random.key(0), GAME)[1], jnp.asarray([0, 0]), GAME)),
    ("rollout", lambda k: sd.rollout(k, GAME, PI, NU)),
    ("collect_dataset", lambda k: sd.collect_dataset(k, GAME, PI, 2)),
    ("initial_policies", lambda k: sd.initial_policies(k, GAME, 2)),
    ("markov_quantal_stackelberg", lambda k: sd.markov_quantal_stackelberg(k, GAME)),
    ("offline_pessimistic_leader", lambda k: sd.offline_pessimistic_leader(k, GAME, DATA)),
    ("online_optimistic_leader", lambda k: sd.online_optimistic_leader(k, GAME, 3)),
]
CASES += [
    (name, (lambda f=f, bad=bad: f(bad)), TypeError, "`key` must be a JAX PRNG key")
    for name, f in KEYED
    for bad in (0, None)
]
# fmt: on


@pytest.mark.parametrize("name, call, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_argument(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_table_is_large():
    assert len(CASES) >= 70


SOLVERS = ("markov_quantal_stackelberg", "offline_pessimistic_leader", "online_optimistic_leader")
FAST_KEYED = [c for c in KEYED if c[0] not in SOLVERS]  # no solver runs here


@pytest.mark.parametrize("name, call", FAST_KEYED, ids=[c[0] for c in FAST_KEYED])
def test_legacy_uint32_keys_are_accepted(name, call):
    call(jax.random.PRNGKey(0))  # wrapped by as_key, as in the continuous API


def test_key_check_is_trace_time_only_under_jit_and_vmap():
    keys = jax.random.split(jax.random.PRNGKey(1), 3)  # legacy uint32 [3, 2]
    states = jax.jit(jax.vmap(lambda k: sd.rollout(k, GAME, PI, NU).states))(keys)
    typed = jax.vmap(lambda k: sd.rollout(k, GAME, PI, NU).states)(jax.random.wrap_key_data(keys))
    np.testing.assert_array_equal(states, typed)

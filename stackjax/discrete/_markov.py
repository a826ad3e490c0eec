r"""Episodic leader-follower Markov games with a quantal (soft, entropy-regularized) follower.

Model (tabular, time-homogeneous, horizon :math:`H`): states :math:`s \in [S]`, leader actions
:math:`a \in [A]`, follower actions :math:`b \in [B]`, kernel :math:`P(s' | s, a, b)`, leader
reward :math:`r_L(s, a, b)`, follower reward linear in known features,
:math:`r_F(s, a, b) = \phi(s, a, b)^\top \theta` (tabular: one-hot :math:`\phi`), initial law
:math:`\rho`. The leader plays a non-stationary policy :math:`\pi_h(a | s)` (shape ``(H, S, A)``).

The follower answers with a soft (logit) response of temperature :math:`\tau`, computed by soft
backward induction, :math:`V_H = 0`, and :math:`Q_h(s, a, b) = r_F(s, a, b) +
\sum_{s'} P(s' | s, a, b) V_{h+1}(s')` (``myopic_follower``: :math:`Q_h = r_F`):

* ``follower_observes_action=True`` (the follower sees the realized leader action):
  :math:`\nu_h(b | s, a) \propto \exp(Q_h(s, a, b) / \tau)`,
  :math:`V_h(s) = \sum_a \pi_h(a | s)\, \tau \log \sum_b \exp(Q_h(s, a, b) / \tau)`;
* ``follower_observes_action=False`` (the follower responds to the mixed policy):
  :math:`\bar Q_h(s, b) = \sum_a \pi_h(a | s) Q_h(s, a, b)`,
  :math:`\nu_h(b | s) \propto \exp(\bar Q_h(s, b) / \tau)`,
  :math:`V_h(s) = \tau \log \sum_b \exp(\bar Q_h(s, b) / \tau)`.

Follower policies are always stored as ``(H, S, A, B)`` arrays (constant in ``a`` in the
second convention). The leader's value is
:math:`J(\pi) = \rho^\top U_0`, :math:`U_h(s) = \sum_{a, b} \pi_h(a|s) \nu_h(b|s, a)
[r_L(s, a, b) + \sum_{s'} P(s'|s,a,b) U_{h+1}(s')]`, :math:`U_H = 0`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from ._optim import projected_ascent
from ._response import _soft_response
from ._validation import (
    as_float_array,
    as_key,
    check_count,
    check_finite,
    check_index,
    check_policy,
    check_positive,
    check_probability,
    check_shape,
)

__all__ = [
    "EnvState",
    "FollowerResponse",
    "MarkovGame",
    "MarkovStackelbergSolution",
    "Trajectory",
    "follower_response",
    "initial_policies",
    "leader_value",
    "make_markov_game",
    "markov_quantal_stackelberg",
    "random_markov_game",
    "reset",
    "rollout",
    "step",
]


class MarkovGame(struct.PyTreeNode):
    """Parameters of an episodic leader-follower Markov game (a pytree; see module docstring).

    Attributes:
        transition: ``(S, A, B, S)`` kernel ``P[s, a, b, s']``.
        leader_reward: ``(S, A, B)`` leader reward ``r_L``.
        follower_features: ``(S, A, B, d)`` features ``phi`` of the follower's reward.
        follower_parameter: ``(d,)`` the follower's parameter ``theta`` (hidden from learners:
            they only see the follower's sampled actions).
        initial_distribution: ``(S,)`` initial state law ``rho``.
        temperature: scalar ``tau > 0``.
        horizon: static episode length ``H``.
        myopic_follower: static; if True the follower maximizes its immediate reward only.
        follower_observes_action: static; if True the follower sees the leader's realized
            action, otherwise it responds to the leader's mixed policy.
    """

    transition: jax.Array
    leader_reward: jax.Array
    follower_features: jax.Array
    follower_parameter: jax.Array
    initial_distribution: jax.Array
    temperature: jax.Array
    horizon: int = struct.field(pytree_node=False)
    myopic_follower: bool = struct.field(pytree_node=False, default=False)
    follower_observes_action: bool = struct.field(pytree_node=False, default=True)

    @property
    def follower_reward(self) -> jax.Array:
        """``(S, A, B)`` follower reward ``phi @ theta``."""
        return self.follower_features @ self.follower_parameter

    @property
    def num_states(self) -> int:
        return self.transition.shape[0]

    @property
    def num_leader_actions(self) -> int:
        return self.transition.shape[1]

    @property
    def num_follower_actions(self) -> int:
        return self.transition.shape[2]

    @property
    def num_features(self) -> int:
        return self.follower_features.shape[-1]


class EnvState(struct.PyTreeNode):
    """Environment state: current ``state`` index and time ``step`` (int scalars)."""

    state: jax.Array
    step: jax.Array


class FollowerResponse(struct.PyTreeNode):
    """The follower's soft response to a leader policy.

    Attributes:
        policy: ``(H, S, A, B)`` response ``nu_h(b | s, a)``.
        logits: ``(H, S, A, B)`` ``Q_h / tau`` (or ``bar Q_h / tau`` broadcast over ``a``).
        values: ``(H + 1, S)`` soft values ``V_h`` (``V_H = 0``).
    """

    policy: jax.Array
    logits: jax.Array
    values: jax.Array


class MarkovStackelbergSolution(struct.PyTreeNode):
    """Quantal Stackelberg equilibrium of a Markov game.

    Attributes:
        leader_policy: ``(H, S, A)``.
        follower_policy: ``(H, S, A, B)`` the follower's soft response to it.
        leader_value: scalar ``J(pi)``.
        follower_value: scalar soft value ``rho^T V_0`` of the follower.
    """

    leader_policy: jax.Array
    follower_policy: jax.Array
    leader_value: jax.Array
    follower_value: jax.Array


class Trajectory(struct.PyTreeNode):
    """One episode; every field has leading shape ``(H,)`` (ints / floats)."""

    states: jax.Array
    leader_actions: jax.Array
    follower_actions: jax.Array
    leader_rewards: jax.Array
    follower_rewards: jax.Array


# ----------------------------------------------------------------------------------------------
# Construction
# ----------------------------------------------------------------------------------------------


def make_markov_game(
    transition,
    leader_reward,
    follower_reward=None,
    *,
    horizon: int,
    temperature,
    follower_features=None,
    follower_parameter=None,
    initial_distribution=None,
    myopic_follower: bool = False,
    follower_observes_action: bool = True,
) -> MarkovGame:
    """Builds and validates a :class:`MarkovGame`.

    Give either ``follower_reward`` (tabular; features become one-hot of size ``S A B`` and the
    parameter the flattened reward) or both ``follower_features`` and ``follower_parameter``.

    Args:
        transition: ``(S, A, B, S)`` probabilities summing to one over the last axis.
        leader_reward: ``(S, A, B)``.
        follower_reward: ``(S, A, B)`` or None.
        horizon: episode length ``H >= 1``.
        temperature: ``tau > 0``.
        follower_features: ``(S, A, B, d)`` or None.
        follower_parameter: ``(d,)`` or None.
        initial_distribution: ``(S,)`` (default: state 0 with probability one).
        myopic_follower: follower maximizes immediate reward only.
        follower_observes_action: follower sees the leader's realized action.

    Returns:
        The game.

    Raises:
        ValueError: on inconsistent shapes, non-finite entries, bad probabilities, ``tau <= 0``
            or ``horizon < 1``.
    """
    P = as_float_array(transition, "transition")
    dtype = P.dtype
    check_shape(P, "transition", ndim=4)
    S, A, B, S2 = P.shape
    if S2 != S:
        raise ValueError(
            f"`transition` must have shape (S, A, B, S); received {tuple(P.shape)} whose first "
            "and last axes differ. Index it as transition[state, leader, follower, next_state]."
        )
    check_probability(P, "transition")
    r_L = as_float_array(leader_reward, "leader_reward", dtype)
    check_shape(r_L, "leader_reward", shape=(S, A, B))
    check_finite(r_L, "leader_reward")
    if follower_reward is not None:
        if follower_features is not None or follower_parameter is not None:
            raise ValueError(
                "Give either `follower_reward` or (`follower_features`, `follower_parameter`), "
                "not both."
            )
        r_F = as_float_array(follower_reward, "follower_reward", dtype)
        check_shape(r_F, "follower_reward", shape=(S, A, B))
        check_finite(r_F, "follower_reward")
        features = jnp.eye(S * A * B, dtype=dtype).reshape(S, A, B, S * A * B)
        parameter = r_F.reshape(-1)
    else:
        if follower_features is None or follower_parameter is None:
            raise ValueError(
                "`follower_reward` is None, so both `follower_features` (S, A, B, d) and "
                "`follower_parameter` (d,) are required; received None. Pass them."
            )
        features = as_float_array(follower_features, "follower_features", dtype)
        check_shape(features, "follower_features", shape=(S, A, B, None))
        check_finite(features, "follower_features")
        parameter = as_float_array(follower_parameter, "follower_parameter", dtype)
        check_shape(parameter, "follower_parameter", shape=(features.shape[-1],))
        check_finite(parameter, "follower_parameter")
    if initial_distribution is None:
        rho = jnp.zeros((S,), dtype).at[0].set(1.0)
    else:
        rho = as_float_array(initial_distribution, "initial_distribution", dtype)
        check_shape(rho, "initial_distribution", shape=(S,))
        check_probability(rho, "initial_distribution")
    tau = as_float_array(temperature, "temperature", dtype)
    check_shape(tau, "temperature", ndim=0)
    check_positive(tau, "temperature")
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"`horizon` must be an integer >= 1; received {horizon!r}.")
    return MarkovGame(
        transition=P,
        leader_reward=r_L,
        follower_features=features,
        follower_parameter=parameter,
        initial_distribution=rho,
        temperature=tau,
        horizon=int(horizon),
        myopic_follower=bool(myopic_follower),
        follower_observes_action=bool(follower_observes_action),
    )


def random_markov_game(
    key: jax.Array,
    num_states: int,
    num_leader_actions: int,
    num_follower_actions: int,
    *,
    horizon: int,
    temperature: float = 0.5,
    num_features: int | None = None,
    myopic_follower: bool = False,
    follower_observes_action: bool = True,
    dtype=None,
) -> MarkovGame:
    """A random game: Dirichlet(1) transitions, uniform [0, 1] leader rewards.

    Tabular follower (``num_features=None``): uniform [0, 1] rewards with one-hot features.
    Otherwise: standard normal features divided by ``sqrt(d)`` and a standard normal parameter.
    The initial distribution is uniform.

    Inputs are validated when concrete; traced inputs are not.

    Args:
        key: PRNG key (consumed; ``jax.random.key(seed)``).
        num_states, num_leader_actions, num_follower_actions: ``S``, ``A``, ``B`` (ints >= 1).
        horizon: ``H``.
        temperature: ``tau``.
        num_features: ``d`` or None for tabular.
        myopic_follower, follower_observes_action: see :class:`MarkovGame`.
        dtype: float dtype (default float dtype).

    Returns:
        A :class:`MarkovGame`.

    Raises:
        TypeError: if ``key`` is not a PRNG key or a size is not an int.
        ValueError: if a size is < 1 (and the checks of :func:`make_markov_game`).
    """
    key = as_key(key)
    S = check_count(num_states, "num_states")
    A = check_count(num_leader_actions, "num_leader_actions")
    B = check_count(num_follower_actions, "num_follower_actions")
    if num_features is not None:
        num_features = check_count(num_features, "num_features")
    dtype = jnp.result_type(float) if dtype is None else dtype
    k_p, k_l, k_f, k_theta = jax.random.split(key, 4)
    P = jax.random.dirichlet(k_p, jnp.ones((S,), dtype), shape=(S, A, B)).astype(dtype)
    r_L = jax.random.uniform(k_l, (S, A, B), dtype)
    kwargs = dict(
        horizon=horizon,
        temperature=jnp.asarray(temperature, dtype),
        initial_distribution=jnp.full((S,), 1.0 / S, dtype),
        myopic_follower=myopic_follower,
        follower_observes_action=follower_observes_action,
    )
    if num_features is None:
        r_F = jax.random.uniform(k_f, (S, A, B), dtype)
        return make_markov_game(P, r_L, r_F, **kwargs)
    phi = jax.random.normal(k_f, (S, A, B, num_features), dtype) / jnp.sqrt(
        jnp.asarray(num_features, dtype)
    )
    theta = jax.random.normal(k_theta, (num_features,), dtype)
    return make_markov_game(P, r_L, follower_features=phi, follower_parameter=theta, **kwargs)


# ----------------------------------------------------------------------------------------------
# Environment
# ----------------------------------------------------------------------------------------------


def reset(key: jax.Array, params: MarkovGame) -> tuple[jax.Array, EnvState]:
    """Starts an episode: ``s_0 ~ rho``.

    Inputs are validated when concrete; traced inputs are not.
    (The key check runs at trace time only: no run-time work under ``jit``/``vmap``.)

    Args:
        key: PRNG key (consumed).
        params: the game.

    Returns:
        ``(observation, env_state)`` with ``observation`` the int state index.
    """
    key = as_key(key)
    s0 = jax.random.categorical(key, jnp.log(params.initial_distribution))
    return s0, EnvState(state=s0, step=jnp.zeros((), s0.dtype))


def step(key: jax.Array, state: EnvState, action, params: MarkovGame):
    """Advances one step with the joint action ``(leader_action, follower_action)``.

    Inputs are validated when concrete; traced inputs are not.

    Args:
        key: PRNG key (consumed; samples ``s' ~ P(. | s, a, b)``).
        state: current :class:`EnvState`.
        action: int array of shape ``(2,)``: ``[leader_action, follower_action]``.
        params: the game.

    Returns:
        ``(observation, next_state, reward, done, info)``: ``reward`` is the ``(2,)`` array
        ``[r_L, r_F]``; ``done`` is True once ``H`` steps were taken; ``info`` is an empty dict.
    """
    key = as_key(key)
    action = jnp.asarray(action)
    check_shape(action, "action", shape=(2,))
    check_index(action[0], "action[0] (leader action)", params.num_leader_actions)
    check_index(action[1], "action[1] (follower action)", params.num_follower_actions)
    a, b = action[0], action[1]
    s = state.state
    probs = params.transition[s, a, b]
    s_next = jax.random.categorical(key, jnp.log(probs)).astype(s.dtype)
    reward = jnp.stack([params.leader_reward[s, a, b], params.follower_reward[s, a, b]])
    next_state = EnvState(state=s_next, step=state.step + 1)
    done = next_state.step >= params.horizon
    return s_next, next_state, reward, done, {}


def rollout(
    key: jax.Array, game: MarkovGame, leader_policy: jax.Array, follower_policy: jax.Array
) -> Trajectory:
    """Samples one episode with :func:`reset` / :func:`step`.

    Inputs are validated when concrete; traced inputs are not.

    Args:
        key: PRNG key (consumed).
        game: the game.
        leader_policy: ``(H, S, A)``.
        follower_policy: ``(H, S, A, B)``.

    Returns:
        A :class:`Trajectory` of length ``H``.
    """
    key = as_key(key)
    H, S, A, B = game.horizon, game.num_states, game.num_leader_actions, game.num_follower_actions
    check_policy(leader_policy, "leader_policy", (H, S, A))
    check_policy(follower_policy, "follower_policy", (H, S, A, B))
    k_reset, k_steps = jax.random.split(key)
    _, env_state = reset(k_reset, game)
    keys = jax.random.split(k_steps, game.horizon)

    def body(env_state, inputs):
        k, h = inputs
        k_a, k_b, k_s = jax.random.split(k, 3)
        s = env_state.state
        a = jax.random.categorical(k_a, jnp.log(leader_policy[h, s]))
        b = jax.random.categorical(k_b, jnp.log(follower_policy[h, s, a]))
        _, next_state, reward, _, _ = step(k_s, env_state, jnp.stack([a, b]), game)
        return next_state, (s, a, b, reward[0], reward[1])

    _, (s, a, b, r_l, r_f) = jax.lax.scan(body, env_state, (keys, jnp.arange(game.horizon)))
    return Trajectory(
        states=s, leader_actions=a, follower_actions=b, leader_rewards=r_l, follower_rewards=r_f
    )


# ----------------------------------------------------------------------------------------------
# Soft response and leader value
# ----------------------------------------------------------------------------------------------


def follower_response(
    game: MarkovGame, leader_policy: jax.Array, follower_parameter: jax.Array | None = None
) -> FollowerResponse:
    """The follower's soft response by entropy-regularized backward induction.

    See the module docstring for the recursions of both conventions. Differentiable in
    ``leader_policy`` and ``follower_parameter`` (``lax.scan`` over the horizon).

    Args:
        game: the game (its ``follower_parameter`` is used unless one is given).
        leader_policy: ``(H, S, A)`` leader policy.
        follower_parameter: optional ``(d,)`` parameter overriding ``game.follower_parameter``.

    Returns:
        :class:`FollowerResponse` with ``policy``/``logits`` ``(H, S, A, B)`` and ``values``
        ``(H + 1, S)``.
    """
    check_policy(
        leader_policy, "leader_policy", (game.horizon, game.num_states, game.num_leader_actions)
    )
    if follower_parameter is not None:
        check_shape(follower_parameter, "follower_parameter", shape=(game.num_features,))
        check_finite(follower_parameter, "follower_parameter")
    theta = game.follower_parameter if follower_parameter is None else follower_parameter
    r_F = game.follower_features @ theta
    tau = game.temperature
    S, A, B = r_F.shape
    P = game.transition

    def backward(v_next, pi_h):
        if game.myopic_follower:
            q = r_F
        else:
            q = r_F + P @ v_next
        if game.follower_observes_action:
            logits = q / tau
            w = _soft_response(q, tau)[1]  # (S, A)
            v = jnp.sum(pi_h * w, axis=-1)
        else:
            q_bar = jnp.einsum("sa,sab->sb", pi_h, q)
            v = _soft_response(q_bar, tau)[1]
            logits = jnp.broadcast_to((q_bar / tau)[:, None, :], (S, A, B))
        return v, (logits, v)

    v_terminal = jnp.zeros((S,), r_F.dtype)
    _, (logits, values) = jax.lax.scan(backward, v_terminal, leader_policy, reverse=True)
    values = jnp.concatenate([values, v_terminal[None]], axis=0)
    return FollowerResponse(policy=jax.nn.softmax(logits, axis=-1), logits=logits, values=values)


def leader_value(
    game: MarkovGame, leader_policy: jax.Array, follower_policy: jax.Array | None = None
) -> jax.Array:
    """The leader's expected return ``J = rho^T U_0`` (see module docstring).

    Args:
        game: the game.
        leader_policy: ``(H, S, A)``.
        follower_policy: ``(H, S, A, B)``; default: the follower's soft response to
            ``leader_policy`` under ``game.follower_parameter``.

    Returns:
        Scalar leader value.
    """
    H, S, A, B = game.horizon, game.num_states, game.num_leader_actions, game.num_follower_actions
    check_policy(leader_policy, "leader_policy", (H, S, A))
    if follower_policy is None:
        follower_policy = follower_response(game, leader_policy).policy
    check_policy(follower_policy, "follower_policy", (H, S, A, B))
    P = game.transition
    r_L = game.leader_reward

    def backward(u_next, policies):
        pi_h, nu_h = policies
        g = r_L + P @ u_next  # (S, A, B)
        u = jnp.einsum("sa,sab,sab->s", pi_h, nu_h, g)
        return u, None

    u0, _ = jax.lax.scan(
        backward,
        jnp.zeros((game.num_states,), r_L.dtype),
        (leader_policy, follower_policy),
        reverse=True,
    )
    return game.initial_distribution @ u0


def _myopic_observed_dp(game: MarkovGame):
    """Exact QSE when the myopic follower sees the leader's action: ``nu`` is policy-free."""
    nu = jax.nn.softmax(game.follower_reward / game.temperature, axis=-1)
    A = game.num_leader_actions

    def backward(u_next, _):
        g = game.leader_reward + game.transition @ u_next
        qa = jnp.sum(nu * g, axis=-1)  # (S, A)
        pi = jax.nn.one_hot(jnp.argmax(qa, axis=-1), A, dtype=qa.dtype)
        return jnp.max(qa, axis=-1), pi

    _, policy = jax.lax.scan(
        backward,
        jnp.zeros((game.num_states,), game.leader_reward.dtype),
        None,
        length=game.horizon,
        reverse=True,
    )
    return policy


def initial_policies(key: jax.Array, game: MarkovGame, num_restarts: int) -> jax.Array:
    """Deterministic + random starting policies ``(1 + num_restarts, H, S, A)``.

    The first is uniform; then alternately Dirichlet(1) draws and random deterministic
    policies. ``key`` is consumed; ``num_restarts`` is an int >= 1.

    Inputs are validated when concrete; traced inputs are not.
    """
    key = as_key(key)
    num_restarts = check_count(num_restarts, "num_restarts")
    H, S, A = game.horizon, game.num_states, game.num_leader_actions
    dtype = game.leader_reward.dtype
    uniform = jnp.full((1, H, S, A), 1.0 / A, dtype)
    k_d, k_v = jax.random.split(key)
    n_dir = (num_restarts + 1) // 2
    n_det = num_restarts - n_dir
    dirichlet = jax.random.dirichlet(k_d, jnp.ones((A,), dtype), shape=(n_dir, H, S)).astype(dtype)
    vertices = jax.nn.one_hot(jax.random.randint(k_v, (n_det, H, S), 0, A), A, dtype=dtype)
    return jnp.concatenate([uniform, dirichlet, vertices], axis=0)


@functools.partial(jax.jit, static_argnames=("num_restarts", "num_iterations"))
def _markov_qse_impl(key, game, num_restarts, num_iterations):
    if game.myopic_follower and game.follower_observes_action:
        policy = _myopic_observed_dp(game)
    else:
        starts = initial_policies(key, game, num_restarts)
        objective = functools.partial(leader_value, game)
        policies, values = jax.vmap(
            lambda x0: projected_ascent(objective, x0, num_iterations, 0.1)
        )(starts)
        policy = policies[jnp.argmax(values)]
    response = follower_response(game, policy)
    return MarkovStackelbergSolution(
        leader_policy=policy,
        follower_policy=response.policy,
        leader_value=leader_value(game, policy, response.policy),
        follower_value=game.initial_distribution @ response.values[0],
    )


def markov_quantal_stackelberg(
    key: jax.Array, game: MarkovGame, *, num_restarts: int = 8, num_iterations: int = 300
) -> MarkovStackelbergSolution:
    r"""The leader's quantal Stackelberg policy for a known Markov game.

    Maximizes :math:`J(\pi) = \rho^\top U_0^{\pi, \nu(\pi)}` where :math:`\nu(\pi)` is the
    follower's soft response (:func:`follower_response`), i.e. a differentiable bilevel
    problem: ``jax.grad`` flows through both backward inductions (``lax.scan`` over the
    horizon). The policy is optimized directly on the product of simplices by monotone projected
    gradient ascent (:func:`projected_ascent`) from ``1 + num_restarts`` starts (uniform,
    Dirichlet draws, random deterministic policies) and the best end point is returned.
    This is a local method with restarts: no global certificate (the tests compare it with
    exhaustive search over a policy grid on tiny games).

    Exception: with a myopic follower that observes the leader's action, the response does
    not depend on :math:`\pi`, and the problem is solved exactly by backward induction (the
    optimal policy is then deterministic); ``key`` is unused in that case.

    Args:
        key: PRNG key (consumed by the random restarts).
        game: the game (``follower_parameter`` known).
        num_restarts: static number of random restarts (>= 1).
        num_iterations: static ascent iterations per start (>= 0).

    Inputs are validated when concrete; traced inputs are not.

    Returns:
        :class:`MarkovStackelbergSolution`.
    """
    key = as_key(key)
    num_restarts = check_count(num_restarts, "num_restarts")
    num_iterations = check_count(num_iterations, "num_iterations", low=0)
    return _markov_qse_impl(key, game, num_restarts, num_iterations)

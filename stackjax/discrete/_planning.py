r"""Optimistic (online) and pessimistic (offline) leaders planning with the confidence set of
:mod:`stackjax.discrete._learning`.

**Optimism / pessimism.** For a leader policy :math:`\pi`, the value
:math:`J(\pi, \theta)` is replaced by its first-order extreme over the ellipsoid,

.. math::
    J^{\pm}(\pi) = J(\pi, \hat\theta) \pm \beta \,
    \| \nabla_\theta J(\pi, \hat\theta) \|_{\Lambda^{-1}},

(the exact sup / inf over :math:`C` of the linearization of :math:`J` in :math:`\theta`),
maximized over :math:`\pi` by projected gradient ascent through both backward inductions
(second-order autodiff). The online leader plays :math:`\arg\max J^{+}` each episode
(optimism drives exploration of poorly-estimated responses); the offline leader returns
:math:`\arg\max J^{-}` on a fixed dataset (pessimism avoids responses the data does not
support). Both are model-based in the follower's reward; the myopic follower and the full
Markov (far-sighted) follower are handled by the same code.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from ._learning import (
    ConfidenceSet,
    FollowerDataset,
    FollowerModelFit,
    _check_dataset,
    _check_radius,
    _check_regularization,
    _fit_impl,
    confidence_radius,
    confidence_set,
)
from ._markov import (
    MarkovGame,
    follower_response,
    initial_policies,
    leader_value,
    markov_quantal_stackelberg,
    rollout,
)
from ._optim import projected_ascent
from ._validation import (
    as_key,
    check_count,
    check_policy,
)

__all__ = [
    "OfflineLearningResult",
    "OnlineLearningResult",
    "offline_pessimistic_leader",
    "online_optimistic_leader",
    "optimistic_value",
]


class OnlineLearningResult(struct.PyTreeNode):
    """Trace of :func:`online_optimistic_leader` (leading axis: episode ``k``).

    Attributes:
        regret: ``(K,)`` ``J(pi*) - J(pi_k)`` (exact expected values under the true follower).
        leader_values: ``(K,)`` ``J(pi_k)``.
        optimal_value: scalar ``J(pi*)`` of the reference QSE.
        optimistic_values: ``(K,)`` ``J^+(pi_k)`` the leader planned with.
        parameter_estimates: ``(K, d)`` ``theta_hat`` used in episode ``k``.
        leader_policies: ``(K, H, S, A)``.
        dataset: the final :class:`FollowerDataset`.
    """

    regret: jax.Array
    leader_values: jax.Array
    optimal_value: jax.Array
    optimistic_values: jax.Array
    parameter_estimates: jax.Array
    leader_policies: jax.Array
    dataset: FollowerDataset


class OfflineLearningResult(struct.PyTreeNode):
    """Output of :func:`offline_pessimistic_leader`.

    Attributes:
        leader_policy: ``(H, S, A)`` pessimistic policy.
        fit: the :class:`FollowerModelFit`.
        confidence_set: the :class:`ConfidenceSet` used.
        pessimistic_value: scalar ``J^-(pi)``.
        estimated_value: scalar ``J(pi, theta_hat)``.
    """

    leader_policy: jax.Array
    fit: FollowerModelFit
    confidence_set: ConfidenceSet
    pessimistic_value: jax.Array
    estimated_value: jax.Array


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def _optimistic_backward(game, leader_policy, confidence, sign):
    """Optimistic/pessimistic backward induction; greedy over actions if ``leader_policy`` is
    None (only valid when the response does not depend on the policy). Returns (value, policy).
    """
    theta = confidence.center
    H, S, A = game.horizon, game.num_states, game.num_leader_actions
    dtype = game.leader_reward.dtype
    policy_for_response = (
        jnp.full((H, S, A), 1.0 / A, dtype) if leader_policy is None else leader_policy
    )

    def logits_of(th):
        return follower_response(game, policy_for_response, th).logits

    logits = logits_of(theta)
    jac = jax.jacfwd(logits_of)(theta)  # (H, S, A, B, d)
    nu = jax.nn.softmax(logits, axis=-1)
    covariance = jnp.linalg.inv(confidence.precision)
    covariance = 0.5 * (covariance + covariance.T)
    tiny = jnp.finfo(dtype).eps ** 2

    def backward(u_next, xs):
        nu_h, jac_h, pi_h = xs
        g = game.leader_reward + game.transition @ u_next  # (S, A, B)
        mean = jnp.sum(nu_h * g, axis=-1)  # (S, A)
        spread = jnp.max(g, axis=-1) - jnp.min(g, axis=-1)  # (S, A)
        pair = jac_h[:, :, :, None, :] - jac_h[:, :, None, :, :]  # (S, A, B, B, d)
        quad = jnp.einsum("sabcd,de,sabce->sabc", pair, covariance, pair)
        oscillation = confidence.radius * jnp.sqrt(jnp.max(quad, axis=(-2, -1)) + tiny)
        width = 0.25 * spread * oscillation
        q = jnp.clip(mean + sign * width, jnp.min(g, axis=-1), jnp.max(g, axis=-1))
        if pi_h is None:
            greedy = jax.nn.one_hot(jnp.argmax(q, axis=-1), A, dtype=dtype)
            return jnp.max(q, axis=-1), greedy
        return jnp.sum(pi_h * q, axis=-1), pi_h

    xs = (nu, jac, leader_policy)
    u0, policy = jax.lax.scan(backward, jnp.zeros((S,), dtype), xs, reverse=True)
    return game.initial_distribution @ u0, policy


def optimistic_value(
    game: MarkovGame, leader_policy: jax.Array, confidence: ConfidenceSet, sign=1.0
) -> jax.Array:
    r"""Optimistic (``sign=+1``) or pessimistic (``sign=-1``) leader value of a policy.

    Backward induction in which every leader action value receives its own confidence width:

    .. math::
        Q^\pm_h(s, a) = \mathrm{clip}\Big(\bar g \pm \tfrac14 \big(\max_b g - \min_b g\big)\,
        \beta \max_{b, b'} \|\nabla_\theta \ell_{h,b} - \nabla_\theta \ell_{h,b'}\|_{\Lambda^{-1}},
        \ \min_b g,\ \max_b g\Big),

    with :math:`g = r_L + P U^\pm_{h+1}` (shape ``(S, A, B)``), :math:`\bar g = \sum_b
    \hat\nu_h(b|s,a) g(s,a,b)`, logits :math:`\ell_h(s, a, \cdot)` of the follower's response
    at :math:`\hat\theta`, and :math:`U^\pm_h(s) = \sum_a \pi_h(a|s) Q^\pm_h(s, a)`.

    Why this width: along any path of logits, :math:`\frac{d}{dt}\mathbb{E}_{\nu}[g] =
    \mathrm{Cov}_\nu(g, \dot\ell)` and :math:`|\mathrm{Cov}| \le \frac14 \mathrm{range}(g)\,
    \mathrm{osc}(\dot\ell)` (Popoviciu), while for :math:`\theta` in the ellipsoid the
    oscillation of :math:`\ell^\theta - \ell^{\hat\theta}` over ``b`` is at most
    :math:`\beta \max_{b,b'} \|\nabla\ell_b - \nabla\ell_{b'}\|_{\Lambda^{-1}}`. For a myopic
    follower the logits are linear in :math:`\theta`, so the width bounds
    :math:`|\mathbb{E}_{\nu^\theta} g - \mathbb{E}_{\hat\nu} g|` for every :math:`\theta \in C`
    (a valid optimistic / pessimistic value when :math:`\theta^\star \in C`); for a far-sighted
    follower it is the same bound with the logits linearized at :math:`\hat\theta`. Unlike the
    linearized width :math:`\|\nabla_\theta \mathbb{E}_\nu g\|_{\Lambda^{-1}}`, it does not
    vanish where the estimated response is saturated. Widths are chosen per ``(h, s, a)`` (a
    rectangular relaxation, more optimistic / pessimistic than the joint one), enter linearly
    in the policy (so exploring an unvisited action pays off at first order), and the clip
    keeps each value inside the range any response can produce.

    Args:
        game: model (its ``follower_parameter`` is ignored; ``confidence.center`` is used).
        leader_policy: ``(H, S, A)``.
        confidence: :class:`ConfidenceSet`.
        sign: ``+1`` or ``-1``.

    Returns:
        Scalar.
    """
    check_policy(
        leader_policy, "leader_policy", (game.horizon, game.num_states, game.num_leader_actions)
    )
    if not isinstance(sign, jax.Array) and float(sign) not in (1.0, -1.0):
        raise ValueError(f"`sign` must be +1 (optimistic) or -1 (pessimistic), got {sign!r}.")
    _check_radius(confidence.radius)
    value, _ = _optimistic_backward(game, leader_policy, confidence, sign)
    return value


def _plan(key, game, confidence, sign, warm_start, num_restarts, num_iterations):
    if game.myopic_follower and game.follower_observes_action:
        # Response independent of the policy: exact greedy optimistic dynamic programming.
        value, policy = _optimistic_backward(game, None, confidence, sign)
        return policy, value
    starts = initial_policies(key, game, num_restarts)
    if warm_start is not None:
        starts = jnp.concatenate([warm_start[None], starts], axis=0)
    objective = functools.partial(optimistic_value, game, confidence=confidence, sign=sign)
    policies, values = jax.vmap(lambda x0: projected_ascent(objective, x0, num_iterations, 0.1))(
        starts
    )
    best = jnp.argmax(values)
    return policies[best], values[best]


@functools.partial(
    jax.jit,
    static_argnames=("num_restarts", "num_iterations", "newton_iterations"),
)
def _offline_impl(
    key, game, dataset, regularization, radius, num_restarts, num_iterations, newton_iterations
):
    model = game.replace(follower_parameter=jnp.zeros_like(game.follower_parameter))
    fit = _fit_impl(model, dataset, regularization, model.follower_parameter, newton_iterations)
    cset = confidence_set(fit, radius=radius)
    model = model.replace(follower_parameter=fit.parameter)
    policy, value = _plan(key, model, cset, -1.0, None, num_restarts, num_iterations)
    return OfflineLearningResult(
        leader_policy=policy,
        fit=fit,
        confidence_set=cset,
        pessimistic_value=value,
        estimated_value=leader_value(model, policy),
    )


def offline_pessimistic_leader(
    key: jax.Array,
    game: MarkovGame,
    dataset: FollowerDataset,
    *,
    confidence=0.9,
    radius=None,
    regularization=1e-2,
    num_restarts: int = 4,
    num_iterations: int = 150,
    newton_iterations: int = 20,
) -> OfflineLearningResult:
    r"""Pessimistic leader from a fixed dataset: ``argmax_pi J^-(pi)`` (see module docstring).

    Args:
        key: PRNG key (consumed by the planner's random restarts).
        game: the model; its ``follower_parameter`` is **not read** (the follower's reward is
            learned from ``dataset``).
        dataset: observed follower decisions (any behaviour policies).
        confidence: nominal level for the default radius.
        radius: explicit confidence radius ``beta`` (``0`` gives the plug-in leader).
        regularization: ridge ``lambda``.
        num_restarts, num_iterations: planner restarts / ascent iterations (static).
        newton_iterations: static MLE Newton iterations.

    Inputs are validated when concrete; traced inputs are not.

    Returns:
        :class:`OfflineLearningResult`.
    """
    key = as_key(key)
    _check_radius(radius)
    _check_regularization(regularization)
    _check_dataset(game, dataset)
    for name, count in (("num_restarts", num_restarts), ("num_iterations", num_iterations),
                        ("newton_iterations", newton_iterations)):  # fmt: skip
        check_count(count, name)
    if radius is None:
        radius = confidence_radius(game.num_features, confidence)
    dtype = game.follower_features.dtype
    return _offline_impl(
        key,
        game,
        dataset,
        jnp.asarray(regularization, dtype),
        jnp.asarray(radius, dtype),
        int(num_restarts),
        int(num_iterations),
        int(newton_iterations),
    )


@functools.partial(
    jax.jit,
    static_argnames=("num_episodes", "num_restarts", "num_iterations", "newton_iterations"),
)
def _online_impl(
    key,
    game,
    optimal_value,
    regularization,
    radius,
    num_episodes,
    num_restarts,
    num_iterations,
    newton_iterations,
):
    H, S, A = game.horizon, game.num_states, game.num_leader_actions
    dtype = game.leader_reward.dtype
    n = num_episodes * H
    model0 = game.replace(follower_parameter=jnp.zeros_like(game.follower_parameter))
    zeros_i = jnp.zeros((n,), jnp.int32)
    dataset0 = FollowerDataset(
        steps=zeros_i,
        states=zeros_i,
        leader_actions=zeros_i,
        follower_actions=zeros_i,
        episodes=zeros_i,
        mask=jnp.zeros((n,), dtype),
        leader_policies=jnp.full((num_episodes, H, S, A), 1.0 / A, dtype),
    )
    uniform = jnp.full((H, S, A), 1.0 / A, dtype)

    def episode(carry, inputs):
        dataset, theta, previous = carry
        k_plan, k_roll, k = inputs
        fit = _fit_impl(model0, dataset, regularization, theta, newton_iterations)
        cset = confidence_set(fit, radius=radius)
        model = model0.replace(follower_parameter=fit.parameter)
        policy, planned = _plan(k_plan, model, cset, 1.0, previous, num_restarts, num_iterations)
        # The environment: the true follower answers the committed policy.
        nu = follower_response(game, policy).policy
        traj = rollout(k_roll, game, policy, nu)
        start = k * H
        upd = functools.partial(jax.lax.dynamic_update_slice_in_dim, start_index=start, axis=0)
        dataset = dataset.replace(
            steps=upd(dataset.steps, jnp.arange(H, dtype=jnp.int32)),
            states=upd(dataset.states, traj.states.astype(jnp.int32)),
            leader_actions=upd(dataset.leader_actions, traj.leader_actions.astype(jnp.int32)),
            follower_actions=upd(dataset.follower_actions, traj.follower_actions.astype(jnp.int32)),
            episodes=upd(dataset.episodes, jnp.full((H,), k, jnp.int32)),
            mask=upd(dataset.mask, jnp.ones((H,), dtype)),
            leader_policies=dataset.leader_policies.at[k].set(policy),
        )
        value = leader_value(game, policy, nu)
        out = (optimal_value - value, value, planned, fit.parameter, policy)
        return (dataset, fit.parameter, policy), out

    k_plan, k_roll = jax.random.split(key)
    inputs = (
        jax.random.split(k_plan, num_episodes),
        jax.random.split(k_roll, num_episodes),
        jnp.arange(num_episodes),
    )
    (dataset, _, _), (regret, values, planned, thetas, policies) = jax.lax.scan(
        episode, (dataset0, jnp.zeros_like(game.follower_parameter), uniform), inputs
    )
    return OnlineLearningResult(
        regret=regret,
        leader_values=values,
        optimal_value=optimal_value,
        optimistic_values=planned,
        parameter_estimates=thetas,
        leader_policies=policies,
        dataset=dataset,
    )


def online_optimistic_leader(
    key: jax.Array,
    game: MarkovGame,
    num_episodes: int,
    *,
    confidence=0.9,
    radius=None,
    regularization=1e-2,
    optimal_value=None,
    num_restarts: int = 2,
    num_iterations: int = 100,
    newton_iterations: int = 10,
) -> OnlineLearningResult:
    r"""Online optimistic leader (model-based, MLE + Fisher confidence set).

    Episode ``k = 0 .. K-1``: fit :math:`\hat\theta_k` on the data of episodes ``< k``
    (:func:`fit_follower_model`, warm-started), build the confidence set, commit to
    :math:`\pi_k = \arg\max_\pi J^{+}(\pi)` (warm start: :math:`\pi_{k-1}`, plus restarts),
    play one episode against the true follower (environment: ``game``) and record the follower's
    actions. The regret of episode ``k`` is :math:`J(\pi^\star) - J(\pi_k)` with exact expected
    values under the true follower. The whole loop is one ``lax.scan`` (jitted once).

    Args:
        key: PRNG key (consumed: reference QSE, planning restarts, episode sampling).
        game: the true game; the learner uses only its transitions, rewards, features and
            temperature; ``follower_parameter`` is used solely by the environment to draw the
            follower's actions and to compute the regret.
        num_episodes: static ``K``.
        confidence: nominal level for the default radius.
        radius: explicit confidence radius ``beta``.
        regularization: ridge ``lambda``.
        optimal_value: ``J(pi*)`` if known (default: :func:`markov_quantal_stackelberg`).
        num_restarts, num_iterations: planner restarts / ascent iterations per episode (static).
        newton_iterations: static MLE Newton iterations per episode.

    Inputs are validated when concrete; traced inputs are not.

    Returns:
        :class:`OnlineLearningResult`.
    """
    key = as_key(key)
    check_count(num_episodes, "num_episodes")
    _check_radius(radius)
    _check_regularization(regularization)
    for name, count in (("num_restarts", num_restarts), ("num_iterations", num_iterations),
                        ("newton_iterations", newton_iterations)):  # fmt: skip
        check_count(count, name)
    k_ref, k_run = jax.random.split(key)
    if optimal_value is None:
        optimal_value = markov_quantal_stackelberg(k_ref, game).leader_value
    if radius is None:
        radius = confidence_radius(game.num_features, confidence)
    dtype = game.follower_features.dtype
    return _online_impl(
        k_run,
        game,
        jnp.asarray(optimal_value, dtype),
        jnp.asarray(regularization, dtype),
        jnp.asarray(radius, dtype),
        int(num_episodes),
        int(num_restarts),
        int(num_iterations),
        int(newton_iterations),
    )

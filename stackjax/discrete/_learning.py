r"""Learning the follower's reward from its actions; optimistic (online) and pessimistic (offline)
leaders.

The leader knows the transition kernel, its own reward, the follower's temperature and the
follower's reward *features* :math:`\phi(s, a, b) \in \mathbb{R}^d`, but not the follower's
parameter :math:`\theta`. It observes the follower's actions, which are drawn from the soft
response :math:`\nu^{\theta, \pi}_h(b | s, a) \propto \exp(\ell^{\theta, \pi}_h(s, a, b))` with
logits :math:`\ell = Q^{\theta, \pi}_h / \tau` (see :mod:`stackjax.discrete._markov`).

**Maximum likelihood.** For data :math:`\{(k_i, h_i, s_i, a_i, b_i)\}` collected in episodes
played with leader policies :math:`\pi^{k}`,

.. math::
    \hat\theta = \arg\max_\theta \sum_i \log \nu^{\theta, \pi^{k_i}}_{h_i}(b_i | s_i, a_i)
    - \frac{\lambda}{2} \|\theta\|^2 .

**Identification.** Adding :math:`c(s, a)` (any function not depending on ``b``) to the
follower's reward leaves a *myopic* follower's response unchanged, so only the centred reward
:math:`r(s, a, b) - \frac1B \sum_{b'} r(s, a, b')` is identified
(:func:`identified_follower_reward`); with linear features the non-identified directions are
the null space of the Fisher information. The ridge term :math:`\lambda` selects the
minimum-norm representative (its component along unidentified directions is zero) and makes the
precision matrix :math:`\Lambda = I(\hat\theta) + \lambda I_d` invertible; unidentified
directions then get confidence width :math:`\beta / \sqrt\lambda`, harmless because they do not
move the response. For a far-sighted follower the constants also enter continuation values and
are partly identified; the same treatment applies. The temperature is assumed known (only
:math:`\theta / \tau` is identified otherwise).

**Confidence set.** :math:`C = \{\theta : (\theta - \hat\theta)^\top \Lambda (\theta - \hat\theta)
\le \beta^2\}` with the Fisher information :math:`I(\theta) = \sum_i J_i^\top (\mathrm{diag}(p_i)
- p_i p_i^\top) J_i`, :math:`J_i = \partial \ell_i / \partial\theta`, and by default
:math:`\beta^2 = d + 2\sqrt{d \log(1/\delta)} + 2 \log(1/\delta)` (the Laurent-Massart bound on
the :math:`\chi^2_d` quantile; asymptotic coverage :math:`\ge 1 - \delta`).

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
import math

import jax
import jax.numpy as jnp
from flax import struct

from ._markov import (
    MarkovGame,
    Trajectory,
    follower_response,
    initial_policies,
    leader_value,
    markov_quantal_stackelberg,
    rollout,
)
from ._optim import projected_ascent
from ._validation import (
    check_count,
    check_finite,
    check_index,
    check_policy,
    check_positive,
    check_probability,
    check_shape,
)


def _check_dataset(game: MarkovGame, dataset) -> None:
    """Indices of every datum within the game's sizes; behaviour policies on the simplex."""
    H, S = game.horizon, game.num_states
    A, B = game.num_leader_actions, game.num_follower_actions
    check_index(dataset.steps, "dataset.steps", H)
    check_index(dataset.states, "dataset.states", S)
    check_index(dataset.leader_actions, "dataset.leader_actions", A)
    check_index(dataset.follower_actions, "dataset.follower_actions", B)
    check_policy(dataset.leader_policies, "dataset.leader_policies", (None, H, S, A))
    check_index(dataset.episodes, "dataset.episodes", dataset.leader_policies.shape[0])


def _check_regularization(regularization) -> None:
    check_positive(regularization, "regularization", fix="Pass a ridge weight > 0 (e.g. 1e-2).")


def _check_radius(radius) -> None:
    if radius is not None:
        check_positive(radius, "radius", allow_zero=True,
                       fix="Pass a radius >= 0 (0 gives the plug-in leader).")  # fmt: skip


__all__ = [
    "ConfidenceSet",
    "FollowerDataset",
    "FollowerModelFit",
    "OfflineLearningResult",
    "OnlineLearningResult",
    "collect_dataset",
    "confidence_radius",
    "confidence_set",
    "dataset_from_trajectories",
    "fit_follower_model",
    "follower_log_likelihood",
    "identified_follower_reward",
    "offline_pessimistic_leader",
    "online_optimistic_leader",
    "optimistic_value",
]


class FollowerDataset(struct.PyTreeNode):
    """Observed follower decisions (fixed-size buffers with a validity mask).

    Attributes:
        steps: ``(n,)`` int time steps ``h``.
        states: ``(n,)`` int states ``s``.
        leader_actions: ``(n,)`` int leader actions ``a``.
        follower_actions: ``(n,)`` int follower actions ``b``.
        episodes: ``(n,)`` int episode index into ``leader_policies``.
        mask: ``(n,)`` float, 1 for valid entries and 0 for padding.
        leader_policies: ``(K, H, S, A)`` leader policy of each episode.
    """

    steps: jax.Array
    states: jax.Array
    leader_actions: jax.Array
    follower_actions: jax.Array
    episodes: jax.Array
    mask: jax.Array
    leader_policies: jax.Array

    @property
    def size(self) -> jax.Array:
        """Number of valid entries."""
        return jnp.sum(self.mask)


class FollowerModelFit(struct.PyTreeNode):
    """Maximum-likelihood fit of the follower's parameter.

    Attributes:
        parameter: ``(d,)`` penalized MLE ``theta_hat``.
        fisher_information: ``(d, d)`` expected Fisher information at ``theta_hat``.
        log_likelihood: scalar log-likelihood at ``theta_hat`` (without the penalty).
        regularization: scalar ridge ``lambda``.
    """

    parameter: jax.Array
    fisher_information: jax.Array
    log_likelihood: jax.Array
    regularization: jax.Array


class ConfidenceSet(struct.PyTreeNode):
    """Ellipsoid ``{theta : (theta - center)^T precision (theta - center) <= radius^2}``.

    Attributes:
        center: ``(d,)``.
        precision: ``(d, d)`` ``Lambda = I(theta_hat) + lambda I``.
        radius: scalar ``beta``.
    """

    center: jax.Array
    precision: jax.Array
    radius: jax.Array

    def contains(self, parameter: jax.Array) -> jax.Array:
        """Boolean scalar: whether ``parameter`` (``(d,)``) lies in the ellipsoid."""
        diff = parameter - self.center
        return diff @ self.precision @ diff <= self.radius**2

    def width(self, direction: jax.Array) -> jax.Array:
        """``max_{theta in C} direction^T (theta - center) = radius ||direction||_{Lambda^-1}``."""
        return self.radius * jnp.sqrt(direction @ jnp.linalg.solve(self.precision, direction))


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


def dataset_from_trajectories(
    trajectories: Trajectory, leader_policies: jax.Array, episode_mask: jax.Array | None = None
) -> FollowerDataset:
    """Flattens ``K`` episodes into a :class:`FollowerDataset`.

    Args:
        trajectories: :class:`Trajectory` with fields of shape ``(K, H)``.
        leader_policies: ``(K, H, S, A)`` policy used in each episode.
        episode_mask: optional ``(K,)`` 0/1 validity of each episode.

    Returns:
        Dataset with ``n = K H`` entries.
    """
    K, H = trajectories.states.shape
    check_policy(leader_policies, "leader_policies", (K, H, None, None))
    dtype = leader_policies.dtype
    if episode_mask is None:
        episode_mask = jnp.ones((K,), dtype)
    check_shape(jnp.asarray(episode_mask), "episode_mask", shape=(K,))
    check_probability(jnp.stack([episode_mask, 1 - episode_mask], -1), "episode_mask (0 or 1)")
    return FollowerDataset(
        steps=jnp.broadcast_to(jnp.arange(H)[None, :], (K, H)).reshape(-1),
        states=trajectories.states.reshape(-1),
        leader_actions=trajectories.leader_actions.reshape(-1),
        follower_actions=trajectories.follower_actions.reshape(-1),
        episodes=jnp.broadcast_to(jnp.arange(K)[:, None], (K, H)).reshape(-1),
        mask=jnp.broadcast_to(episode_mask.astype(dtype)[:, None], (K, H)).reshape(-1),
        leader_policies=leader_policies,
    )


def collect_dataset(
    key: jax.Array, game: MarkovGame, leader_policy: jax.Array, num_episodes: int
) -> FollowerDataset:
    """Plays ``num_episodes`` episodes with a fixed behaviour policy against the true follower.

    Args:
        key: PRNG key (consumed).
        game: the true game (its ``follower_parameter`` drives the follower's actions).
        leader_policy: ``(H, S, A)`` behaviour policy.
        num_episodes: static number of episodes ``K``.

    Returns:
        :class:`FollowerDataset` with ``K H`` entries.
    """
    check_policy(
        leader_policy, "leader_policy", (game.horizon, game.num_states, game.num_leader_actions)
    )
    num_episodes = check_count(num_episodes, "num_episodes")
    nu = follower_response(game, leader_policy).policy
    keys = jax.random.split(key, num_episodes)
    trajectories = jax.vmap(lambda k: rollout(k, game, leader_policy, nu))(keys)
    policies = jnp.broadcast_to(leader_policy[None], (num_episodes, *leader_policy.shape))
    return dataset_from_trajectories(trajectories, policies)


# ----------------------------------------------------------------------------------------------
# Likelihood and MLE
# ----------------------------------------------------------------------------------------------


def _datum_logits(game: MarkovGame, parameter: jax.Array, dataset: FollowerDataset):
    """``(n, B)`` response logits of every datum under ``parameter``."""
    if game.myopic_follower and game.follower_observes_action:
        logits = (game.follower_features @ parameter) / game.temperature  # (S, A, B)
        return logits[dataset.states, dataset.leader_actions]
    logits = jax.vmap(lambda pi: follower_response(game, pi, parameter).logits)(
        dataset.leader_policies
    )  # (K, H, S, A, B)
    return logits[dataset.episodes, dataset.steps, dataset.states, dataset.leader_actions]


def follower_log_likelihood(
    parameter: jax.Array, game: MarkovGame, dataset: FollowerDataset
) -> jax.Array:
    """Log-likelihood ``sum_i mask_i log nu^theta(b_i | h_i, s_i, a_i)`` of the data.

    Args:
        parameter: ``(d,)`` follower parameter ``theta``.
        game: model (its own ``follower_parameter`` is ignored).
        dataset: the data.

    Returns:
        Scalar log-likelihood.
    """
    check_shape(parameter, "parameter", shape=(game.num_features,))
    _check_dataset(game, dataset)
    logits = _datum_logits(game, parameter, dataset)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    chosen = jnp.take_along_axis(log_p, dataset.follower_actions[:, None], axis=-1)[:, 0]
    return jnp.sum(dataset.mask * chosen)


def _fisher_information(game, parameter, dataset):
    jac = jax.jacfwd(lambda th: _datum_logits(game, th, dataset))(parameter)  # (n, B, d)
    p = jax.nn.softmax(_datum_logits(game, parameter, dataset), axis=-1)  # (n, B)
    mean = jnp.einsum("nb,nbd->nd", p, jac)
    second = jnp.einsum("n,nb,nbd,nbe->de", dataset.mask, p, jac, jac)
    return second - jnp.einsum("n,nd,ne->de", dataset.mask, mean, mean)


@functools.partial(jax.jit, static_argnames=("num_iterations",))
def _fit_impl(game, dataset, regularization, initial_parameter, num_iterations):
    def objective(theta):
        return follower_log_likelihood(theta, game, dataset) - 0.5 * regularization * (
            theta @ theta
        )

    grad = jax.grad(objective)
    hess = jax.hessian(objective)
    steps = 0.5 ** jnp.arange(10, dtype=initial_parameter.dtype)
    steps = jnp.concatenate([steps, jnp.zeros((1,), steps.dtype)])

    def newton(theta, _):
        g = grad(theta)
        eigval, eigvec = jnp.linalg.eigh(-hess(theta))
        eigval = jnp.maximum(eigval, regularization)  # concave case: exact Newton
        direction = eigvec @ ((eigvec.T @ g) / eigval)
        candidates = theta[None, :] + steps[:, None] * direction[None, :]
        values = jax.vmap(objective)(candidates)
        values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
        return candidates[jnp.argmax(values)], None

    theta, _ = jax.lax.scan(newton, initial_parameter, None, length=num_iterations)
    return FollowerModelFit(
        parameter=theta,
        fisher_information=_fisher_information(game, theta, dataset),
        log_likelihood=follower_log_likelihood(theta, game, dataset),
        regularization=jnp.asarray(regularization, theta.dtype),
    )


def fit_follower_model(
    game: MarkovGame,
    dataset: FollowerDataset,
    *,
    regularization=1e-2,
    num_iterations: int = 20,
    initial_parameter: jax.Array | None = None,
) -> FollowerModelFit:
    r"""Penalized maximum-likelihood estimate of the follower's reward parameter.

    Maximizes ``log L(theta) - regularization/2 ||theta||^2`` by Newton's method with the
    Hessian's eigenvalues clipped below by ``regularization`` (exact Newton when the problem is
    concave, which it is for a myopic follower: multinomial logit) and a backtracking grid of
    step sizes (monotone). Then computes the expected Fisher information at the estimate.

    Args:
        game: the model; transitions, rewards, features and temperature are used, its
            ``follower_parameter`` is ignored.
        dataset: observed follower decisions.
        regularization: ridge ``lambda > 0``.
        num_iterations: static number of Newton iterations.
        initial_parameter: ``(d,)`` start (default zeros).

    Returns:
        :class:`FollowerModelFit`.
    """
    d = game.num_features
    dtype = game.follower_features.dtype
    _check_regularization(regularization)
    num_iterations = check_count(num_iterations, "num_iterations")
    _check_dataset(game, dataset)
    if initial_parameter is None:
        initial_parameter = jnp.zeros((d,), dtype)
    check_shape(initial_parameter, "initial_parameter", shape=(d,))
    check_finite(initial_parameter, "initial_parameter")
    return _fit_impl(
        game, dataset, jnp.asarray(regularization, dtype), initial_parameter, int(num_iterations)
    )


def identified_follower_reward(game: MarkovGame, parameter: jax.Array | None = None) -> jax.Array:
    r"""The identified part of the follower's reward, centred over the follower's actions.

    :math:`\tilde r(s, a, b) = r(s, a, b) - \frac1B \sum_{b'} r(s, a, b')` with
    :math:`r = \phi \theta` (``parameter`` defaults to ``game.follower_parameter``).

    Returns:
        ``(S, A, B)`` centred reward.
    """
    theta = game.follower_parameter if parameter is None else parameter
    r = game.follower_features @ theta
    return r - jnp.mean(r, axis=-1, keepdims=True)


def confidence_radius(num_features: int, confidence=0.9) -> float:
    r"""Laurent-Massart upper bound on the ``chi^2_d`` quantile, square-rooted.

    :math:`\beta = \sqrt{d + 2\sqrt{d \log(1/\delta)} + 2\log(1/\delta)}`, ``delta = 1 -
    confidence``.
    """
    num_features = check_count(num_features, "num_features")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise TypeError(f"`confidence` must be a float in (0, 1), got {confidence!r}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}.")
    log_inv = math.log(1.0 / (1.0 - confidence))
    d = num_features
    return math.sqrt(d + 2.0 * math.sqrt(d * log_inv) + 2.0 * log_inv)


def confidence_set(fit: FollowerModelFit, confidence=0.9, radius=None) -> ConfidenceSet:
    """Fisher-information confidence ellipsoid around the MLE.

    Args:
        fit: output of :func:`fit_follower_model`.
        confidence: nominal level ``1 - delta`` used when ``radius`` is None.
        radius: explicit ``beta`` (overrides ``confidence``).

    Returns:
        :class:`ConfidenceSet`.
    """
    d = fit.parameter.shape[0]
    _check_radius(radius)
    if radius is None:
        radius = confidence_radius(d, confidence)
    precision = fit.fisher_information + fit.regularization * jnp.eye(d, dtype=fit.parameter.dtype)
    return ConfidenceSet(
        center=fit.parameter, precision=precision, radius=jnp.asarray(radius, fit.parameter.dtype)
    )


# ----------------------------------------------------------------------------------------------
# Optimistic / pessimistic planning
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

    Returns:
        :class:`OfflineLearningResult`.
    """
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

    Returns:
        :class:`OnlineLearningResult`.
    """
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

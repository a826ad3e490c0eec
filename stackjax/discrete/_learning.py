r"""Learning the follower's reward from its actions: maximum likelihood and a confidence set
(the leaders that plan with it: :mod:`stackjax.discrete._planning`).

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
    rollout,
)
from ._validation import (
    as_key,
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
    "collect_dataset",
    "confidence_radius",
    "confidence_set",
    "dataset_from_trajectories",
    "fit_follower_model",
    "follower_log_likelihood",
    "identified_follower_reward",
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

    Inputs are validated when concrete; traced inputs are not.

    Args:
        key: PRNG key (consumed).
        game: the true game (its ``follower_parameter`` drives the follower's actions).
        leader_policy: ``(H, S, A)`` behaviour policy.
        num_episodes: static number of episodes ``K``.

    Returns:
        :class:`FollowerDataset` with ``K H`` entries.
    """
    key = as_key(key)
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

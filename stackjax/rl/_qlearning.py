"""Stackelberg q-learning in continuous time for control-quadratic games (Jia & Zhou 2023).

Player ``k``'s q-function of a policy pair ``pi = (pi_1, pi_2)`` is
``q_k(t, x, i, u) = d_t J_k + h_k(x, u; grad J_k, Hess J_k) + sum_j Gamma_ij J_{k,j}``: its
pre-Hamiltonian (§3.2) plus the action-free terms of the generator, so it is quadratic in
the joint action ``u = (u_1, u_2)`` with coefficients ``W = [[Rt^11, Rt^12], [Rt^21, Rt^22]]``
and ``rho = E z``. Along any path, whatever the actions taken,
``J_k(t, X_t, alpha_t) + int_0^t (f_k(X, u) - q_k(s, X, alpha, u)) ds`` is a martingale, and
``E_pi[q_k] + lambda_k E_{pi_k}[log pi_k] = 0``. The learner parametrizes ``J_k`` and the
centred action part of ``q_k`` linearly (`stackjax.rl._features`), solves the martingale
orthogonality conditions in closed form (least-squares temporal differences), then improves
both policies at every grid time and regime with `stackjax.pointwise_equilibrium` applied to
the learned coefficients: the follower's Gibbs reaction and the leader's mean against it
(``concept="stackelberg"``), or simultaneous best responses of independent learners
(``concept="nash"``). This is policy iteration; the model is never read.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .. import GaussianPolicy, PreHamiltonian, pointwise_equilibrium
from .._validation import as_key, check_setting
from .._xla_flags import loop_jit
from ._env import Environment, check_environment
from ._evaluation import solve_normal, value_features
from ._features import (
    action_coefficients,
    action_features,
    legendre,
    num_action_features,
    num_quadratic_features,
    pre_hamiltonian_from_coefficients,
    quadratic_features,
)
from ._rollout import rollout

__all__ = ["Config", "GridPolicy", "TrainState", "RLResult", "make_train", "learn", "CONCEPTS"]

CONCEPTS = ("stackelberg", "nash")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the q-learner (static: changing a field recompiles).

    Attributes:
      num_iterations: policy-iteration rounds (each: collect, fit, improve).
      num_episodes: episodes simulated per round (``num_episodes * T / dt`` steps).
      value_basis: Legendre polynomials in time for the values ``J_k``.
      q_basis: Legendre polynomials in time for the q-function coefficients.
      concept: ``"stackelberg"`` (the leader anticipates the follower's reaction) or
        ``"nash"`` (independent learners: each best-responds to the other's current policy).
      exploration: standard deviation of extra behaviour noise added to both players' actions
        (off-policy: the targets stay the Gibbs policies); needed when a temperature is 0.
      temperature_decay: the learners' temperatures are ``lambda * decay^r`` in round ``r``
        (1: no annealing).
      ridge: relative Tikhonov weight of the normal equations.
      counterfactual: also step the (pure) environment from the same state with the same key
        and a second, independent behaviour action, and add the paired orthogonality conditions
        ``E[zeta (J(X'_u) - J(X'_v) + c_u - c_v - (q(u) - q(v)) dt)] = 0``: the common noise
        cancels, so the action dependence of ``q`` is learned at ``O(dt)`` instead of
        ``O(sqrt(dt))`` noise per step. Costs one extra environment step per step (counted in
        ``samples``). Requires only that ``env.step`` is a pure function of its arguments.
    """

    num_iterations: int = 6
    num_episodes: int = 2000
    value_basis: int = 5
    q_basis: int = 3
    concept: str = "stackelberg"
    exploration: float = 0.0
    temperature_decay: float = 1.0
    ridge: float = 1e-9
    counterfactual: bool = True

    def __post_init__(self):
        for name in ("num_iterations", "num_episodes", "value_basis", "q_basis"):
            check_setting(f"Config.{name}", getattr(self, name), "int", 1)
        if self.concept not in CONCEPTS:
            raise ValueError(
                f"Config.concept must be one of {CONCEPTS}, got {self.concept!r}. "
                "Fix: pick one of them."
            )
        check_setting("Config.exploration", self.exploration, "nonnegative")
        check_setting("Config.temperature_decay", self.temperature_decay, "rate")
        check_setting("Config.ridge", self.ridge, "positive")
        check_setting("Config.counterfactual", self.counterfactual, "bool")


class GridPolicy(struct.PyTreeNode):
    """Linear-Gaussian policies on the step grid: ``mu = -(L x + ell)`` for ``u = (u_1, u_2)``.

    Attributes:
      L: [N, m, k1 + k2, d].  ell: [N, m, k1 + k2].
      cov_leader: [N, m, k1, k1].  cov_follower: [N, m, k2, k2].
    """

    L: jax.Array
    ell: jax.Array
    cov_leader: jax.Array
    cov_follower: jax.Array


class TrainState(struct.PyTreeNode):
    """Learner state after a round.

    Attributes:
      q_params: [2, m, Kq, n_q] action coefficients of both q-functions.
      value_params: [2, m, Kv, n_phi] value coefficients (of the policy evaluated last).
      policy: the improved `GridPolicy`.
      temperatures: [2] the learners' current temperatures.
    """

    q_params: jax.Array
    value_params: jax.Array
    policy: GridPolicy
    temperatures: jax.Array


def _equilibrium_at(q_params, psi, x, temperatures, leader_dim, concept):
    """Pointwise equilibrium of the learned q-functions in every regime at one ``(t, x)``."""
    K = q_params.shape[-1]
    d = x.shape[-1]
    kk = _action_dim(K, d)

    def regime(theta):  # theta: [2, Kq, n_q]
        coef = jnp.einsum("a,kan->kn", psi, theta)
        W, E = jax.vmap(lambda c: action_coefficients(c, kk, d))(coef)
        pre = pre_hamiltonian_from_coefficients(W, E, x, leader_dim)
        return pointwise_equilibrium(pre, temperatures, concept=concept)

    return jax.vmap(regime, in_axes=1)(q_params)


def _action_dim(num_features: int, d: int) -> int:
    """Joint action dimension ``K`` from ``n_q = K (K + 1) / 2 + K (d + 1)``."""
    for K in range(1, 64):
        if num_action_features(K, d) == num_features:
            return K
    raise ValueError(f"no action dimension gives {num_features} features at d = {d}")


def _grid_policy(q_params, times, horizon, d, leader_dim, temperatures, concept, previous):
    """Improved `GridPolicy` (affine means read off at x = 0, e_1..e_d); keeps ``previous``
    where the learned coefficients violate well-posedness (non-finite equilibrium)."""
    q_basis = q_params.shape[2]
    points = jnp.concatenate([jnp.zeros((1, d), times.dtype), jnp.eye(d, dtype=times.dtype)])

    def at_time(t):
        psi = legendre(t, horizon, q_basis)
        eq = jax.vmap(
            lambda x: _equilibrium_at(q_params, psi, x, temperatures, leader_dim, concept)
        )(points)  # leaves [d + 1, m, ...]
        mean = jnp.concatenate([eq.mean_leader, eq.mean_follower], axis=-1)  # [d + 1, m, K]
        ell = -mean[0]
        L = -jnp.moveaxis(mean[1:] - mean[0][None], 0, -1)  # [m, K, d]
        return L, ell, eq.cov_leader[0], eq.cov_follower[0]

    L, ell, c1, c2 = jax.vmap(at_time)(times)
    finite = (
        jnp.isfinite(L).all((-1, -2)) & jnp.isfinite(ell).all(-1)
        & jnp.isfinite(c1).all((-1, -2)) & jnp.isfinite(c2).all((-1, -2))
    )  # fmt: skip  # [N, m]
    new = GridPolicy(L=L, ell=ell, cov_leader=c1, cov_follower=c2)
    keep = jax.tree.map(
        lambda a, b: jnp.where(finite.reshape(finite.shape + (1,) * (a.ndim - 2)), a, b),
        new,
        previous,
    )
    return keep, 1.0 - finite.mean()


def _safe_cholesky(cov):
    k = cov.shape[-1]
    zero = jnp.all(cov == 0)
    factor = jnp.linalg.cholesky(jnp.where(zero, jnp.eye(k, dtype=cov.dtype), cov))
    return jnp.where(zero, 0.0, factor)


def _neg_entropy(lam, cov):
    """``lambda E_pi[log pi] = -lambda/2 log det(2 pi e cov)`` (0 when ``lambda = 0``)."""
    k = cov.shape[-1]
    pos = lam > 0
    safe = jnp.where(pos, cov, jnp.eye(k, dtype=cov.dtype))
    return jnp.where(pos, -0.5 * lam * jnp.linalg.slogdet(2 * jnp.pi * jnp.e * safe)[1], 0.0)


def make_train(
    env: Environment,
    config: Config | None = None,
    *,
    callback: Callable | None = None,
    initial_policy: GridPolicy | None = None,
) -> Callable:
    """Builds the pure training function of the q-learner.

    Args:
      env: any `Environment` (validated here with `check_environment`).
      config: a `Config` (default ``Config()``).
      callback: optional ``callback(round, metrics)`` called from inside the compiled loop
        (through `jax.debug.callback`) after every round, for progress output.
      initial_policy: the `GridPolicy` of the first round (default: zero means, covariances
        ``lambda_k / 2 I``).

    Returns:
      ``train(key) -> (TrainState, metrics)``, pure and unjitted; ``metrics`` has a leading
      ``[num_iterations]`` axis: ``q_params``, ``value_params``, ``episode_cost`` [2] (mean
      environment cost per episode), ``fallback`` (fraction of grid points whose learned
      coefficients violated well-posedness), ``temperatures`` [2], ``samples`` (environment
      steps so far). ``jax.jit(jax.vmap(train))(keys)`` runs seeds in parallel.
    """
    config = _check_config(config)
    check_environment(env)
    return _make_train(env, config, callback, initial_policy)


def _check_config(config):
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise TypeError(f"`config` must be a stackjax.rl.Config, got {type(config).__name__}.")
    return config


def _make_train(env, config, callback, initial_policy):
    """`make_train` without the checks (``env.temperatures`` may be traced)."""
    N, dt, T = env.num_steps, env.dt, env.horizon
    m, d, k1, k2 = env.num_regimes, env.state_dim, env.leader_dim, env.follower_dim
    K = k1 + k2
    Kv, Kq = config.value_basis, config.q_basis
    n_phi, n_q = num_quadratic_features(d), num_action_features(K, d)
    FJ, FQ = m * Kv * n_phi, m * Kq * n_q
    B = config.num_episodes
    lam0 = env.temperatures

    def train(key):
        key = as_key(key)
        dtype = jnp.zeros(()).dtype
        lam = jnp.asarray(lam0, dtype)
        eye1, eye2 = jnp.eye(k1, dtype=dtype), jnp.eye(k2, dtype=dtype)
        initial = GridPolicy(
            L=jnp.zeros((N, m, K, d), dtype), ell=jnp.zeros((N, m, K), dtype),
            cov_leader=jnp.broadcast_to(0.5 * lam[0] * eye1, (N, m, k1, k1)),
            cov_follower=jnp.broadcast_to(0.5 * lam[1] * eye2, (N, m, k2, k2)),
        )  # fmt: skip
        if initial_policy is not None:
            initial = jax.tree.map(lambda a: jnp.asarray(a, dtype), initial_policy)
        state = TrainState(
            q_params=jnp.zeros((2, m, Kq, n_q), dtype),
            value_params=jnp.zeros((2, m, Kv, n_phi), dtype),
            policy=initial, temperatures=lam,
        )  # fmt: skip
        keys = jax.random.split(key, config.num_iterations)
        state, metrics = jax.lax.scan(round_, state, (jnp.arange(config.num_iterations), keys))
        return state, metrics

    def round_(state, inputs):
        r, key = inputs
        pol = state.policy
        lam = state.temperatures
        dtype = lam.dtype
        expl = config.exploration**2

        def act(k, n, obs):
            i = obs.regime
            mean = -(pol.L[n, i] @ obs.state + pol.ell[n, i])
            c1 = pol.cov_leader[n, i] + expl * jnp.eye(k1, dtype=dtype)
            c2 = pol.cov_follower[n, i] + expl * jnp.eye(k2, dtype=dtype)
            ka, kb = jax.random.split(k)
            u1 = mean[:k1] + _safe_cholesky(c1) @ jax.random.normal(ka, (k1,), dtype)
            u2 = mean[k1:] + _safe_cholesky(c2) @ jax.random.normal(kb, (k2,), dtype)
            return u1, u2

        batch = rollout(env, act, key, B, act if config.counterfactual else None)
        A, b = _normal_equations(batch, pol, lam)
        theta = solve_normal(A, b, config.ridge)  # [FJ + FQ, 2]
        value_params = jnp.moveaxis(theta[:FJ].reshape(m, Kv, n_phi, 2), -1, 0)
        q_params = jnp.moveaxis(theta[FJ:].reshape(m, Kq, n_q, 2), -1, 0)
        new_lam = lam * config.temperature_decay
        times = batch.times[:-1]
        policy, fallback = _grid_policy(q_params, times, T, d, k1, new_lam, config.concept, pol)
        new = TrainState(
            q_params=q_params, value_params=value_params, policy=policy, temperatures=new_lam
        )
        metrics = {
            "q_params": q_params,
            "value_params": value_params,
            "episode_cost": batch.costs.sum(1).mean(0),
            "fallback": fallback,
            "temperatures": lam,
            "samples": (r + 1) * B * N * (2 if config.counterfactual else 1),
        }
        if callback is not None:
            jax.debug.callback(callback, r, metrics)
        return new, metrics

    def _normal_equations(batch, pol, lam):
        dtype = lam.dtype

        def features(t, x, i, u, n):
            mean = -(pol.L[n, i] @ x + pol.ell[n, i])
            cov = jax.scipy.linalg.block_diag(pol.cov_leader[n, i], pol.cov_follower[n, i])
            qf = action_features(u, mean, cov, x)
            psi = legendre(t, T, Kq)
            onehot = jax.nn.one_hot(i, m, dtype=dtype)
            qfull = (onehot[:, None, None] * psi[None, :, None] * qf[None, None, :]).ravel()
            ent = jnp.stack(
                [_neg_entropy(lam[0], pol.cov_leader[n, i]),
                 _neg_entropy(lam[1], pol.cov_follower[n, i])]
            )  # fmt: skip
            return value_features(t, x, i, T, Kv, m), qfull, ent

        def accumulate(carry, n):
            A, b = carry
            t, tn = batch.times[n], batch.times[n + 1]
            x, xn = batch.states[:, n], batch.states[:, n + 1]
            i, i_next = batch.regimes[:, n], batch.regimes[:, n + 1]
            u = jnp.concatenate([batch.leader_actions[:, n], batch.follower_actions[:, n]], -1)
            phi, qfull, ent = jax.vmap(features, (None, 0, 0, 0, None))(t, x, i, u, n)
            nxt = jax.vmap(lambda x_, i_: value_features(tn, x_, i_, T, Kv, m))(xn, i_next)
            nxt = jnp.where(batch.done[:, n][:, None], 0.0, nxt)
            test = jnp.concatenate([phi, qfull], axis=1)
            design = jnp.concatenate([nxt - phi, -dt * qfull], axis=1)
            # q_k = (centred action part) - lambda_k E log pi_k: the known part joins the costs.
            costs = batch.costs[:, n] + ent * dt
            A = A + test.T @ design
            b = b - test.T @ costs
            if config.counterfactual:
                cf = batch.counterfactual
                v = jnp.concatenate([cf["leader_actions"][:, n], cf["follower_actions"][:, n]], -1)
                _, qv, _ = jax.vmap(features, (None, 0, 0, 0, None))(t, x, i, v, n)
                nv = jax.vmap(lambda x_, i_: value_features(tn, x_, i_, T, Kv, m))(
                    cf["next_states"][:, n], cf["next_regimes"][:, n]
                )
                nv = jnp.where(batch.done[:, n][:, None], 0.0, nv)
                dq = qfull - qv
                # Paired conditions, divided by dt so that both blocks are O(1) per step.
                pair_test = jnp.concatenate([jnp.zeros_like(phi), dq], axis=1)
                pair_design = jnp.concatenate([(nxt - nv) / dt, -dq], axis=1)
                A = A + pair_test.T @ pair_design
                b = b - pair_test.T @ ((batch.costs[:, n] - cf["costs"][:, n]) / dt)
            return (A, b), None

        F = FJ + FQ
        init = (jnp.zeros((F, F), dtype), jnp.zeros((F, 2), dtype))
        (A, b), _ = jax.lax.scan(accumulate, init, jnp.arange(N))
        return A, b

    return train


class RLResult(struct.PyTreeNode):
    """Learned q-functions, values and the equilibrium policies they induce.

    ``.policy(t, x)`` and ``.value(t, x)`` follow the `RiccatiSolution` / `Solution`
    interface, so `stackjax.evaluate`, `stackjax.monte_carlo_cost` and the plots accept it.

    Attributes:
      q_params: [2, m, Kq, n_q].  value_params: [2, m, Kv, n_phi].
      temperatures: [2] temperatures of the returned policies.
      metrics: per-round metrics of `make_train` (leading ``[num_iterations]`` axis).
      horizon, leader_dim, concept: static metadata.
    """

    q_params: jax.Array
    value_params: jax.Array
    temperatures: jax.Array
    metrics: dict
    horizon: float = struct.field(pytree_node=False)
    leader_dim: int = struct.field(pytree_node=False)
    concept: str = struct.field(pytree_node=False, default="stackelberg")

    def policy(self, t, x) -> GaussianPolicy:
        """Equilibrium `GaussianPolicy` (all regimes) of the learned q-functions at ``(t, x)``."""
        psi = legendre(jnp.asarray(t, x.dtype), self.horizon, self.q_params.shape[2])
        eq = _equilibrium_at(
            self.q_params, psi, x, self.temperatures, self.leader_dim, self.concept
        )
        return GaussianPolicy(
            mean_leader=eq.mean_leader, cov_leader=eq.cov_leader,
            mean_follower=eq.mean_follower, cov_follower=eq.cov_follower,
        )  # fmt: skip

    def value(self, t, x) -> jax.Array:
        """[2, m] learned values ``J_{k,i}(t, x)``."""
        psi = legendre(jnp.asarray(t, x.dtype), self.horizon, self.value_params.shape[2])
        return jnp.einsum("kmab,a,b->km", self.value_params, psi, quadratic_features(x))

    def pre_hamiltonian(self, t, x, regime) -> PreHamiltonian:
        """Learned pre-Hamiltonian coefficients (``h0 = 0``) at ``(t, x)`` in ``regime``."""
        psi = legendre(jnp.asarray(t, x.dtype), self.horizon, self.q_params.shape[2])
        coef = jnp.einsum("a,kan->kn", psi, self.q_params[:, regime])
        kk = _action_dim(coef.shape[-1], x.shape[-1])
        W, E = jax.vmap(lambda c: action_coefficients(c, kk, x.shape[-1]))(coef)
        return pre_hamiltonian_from_coefficients(W, E, x, self.leader_dim)


def result_from(state: TrainState, metrics: dict, env: Environment, config: Config) -> RLResult:
    """`RLResult` from the output of ``make_train(env, config)(key)``."""
    return RLResult(
        q_params=state.q_params, value_params=state.value_params,
        temperatures=state.temperatures, metrics=metrics, horizon=env.horizon,
        leader_dim=env.leader_dim, concept=config.concept,
    )  # fmt: skip


def _print_progress(r, metrics):
    cost = metrics["episode_cost"]
    print(
        f"round {int(r) + 1}: {int(metrics['samples'])} steps, episode cost leader "
        f"{float(cost[0]):.4g} follower {float(cost[1]):.4g}, fallback "
        f"{float(metrics['fallback']):.2%}",
        flush=True,
    )


@functools.partial(loop_jit, static_argnames=("static", "config", "callback"))
def _train_program(dynamic, key, *, static, config, callback):
    reset, step, temperatures = dynamic
    env = static._replace(reset=reset, step=step, temperatures=temperatures)
    return _make_train(env, config, callback, None)(key)


def learn(
    env: Environment, key: jax.Array, config: Config | None = None, *, verbose: bool = True
) -> RLResult:
    """Learns the (Stackelberg or Nash) equilibrium of ``env`` from trajectories only.

    Args:
      env: any `Environment`.
      key: PRNG key (consumed).
      config: a `Config` (default ``Config()``).
      verbose: print one line per round.

    Returns:
      An `RLResult`.
    """
    key = as_key(key)
    config = _check_config(config)
    check_environment(env)
    callback = _print_progress if verbose else None
    functions = (env.reset, env.step)
    if all(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in jax.tree.leaves(functions)):
        # reset/step are pytrees of arrays (`sde_env`'s Partials): one compiled program for
        # every environment of the same structure, whatever its coefficients and temperatures.
        static = env._replace(reset=None, step=None, temperatures=None)
        dynamic = (*functions, jnp.asarray(env.temperatures))
        state, metrics = _train_program(
            dynamic, key, static=static, config=config, callback=callback
        )
    else:  # closures: compiled per call
        state, metrics = loop_jit(_make_train(env, config, callback, None))(key)
    return result_from(state, metrics, env, config)

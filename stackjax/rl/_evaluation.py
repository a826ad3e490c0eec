"""Policy evaluation from trajectories in continuous time (Jia & Zhou 2022, martingale approach).

For fixed Gaussian feedback policies of both players, player ``k``'s exploratory cost-to-go
``J_k`` makes ``M_t = J_k(t, X_t, alpha_t) + int_0^t (f_k + lambda_k log pi_k(u_k)) ds`` a
martingale (docs/math.md §2.4, §5.1; the regime is observed, so the increments of ``J_k`` along the
path carry the switching without knowing the generator). Two estimators of a value linear in
its parameters (`stackjax.rl._features`), both linear least-squares problems solved in closed
form:

- ``"martingale"`` — the martingale loss: regress ``J_k(t_n, X_n, alpha_n)`` on the realised
  cost-to-go (Monte Carlo regression; unbiased, higher variance);
- ``"orthogonality"`` — the martingale orthogonality conditions
  ``E sum_n xi_n (J_{n+1} - J_n + cost_n) = 0`` with test functions ``xi_n = dJ_n/dtheta``
  (continuous-time TD; lower variance).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from .._validation import as_key
from .._xla_flags import loop_jit
from ._env import Environment, check_environment
from ._features import legendre, num_quadratic_features, quadratic_features
from ._rollout import Batch, gaussian_log_density, rollout

__all__ = [
    "METHODS",
    "ValueEstimate",
    "evaluate_policy",
    "fit_policy_values",
    "solve_normal",
    "value_features",
]

METHODS = ("orthogonality", "martingale")


def value_features(t, x, regime, horizon: float, time_basis: int, num_regimes: int):
    """[m * K * n_phi] one-hot-in-regime features ``e_i (x) psi(t) (x) phi(x)``."""
    psi = legendre(t, horizon, time_basis)
    phi = quadratic_features(x)
    onehot = jax.nn.one_hot(regime, num_regimes, dtype=x.dtype)
    return (onehot[:, None, None] * psi[None, :, None] * phi[None, None, :]).ravel()


class ValueEstimate(struct.PyTreeNode):
    """Learned values ``J_{k,i}(t, x)`` of both players in every regime.

    Attributes:
      params: [2, m, K, n_phi] coefficients of `value_features`.
      horizon: ``T`` (static).
    """

    params: jax.Array
    horizon: float = struct.field(pytree_node=False)

    def value(self, t, x) -> jax.Array:
        """[2, m] values at ``(t [], x [d])``."""
        psi = legendre(jnp.asarray(t, x.dtype), self.horizon, self.params.shape[2])
        return jnp.einsum("kmab,a,b->km", self.params, psi, quadratic_features(x))


def solve_normal(A: jax.Array, b: jax.Array, ridge: float) -> jax.Array:
    """``(A + ridge * mean|diag A| I)^{-1} b``; a feature never excited gets coefficient 0."""
    scale = jnp.mean(jnp.abs(jnp.diagonal(A)))
    eye = jnp.eye(A.shape[0], dtype=A.dtype)
    return jnp.linalg.solve(A + ridge * jnp.where(scale > 0, scale, 1.0) * eye, b)


def _entropy_costs(env: Environment, policy, batch: Batch) -> jax.Array:
    """[B, N, 2] ``lambda_k log pi_k(u_k) dt`` of the evaluated policies at the taken actions."""
    lam = jnp.asarray(env.temperatures, batch.states.dtype)

    def one(t, x, i, u1, u2):
        pol = policy(t, x).regime(i)
        return jnp.stack(
            [
                gaussian_log_density(u1, pol.mean_leader, pol.cov_leader),
                gaussian_log_density(u2, pol.mean_follower, pol.cov_follower),
            ]
        )

    over_time = jax.vmap(one, in_axes=(0, 0, 0, 0, 0))
    logs = jax.vmap(over_time, in_axes=(None, 0, 0, 0, 0))(
        batch.times[:-1], batch.states[:, :-1], batch.regimes[:, :-1],
        batch.leader_actions, batch.follower_actions,
    )  # fmt: skip
    lam = lam[None, None, :]
    return jnp.where(lam > 0, lam * logs, 0.0) * env.dt


def fit_values(
    env: Environment,
    batch: Batch,
    costs: jax.Array,
    *,
    time_basis: int,
    method: str,
    ridge: float,
) -> jax.Array:
    """[2, m, K, n_phi] value coefficients from a batch and per-step costs ``[B, N, 2]``."""
    m, T = env.num_regimes, env.horizon
    feats = jax.vmap(
        jax.vmap(lambda t, x, i: value_features(t, x, i, T, time_basis, m), (0, 0, 0)),
        (None, 0, 0),
    )
    N = batch.costs.shape[1]
    if method == "martingale":
        to_go = jnp.flip(jnp.cumsum(jnp.flip(costs, 1), 1), 1)  # [B, N, 2]

    def accumulate(carry, n):
        A, b = carry
        phi = feats(batch.times[n][None], batch.states[:, n][:, None], batch.regimes[:, n][:, None])
        phi = phi[:, 0]
        if method == "orthogonality":
            nxt = feats(
                batch.times[n + 1][None], batch.states[:, n + 1][:, None],
                batch.regimes[:, n + 1][:, None],
            )[:, 0]  # fmt: skip
            nxt = jnp.where(batch.done[:, n][:, None], 0.0, nxt)
            A = A + phi.T @ (nxt - phi)
            b = b - phi.T @ costs[:, n]
        else:
            A = A + phi.T @ phi
            b = b + phi.T @ to_go[:, n]
        return (A, b), None

    F = m * time_basis * num_quadratic_features(env.state_dim)
    dtype = batch.states.dtype
    init = (jnp.zeros((F, F), dtype), jnp.zeros((F, 2), dtype))
    (A, b), _ = jax.lax.scan(accumulate, init, jnp.arange(N))
    theta = solve_normal(A, b, ridge)  # [F, 2]
    return jnp.moveaxis(theta.reshape(m, time_basis, -1, 2), -1, 0)


def evaluate_policy(
    env: Environment,
    policy,
    key: jax.Array,
    *,
    num_episodes: int = 1000,
    time_basis: int = 6,
    method: str = "orthogonality",
    ridge: float = 1e-10,
) -> ValueEstimate:
    """Estimates both players' exploratory costs-to-go of fixed Gaussian feedback policies.

    Both players sample ``u_k ~ pi_k(. | t, x, i)`` each step; player ``k`` pays the
    environment's cost plus ``lambda_k log pi_k(u_k) dt`` (its own entropy term). The values
    are fitted as quadratics in ``x`` with Legendre-polynomial time dependence, one per
    player and regime (exact for linear-Gaussian policies of LQ games up to the time basis).

    Args:
      env: the environment (`check_environment` is run on it).
      policy: ``policy(t [], x [d]) -> GaussianPolicy`` (all regimes), e.g.
        ``riccati_reference(game).policy`` or `RLResult.policy`.
      key: PRNG key (consumed).
      num_episodes: episodes simulated.
      time_basis: number of Legendre polynomials in time.
      method: ``"orthogonality"`` (TD test functions) or ``"martingale"`` (martingale loss).
      ridge: relative Tikhonov weight of the normal equations.

    Returns:
      A `ValueEstimate` with ``.value(t, x) -> [2, m]``.
    """
    key = as_key(key)
    check_environment(env)
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    if int(time_basis) < 1 or int(num_episodes) < 1:
        raise ValueError(
            f"`time_basis` and `num_episodes` must be >= 1, got {time_basis}, {num_episodes}."
        )
    params = fit_policy_values(
        env, policy, key, num_episodes=int(num_episodes), time_basis=int(time_basis),
        method=method, ridge=float(ridge),
    )  # fmt: skip
    return ValueEstimate(params=params, horizon=env.horizon)


def fit_policy_values(
    env: Environment,
    policy,
    key: jax.Array,
    *,
    num_episodes: int,
    time_basis: int,
    method: str = "orthogonality",
    ridge: float = 1e-10,
) -> jax.Array:
    """The pure, traceable core of `evaluate_policy` (no validation): [2, m, K, n_phi] params.

    ``jax.jit(jax.vmap(lambda k: fit_policy_values(env, policy, k, ...)))(keys)`` runs
    independent evaluations in one compiled call.
    """
    return _evaluate(env, policy, as_key(key), num_episodes, time_basis, method, ridge)


@loop_jit(static_argnums=(0, 1, 3, 4, 5, 6))
def _evaluate(env, policy, key, num_episodes, time_basis, method, ridge):
    def act(k, n, obs):
        pol = policy(obs.time, obs.state).regime(obs.regime)
        k1, k2 = jax.random.split(k)
        return (
            _sample(k1, pol.mean_leader, pol.cov_leader),
            _sample(k2, pol.mean_follower, pol.cov_follower),
        )

    batch = rollout(env, act, key, num_episodes)
    costs = batch.costs + _entropy_costs(env, policy, batch)
    return fit_values(env, batch, costs, time_basis=time_basis, method=method, ridge=ridge)


def _sample(key, mean, cov):
    """``mean + chol(cov) xi`` (``mean`` when ``cov`` is exactly zero)."""
    k = mean.shape[-1]
    zero = jnp.all(cov == 0)
    factor = jnp.linalg.cholesky(jnp.where(zero, jnp.eye(k, dtype=cov.dtype), cov))
    return mean + jnp.where(zero, 0.0, factor) @ jax.random.normal(key, (k,), mean.dtype)

"""Monte Carlo simulation of the regime-switching exploratory SDE (docs/math.md §2.3, §9.5).

Paths are vmapped, time is scanned. The regime chain is simulated with exponential holding
times (rate ``-Gamma_ii``, jump law ``Gamma_ij / -Gamma_ii``); an Euler step that straddles a
jump is split at the jump time (a second jump inside the same step is applied at the start of
the next step, an ``O(dt^2)`` effect). Works for any game following the
`ControlQuadraticGame` protocol and any policy ``policy(t, x) -> GaussianPolicy``. As in
Euler's scheme, policy and coefficients are frozen at the left end point of each grid step
(the state and regime at the start of each sub-step), an ``O(dt)`` weak error.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from ._gibbs import GaussianPolicy, gaussian_log_density, safe_cholesky
from ._validation import as_key, check_setting, is_concrete, scalar_setting

__all__ = ["Trajectories", "simulate", "monte_carlo_cost", "SCHEMES"]

PolicyFn = Callable[[jax.Array, jax.Array], GaussianPolicy]
SCHEMES = ("sampled", "averaged")


class Trajectories(struct.PyTreeNode):
    """Simulated paths.

    Attributes:
      times: [N + 1] grid ``t_n = n T / N``.
      states: [P, N + 1, d] (empty ``[P, 0, d]`` when not stored).
      regimes: [P, N + 1] regime after each step (empty when not stored).
      costs: [P, 2] realized total costs (running + entropy + terminal) of both players.
    """

    times: jax.Array
    states: jax.Array
    regimes: jax.Array
    costs: jax.Array


def _entropy_payments(game, log_or_ent: jax.Array) -> jax.Array:
    """[2] entropy payments from per-player terms ``e_k`` (``lambda_k log pi_k`` or its mean).

    General sum: each player pays its own. Zero sum (§6): the single criterion charges the
    leader's and credits the maximizer's; the follower's cost is minus the leader's.
    """
    if game.zero_sum:
        leader = log_or_ent[0] - log_or_ent[1]
        return jnp.stack([leader, -leader])
    return log_or_ent


def _euler_substep(game, pol: GaussianPolicy, scheme: str, x, i, h, key):
    """One Euler-Maruyama step of length ``h >= 0`` in regime ``i`` under the regime's
    Gaussian policy ``pol`` (means and covariances, held over the step); returns
    ``(x, running * h)``."""
    coef = game.coefficients(x, i)
    lam = game.temperatures
    k1, k2 = pol.mean_leader.shape[-1], pol.mean_follower.shape[-1]
    n = coef.c.shape[0]
    chol1, chol2 = safe_cholesky(pol.cov_leader), safe_cholesky(pol.cov_follower)
    dtype = x.dtype
    # All of the sub-step's normals in one draw (one counter-based hash instead of six).
    sizes = (n, k1, k2) if scheme == "sampled" else (n, n * k1, n * k2)
    z = jax.random.normal(key, (sum(sizes),), dtype)
    z_w, z_1, z_2 = jnp.split(z, [sizes[0], sizes[0] + sizes[1]])
    dw = jnp.sqrt(h) * z_w
    if scheme == "sampled":
        xi1, xi2 = z_1, z_2
        u1 = pol.mean_leader + chol1 @ xi1
        u2 = pol.mean_follower + chol2 @ xi2
        logs = jnp.stack(
            [
                jnp.where(lam[0] > 0, lam[0] * _safe_log_density(pol.cov_leader, xi1), 0.0),
                jnp.where(lam[1] > 0, lam[1] * _safe_log_density(pol.cov_follower, xi2), 0.0),
            ]
        )
        running = coef.running_cost(u1, u2) + _entropy_payments(game, logs)
        x_new = euler_maruyama(coef, x, u1, u2, h, dw)
    else:
        mu1, mu2 = pol.mean_leader, pol.mean_follower
        exploration = jnp.einsum("kab,ba->k", coef.R11, pol.cov_leader) + jnp.einsum(
            "kab,ba->k", coef.R22, pol.cov_follower
        )
        ents = jnp.stack(
            [_neg_entropy(lam[0], pol.cov_leader), _neg_entropy(lam[1], pol.cov_follower)]
        )
        running = coef.running_cost(mu1, mu2) + exploration + _entropy_payments(game, ents)
        z1 = jnp.sqrt(h) * z_1.reshape(n, k1)
        z2 = jnp.sqrt(h) * z_2.reshape(n, k2)
        noise = (
            dw @ coef.diffusion(mu1, mu2)
            + jnp.einsum("lda,ab,lb->d", coef.D1, chol1, z1)
            + jnp.einsum("lda,ab,lb->d", coef.D2, chol2, z2)
        )
        x_new = x + coef.drift(mu1, mu2) * h + noise
    return x_new, running * h


def euler_maruyama(coef, x, u1, u2, h, dw):
    """[d] Euler-Maruyama update ``x + b(x, u) h + sigma(x, u) dw`` for given actions.

    Args:
      coef: the game's `Coefficients` at ``(x, regime)``.
      x: [d] state; u1: [k1], u2: [k2] actions held over the step.
      h: [] step length; dw: [n] Brownian increments (variance ``h``).
    """
    return x + coef.drift(u1, u2) * h + dw @ coef.diffusion(u1, u2)


def switching_step(game, substep, x, i, clock, h, key):
    """One grid step of length ``h`` with exact regime switching (exponential holding times).

    A step that straddles a jump is split at the jump time: ``substep`` runs in regime ``i``
    until the jump and in the new regime after it (a second jump inside the same step is applied
    at the start of the next step, an ``O(h^2)`` effect).

    Args:
      game: a `ControlQuadraticGame` (only ``generator`` is read).
      substep: ``substep(x, regime, length, key) -> (x, cost [2])``.
      x: [d] state; i: [] regime; clock: [] time left until the next jump.
      h: [] grid step; key: PRNG key (consumed).

    Returns:
      ``(x, regime, clock, cost [2])`` at the end of the step.
    """
    k1, k2, k3, k4 = jax.random.split(key, 4)
    h1 = jnp.clip(clock, 0.0, h)
    x, c1 = substep(x, i, h1, k1)
    jumped = clock <= h
    j = jnp.where(jumped, _jump_target(k2, game, i), i)
    clock = jnp.where(jumped, holding_time(k3, game, j, x.dtype), clock - h)
    h2 = h - h1
    x, c2 = substep(x, j, h2, k4)
    clock = jnp.where(jumped, clock - h2, clock)
    return x, j, clock, c1 + c2


def _safe_log_density(cov, xi):
    k = cov.shape[-1]
    zero = jnp.all(cov == 0)
    return jnp.where(
        zero, 0.0, gaussian_log_density(jnp.where(zero, jnp.eye(k, dtype=cov.dtype), cov), xi)
    )


def _neg_entropy(lam, cov):
    """``-lam/2 log det(2 pi e cov)`` (0 when ``lam = 0``)."""
    k = cov.shape[-1]
    pos = lam > 0
    safe = jnp.where(pos, cov, jnp.eye(k, dtype=cov.dtype))
    return jnp.where(pos, -0.5 * lam * jnp.linalg.slogdet(2 * jnp.pi * jnp.e * safe)[1], 0.0)


def holding_time(key, game, i, dtype):
    """[] exponential holding time of regime ``i`` (``inf`` for an absorbing regime)."""
    rate = -game.generator[i, i]
    e = jax.random.exponential(key, (), dtype)
    return jnp.where(rate > 0, e / jnp.where(rate > 0, rate, 1.0), jnp.inf)


def _jump_target(key, game, i):
    rates = game.generator[i]
    m = rates.shape[0]
    logits = jnp.where(
        (jnp.arange(m) != i) & (rates > 0), jnp.log(jnp.maximum(rates, 1e-300)), -jnp.inf
    )
    return jax.random.categorical(key, logits).astype(jnp.int32)


def _path(game, policy, scheme, num_steps, store, x0, regime0, key):
    T = game.horizon
    dtype = x0.dtype
    h = T / num_steps
    init_key, steps_key = jax.random.split(key)
    carry0 = (x0, regime0, holding_time(init_key, game, regime0, dtype), jnp.zeros(2, dtype))

    def step(carry, inputs):
        x, i, clock, cost = carry
        n, key = inputs
        t = n * h

        # The policy is read once per grid step, at its left point (t, x) and in every regime
        # (one network evaluation, not two): a step split by a jump uses the new regime's
        # policy at that same point for its remainder. Freezing the feedback's input over the
        # split costs O(h1 h2) in the mean on the O(1) jump steps of a path, below Euler's O(h).
        # t is the same for every path, so a time-only part of the policy (Riccati gains) is
        # computed once per step under vmap.
        pol = policy(t, x)

        def substep(x_, i_, length, k):
            return _euler_substep(game, pol.regime(i_), scheme, x_, i_, length, k)

        x, j, clock, c = switching_step(game, substep, x, i, clock, h, key)
        out = (x, j) if store else None
        return (x, j, clock, cost + c), out

    steps = jnp.arange(num_steps, dtype=dtype)
    keys = jax.random.split(steps_key, num_steps)
    (x, i, _, cost), out = jax.lax.scan(step, carry0, (steps, keys))
    cost = cost + game.terminal_cost(x, i)
    return cost, out


def _validate(game, x0, regime0, num_paths, num_steps, scheme):
    if scheme not in SCHEMES:
        raise ValueError(f"`scheme` must be one of {SCHEMES}, got {scheme!r}.")
    check_setting("`num_paths`", scalar_setting(num_paths), "int", 1)
    check_setting("`num_steps`", scalar_setting(num_steps), "int", 1)
    if is_concrete(regime0):
        check_setting("`regime0`", scalar_setting(regime0), "int", 0)
    x0 = game.initial_state if x0 is None else jnp.asarray(x0, dtype=game.initial_state.dtype)
    if x0.shape != (game.state_dim,):
        raise ValueError(f"`x0` must have shape [d] = ({game.state_dim},), got {x0.shape}.")
    if not isinstance(regime0, jax.core.Tracer) and not 0 <= int(regime0) < game.num_regimes:
        raise ValueError(f"`regime0` must be in [0, {game.num_regimes - 1}], got {regime0}.")
    return x0, jnp.asarray(regime0, jnp.int32)


def simulate(
    game,
    policy: PolicyFn,
    key: jax.Array,
    *,
    x0=None,
    regime0: int = 0,
    num_paths: int = 1000,
    num_steps: int = 200,
    scheme: str = "sampled",
    store_paths: bool = True,
) -> Trajectories:
    """Simulates the regime-switching SDE under Gaussian feedback policies (docs/math.md §9.5).

    Args:
      game: a game following the `ControlQuadraticGame` protocol.
      policy: ``policy(t [], x [d]) -> GaussianPolicy`` (all regimes), e.g.
        ``riccati_reference(game).policy`` or a neural `Solution.policy`.
      key: PRNG key (consumed).
      x0: [d] initial state (default ``game.initial_state``).
      regime0: initial regime.
      num_paths: number of independent paths ``P``.
      num_steps: Euler steps ``N`` on ``[0, T]``.
      scheme: ``"sampled"`` (draw ``u_k ~ pi_k`` afresh each step, classical dynamics, pay
        ``f_k(x, u) + lambda_k log pi_k(u_k)``) or ``"averaged"`` (the exploratory dynamics of
        §2.3 with averaged running costs).
      store_paths: keep the states and regimes (memory ``P (N + 1) d``).

    Returns:
      `Trajectories`.
    """
    key = as_key(key)
    x0, regime0 = _validate(game, x0, regime0, num_paths, num_steps, scheme)

    def one(k):
        return _path(game, policy, scheme, int(num_steps), store_paths, x0, regime0, k)

    costs, out = jax.vmap(one)(jax.random.split(key, int(num_paths)))
    times = jnp.linspace(0.0, 1.0, int(num_steps) + 1, dtype=x0.dtype) * game.horizon
    if store_paths:
        xs, regimes = out
        states = jnp.concatenate([jnp.broadcast_to(x0, (num_paths, 1, x0.shape[0])), xs], axis=1)
        regimes = jnp.concatenate(
            [jnp.broadcast_to(regime0, (num_paths, 1)), regimes.astype(jnp.int32)], axis=1
        )
    else:
        states = jnp.zeros((num_paths, 0, x0.shape[0]), x0.dtype)
        regimes = jnp.zeros((num_paths, 0), jnp.int32)
    return Trajectories(times=times, states=states, regimes=regimes, costs=costs)


def monte_carlo_cost(
    game,
    policy: PolicyFn,
    key: jax.Array,
    *,
    x0=None,
    regime0: int = 0,
    num_paths: int = 10_000,
    num_steps: int = 200,
    scheme: str = "sampled",
    richardson: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Monte Carlo estimate of both players' exploratory costs ``J_k(0, x0, regime0)``.

    Same arguments as `simulate` (paths are not stored; ``num_paths >= 2`` for a standard
    error), plus:
      richardson: Richardson extrapolation over two step sizes: ``2 J_2N - J_N`` from
        ``num_paths`` independent paths with ``N = num_steps`` and as many with ``2 N``
        steps (docs/math.md §9.5). The weak bias drops from ``O(T / N)`` to ``O((T / N)^2)``;
        the cost is 3x and the standard error about sqrt(5) x that of one ``N``-step run.

    Returns:
      ``(mean [2], standard_error [2])``; a 95% interval is ``mean ± 1.96 standard_error``.
      Bias: the Euler scheme (and a second regime jump inside one step, applied at the next
      step) biases the plain estimate by ``O(T / num_steps)``, which at the default 200 steps
      and 10^4 or more paths can be as large as the standard error; pass
      ``richardson=True`` for a check whose z-scores are centred.
    """
    key = as_key(key)
    if not isinstance(richardson, bool):
        raise TypeError(f"`richardson` must be a bool, got {richardson!r}.")
    check_setting("`num_paths`", scalar_setting(num_paths), "int", 2)  # a standard error
    args = dict(x0=x0, regime0=regime0, num_paths=num_paths, scheme=scheme)
    if richardson:
        k_coarse, k_fine = jax.random.split(key)
        coarse = _path_costs(game, policy, k_coarse, num_steps=num_steps, **args)
        fine = _path_costs(game, policy, k_fine, num_steps=2 * int(num_steps), **args)
        costs = 2.0 * fine - coarse  # independent pairs: unbiased for 2 E[J_2N] - E[J_N]
    else:
        costs = _path_costs(game, policy, key, num_steps=num_steps, **args)
    mean = costs.mean(axis=0)
    stderr = costs.std(axis=0, ddof=1) / jnp.sqrt(costs.shape[0])
    return mean, stderr


def _path_costs(game, policy, key, **kwargs) -> jax.Array:
    """[P, 2] per-path costs of `simulate` (paths not stored)."""
    return simulate(game, policy, key, store_paths=False, **kwargs).costs

"""Collocation samplers: pure functions of a key (docs/math.md §9.1).

Every sampler returns times ``t [N]`` in ``[0, T)`` and states ``x [N, d]``. Regimes are not
sampled: the residuals of **all** regimes are evaluated at every point (the regime coupling
``sum_j Gamma_ij V_kj`` needs all of them at the same ``(t, x)`` anyway), which is the
stratified design with equal weights.

- `sample_points`: ``t ~ U[0, T]``; ``x ~ N(x0, s^2 I)`` (``"gaussian"``), uniform in the
  box ``x0 + s [-sqrt(3), sqrt(3)]^d`` (``"box"``, same variance per coordinate), or
  ``x = x0 + s u xi`` with ``u ~ U[0, 1]`` and ``xi ~ N(0, I)`` independent (``"multiscale"``:
  distances from ``x0`` spread uniformly over ``[0, ~s sqrt(d)]``; in high dimension the
  Gaussian's states all lie near the sphere of radius ``s sqrt(d)``, so the value near ``x0``
  is extrapolated from that shell).
- `sample_on_policy`: states of the exploratory SDE (§2.3) under given policies, started at
  ``x0`` (plus a small spread) in a uniformly drawn regime, at uniformly drawn grid times.
- `resample_by_residual`: residual-adaptive resampling of a candidate pool (probabilities
  proportional to a power of the residual size, mixed with the uniform law).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._gibbs import safe_cholesky
from ._validation import as_key, check_setting, check_shape, is_concrete, scalar_setting

__all__ = ["SAMPLERS", "sample_points", "sample_on_policy", "resample_by_residual"]

SAMPLERS = ("gaussian", "box", "multiscale")


def sample_points(
    game, key: jax.Array, num_points: int, *, scale: float = 1.0, distribution: str = "gaussian"
) -> tuple[jax.Array, jax.Array]:
    """Uniform times and Gaussian, box or multiscale states around the game's initial state.

    Args:
      game: the game (``horizon``, ``initial_state``).
      key: PRNG key (consumed).
      num_points: ``N >= 0`` (static; ``0`` gives empty arrays).
      scale: standard deviation ``s > 0`` of each state coordinate.
      distribution: ``"gaussian"``, ``"box"`` or ``"multiscale"`` (static; see the module
        docstring: ``s u xi``, per-coordinate variance ``s^2 / 3``).

    Returns:
      ``(t [N], x [N, d])``.
    """
    if distribution not in SAMPLERS:
        raise ValueError(f"`distribution` must be one of {SAMPLERS}, got {distribution!r}.")
    # 0 is allowed: an empty sample (the solver's empty candidate pool when it keeps none).
    check_setting("`num_points`", scalar_setting(num_points), "int", 0)
    if is_concrete(scale):
        check_setting("`scale`", scalar_setting(scale), "positive")
    key = as_key(key)
    dtype = game.initial_state.dtype
    t_key, x_key = jax.random.split(key)
    t = game.horizon * jax.random.uniform(t_key, (num_points,), dtype)
    shape = (num_points, game.state_dim)
    if distribution == "gaussian":
        noise = jax.random.normal(x_key, shape, dtype)
    elif distribution == "multiscale":
        xi_key, u_key = jax.random.split(x_key)
        radius = jax.random.uniform(u_key, (num_points, 1), dtype)
        noise = radius * jax.random.normal(xi_key, shape, dtype)
    else:
        half = jnp.sqrt(jnp.asarray(3.0, dtype))
        noise = jax.random.uniform(x_key, shape, dtype, minval=-half, maxval=half)
    return t, game.initial_state[None, :] + scale * noise


def sample_on_policy(
    game,
    policy: Callable,
    key: jax.Array,
    num_points: int,
    *,
    num_steps: int = 16,
    spread: float = 0.1,
) -> tuple[jax.Array, jax.Array]:
    """States where the game is played: the exploratory SDE under ``policy``.

    ``ceil(N / num_steps)`` paths start at ``x0 + spread * N(0, I)`` in uniformly drawn regimes
    and follow the averaged exploratory dynamics (§2.3, Euler-Maruyama with the square root of
    §2.3) on a uniform grid of ``num_steps`` steps; the regime jumps with probability
    ``Gamma_ij dt`` per step. Every grid state is returned with its time jittered uniformly
    inside its step (so times cover ``[0, T)``).

    Args:
      game: the game.
      policy: ``policy(t, x) -> GaussianPolicy`` (all regimes), e.g. ``Solution.policy``.
      key: PRNG key (consumed).
      num_points: ``N`` (static).
      num_steps: Euler steps per path (static).
      spread: standard deviation of the initial states around ``x0``.

    Returns:
      ``(t [N], x [N, d])``.
    """
    check_setting("`num_points`", scalar_setting(num_points), "int", 1)
    check_setting("`num_steps`", scalar_setting(num_steps), "int", 1)
    if is_concrete(spread):
        check_setting("`spread`", scalar_setting(spread), "nonnegative")
    key = as_key(key)
    num_paths = -(-num_points // num_steps)
    dtype = game.initial_state.dtype
    d, m = game.state_dim, game.num_regimes
    dt = game.horizon / num_steps
    k_init, k_reg, k_path, k_jit = jax.random.split(key, 4)
    start_noise = jax.random.normal(k_init, (num_paths, d), dtype)
    x_start = game.initial_state[None, :] + spread * start_noise
    i_start = jax.random.randint(k_reg, (num_paths,), 0, m)
    jump = jnp.eye(m, dtype=dtype) + dt * game.generator  # one-step transition probabilities

    def path(x, i, k):
        def step(carry, inputs):
            x, i = carry
            n_idx, kk = inputs
            t = n_idx * dt
            pol = policy(t, x).regime(i)
            coef = game.coefficients(x, i)
            kw, ke1, ke2, kj = jax.random.split(kk, 4)
            sigma = coef.diffusion(pol.mean_leader, pol.mean_follower)  # [n, d]
            dw = jnp.sqrt(dt) * jax.random.normal(kw, (sigma.shape[0],), dtype)
            # Exploration noise D^l_a Sigma_a^{1/2} xi (one independent draw per column l).
            l1 = safe_cholesky(pol.cov_leader)
            l2 = safe_cholesky(pol.cov_follower)
            xi1 = jnp.sqrt(dt) * jax.random.normal(ke1, (sigma.shape[0], l1.shape[0]), dtype)
            xi2 = jnp.sqrt(dt) * jax.random.normal(ke2, (sigma.shape[0], l2.shape[0]), dtype)
            explore = jnp.einsum("lda,ab,lb->d", coef.D1, l1, xi1) + jnp.einsum(
                "lda,ab,lb->d", coef.D2, l2, xi2
            )
            drift = coef.drift(pol.mean_leader, pol.mean_follower)
            x_new = x + drift * dt + dw @ sigma + explore
            probs = jnp.clip(jump[i], 0.0, 1.0)
            i_new = jax.random.categorical(kj, jnp.log(probs + 1e-30))
            return (x_new, i_new), x

        idx = jnp.arange(num_steps, dtype=dtype)
        _, xs = jax.lax.scan(step, (x, i), (idx, jax.random.split(k, num_steps)))
        return xs  # [num_steps, d] states at t_0 .. t_{N-1}

    xs = jax.vmap(path)(x_start, i_start, jax.random.split(k_path, num_paths))
    grid = jnp.arange(num_steps, dtype=dtype) * dt
    t = jnp.broadcast_to(grid, (num_paths, num_steps))
    t = t + dt * jax.random.uniform(k_jit, (num_paths, num_steps), dtype)
    x_flat = xs.reshape(num_paths * num_steps, d)[:num_points]
    x_flat = jnp.where(jnp.isfinite(x_flat), x_flat, game.initial_state[None, :])
    return t.reshape(-1)[:num_points], x_flat


def resample_by_residual(
    t: jax.Array,
    x: jax.Array,
    residual_size: jax.Array,
    key: jax.Array,
    num_points: int,
    *,
    power: float = 1.0,
    uniform_weight: float = 0.2,
) -> tuple[jax.Array, jax.Array]:
    """Residual-adaptive resampling of a candidate pool.

    Draws ``num_points`` candidates with replacement with probabilities
    ``(1 - w) r^power / sum r^power + w / N_pool``, where ``r = residual_size`` and ``w =
    uniform_weight`` keeps every region represented.

    Args:
      t: [N_pool] candidate times.  x: [N_pool, d] candidate states.
      residual_size: [N_pool] size of the residual at each candidate (its absolute value is
        used; non-finite entries count as 0).
      key: PRNG key (consumed).
      num_points: number of points drawn (static, >= 1).
      power: exponent of the residual weights, finite and ``>= 0`` (``0``: the uniform law;
        a negative power would favour the smallest residuals and give zero residuals an
        infinite weight).
      uniform_weight: mixing weight of the uniform law in ``[0, 1]``.

    Returns:
      ``(t [num_points], x [num_points, d])``.
    """
    t, x, residual_size = jnp.asarray(t), jnp.asarray(x), jnp.asarray(residual_size)
    check_shape(t, "t", ndim=1)
    if t.shape[0] < 1:
        raise ValueError(
            "`t` must hold at least one candidate, got shape (0,). Fix: pass a non-empty pool."
        )
    check_shape(x, "x", shape=(t.shape[0], None))
    check_shape(residual_size, "residual_size", shape=(t.shape[0],))
    check_setting("`num_points`", scalar_setting(num_points), "int", 1)
    if is_concrete(power):
        check_setting("`power`", scalar_setting(power), "nonnegative")
    if is_concrete(uniform_weight):
        check_setting("`uniform_weight`", scalar_setting(uniform_weight), "fraction")
    key = as_key(key)
    r = jnp.where(jnp.isfinite(residual_size), jnp.abs(residual_size), 0.0) ** power
    total = jnp.sum(r)
    n_pool = t.shape[0]
    adaptive = jnp.where(total > 0, r / jnp.where(total > 0, total, 1.0), 1.0 / n_pool)
    probs = (1.0 - uniform_weight) * adaptive + uniform_weight / n_pool
    idx = jax.random.choice(key, n_pool, (num_points,), p=probs)
    return t[idx], x[idx]

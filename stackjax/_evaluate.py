"""Errors of a candidate solution against a reference (docs/math.md §9.2-9.3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._validation import as_key

__all__ = ["evaluate", "sample_evaluation_points"]


def sample_evaluation_points(game, key, num_points: int, scale: float = 1.0):
    """``t ~ U[0, T]`` [N] and ``x ~ N(x0, scale^2 I_d)`` [N, d] (the default law of §9.1)."""
    t_key, x_key = jax.random.split(key)
    dtype = game.initial_state.dtype
    t = jax.random.uniform(t_key, (num_points,), dtype) * game.horizon
    x = game.initial_state[None, :] + scale * jax.random.normal(
        x_key, (num_points, game.state_dim), dtype
    )
    return t, x


def _relative(diff, ref, axes):
    num = jnp.sqrt(jnp.sum(diff**2, axis=axes))
    den = jnp.sqrt(jnp.sum(ref**2, axis=axes))
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), num)


#: Floor of the denominator of the relative error at ``(0, x0)``, as a fraction of the RMS value.
X0_FLOOR = 0.1


def x0_scale(v0, v):
    """``max(|v0|, X0_FLOOR * RMS(v))``: ``v0 [2, m]`` at ``(0, x0)``, ``v [N, 2, m]`` sampled."""
    return jnp.maximum(jnp.abs(v0), X0_FLOOR * jnp.sqrt(jnp.mean(v**2, axis=0)))


def evaluate(candidate, reference, key, *, num_points: int = 2048, scale: float = 1.0) -> dict:
    """Relative L2 errors of values and policies of ``candidate`` against ``reference``.

    Both arguments need ``.value(t, x) -> [2, m]`` and ``.policy(t, x) -> GaussianPolicy``
    (a `RiccatiSolution`, a neural `Solution`, or your own object) and ``reference.game``.

    Sampling law ``nu``: ``t ~ U[0, T]``, ``x ~ N(x0, scale^2 I_d)``, all regimes at each point.

    Returns:
      A dict with ``value [2, m]`` (relative L2 over ``nu``), ``mean_leader [m]``,
      ``mean_follower [m]`` (Euclidean norm), ``cov_leader [m]``, ``cov_follower [m]``
      (Frobenius norm; absolute when the reference covariance is zero), ``value_at_x0 [2, m]``
      (error at ``(0, x0)`` relative to ``max(|V_ref(0, x0)|, X0_FLOOR * RMS_nu V_ref)``, so a
      value that crosses zero near ``x0`` is measured against a tenth of its typical size),
      ``num_points`` and ``scale``.
    """
    key = as_key(key)
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"`num_points` must be an int >= 1, got {num_points!r}.")
    views = _pytree_view(candidate), _pytree_view(reference)
    if views[0] is not None and views[1] is not None:  # one compiled program per structure
        errors = _errors_jit(*views, key, scale, num_points=int(num_points))
    else:  # objects that are not pytrees of arrays: traced op by op
        errors = _errors(candidate, reference, key, scale, num_points=int(num_points))
    return {
        **errors,
        "num_points": int(num_points),
        "scale": float(scale),
    }


def _errors(candidate, reference, key, scale, *, num_points: int) -> dict:
    game = reference.game
    t, x = sample_evaluation_points(game, key, num_points, scale)

    def at(obj):
        return jax.vmap(obj.value)(t, x), jax.vmap(obj.policy)(t, x)

    v_c, pol_c = at(candidate)
    v_r, pol_r = at(reference)
    x0, t0 = game.initial_state, jnp.zeros((), x.dtype)
    v0_c, v0_r = candidate.value(t0, x0), reference.value(t0, x0)
    return {
        "value": _relative(v_c - v_r, v_r, 0),
        "mean_leader": _relative(pol_c.mean_leader - pol_r.mean_leader, pol_r.mean_leader, (0, 2)),
        "mean_follower": _relative(
            pol_c.mean_follower - pol_r.mean_follower, pol_r.mean_follower, (0, 2)
        ),
        "cov_leader": _relative(pol_c.cov_leader - pol_r.cov_leader, pol_r.cov_leader, (0, 2, 3)),
        "cov_follower": _relative(
            pol_c.cov_follower - pol_r.cov_follower, pol_r.cov_follower, (0, 2, 3)
        ),
        "value_at_x0": jnp.abs(v0_c - v0_r) / x0_scale(v0_r, v_r),
    }


_errors_jit = jax.jit(_errors, static_argnames="num_points")


def _pytree_view(obj):
    """``obj`` as a jit argument (a neural `Solution` without its run records, whose shapes
    change from call to call), or None if it has leaves that are not arrays."""
    if all(hasattr(obj, a) for a in ("history", "diagnostics", "replace")):
        obj = obj.replace(history={}, diagnostics={})
    try:
        leaves = jax.tree.leaves(obj)
        hash(jax.tree.structure(obj))  # static fields must be hashable
    except TypeError:
        return None
    arrays = (jax.Array, np.ndarray, np.generic)
    return obj if all(isinstance(leaf, arrays) for leaf in leaves) else None

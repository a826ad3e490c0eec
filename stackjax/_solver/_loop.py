"""Guarded Adam chunks (`lax.scan`) and the traced result code of a run.

A step whose loss is non-finite or exceeds `DIVERGENCE_FACTOR` times the first loss, or whose
update makes the parameters non-finite, stops training. The loss of step ``s`` is evaluated at
the parameters *before* update ``s``, so a state counts as good only once its own loss has been
seen: the loop carries the last such state and returns it on divergence. The outcome is a
traced result code (`Status.code`), so eager, jitted and vmapped runs report it alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from .._xla_flags import loop_jit
from ._step import make_train_step

__all__ = ["DIVERGENCE_FACTOR", "RESULT_CODES", "Status", "initial_status", "run_chunk"]

#: A loss above this multiple of the first loss counts as divergence (result code 3).
DIVERGENCE_FACTOR = 1e8

#: Result codes of a run (``Status.code``): 0 is success.
RESULT_CODES = {
    0: "ok",
    1: "non-finite loss",
    2: "non-finite parameters after an update",
    3: "loss exploded",
    4: "non-finite Gauss-Newton loss",
}


class Status(struct.PyTreeNode):
    """Outcome of the guarded loop (all leaves traced).

    Attributes:
      code: [] int32 result code (`RESULT_CODES`; 0 while training is healthy).
      step: [] int32 step (or Gauss-Newton iteration) at which training stopped.
      loss: [] loss that stopped it.
      terms: [2, m] residual terms of that loss.
      first_loss: [] loss of the first step (the explosion reference).
    """

    code: jax.Array
    step: jax.Array
    loss: jax.Array
    terms: jax.Array
    first_loss: jax.Array

    @property
    def diverged(self) -> jax.Array:
        return self.code != 0


def initial_status(m: int, dtype) -> Status:
    nan = jnp.asarray(jnp.nan, dtype)
    return Status(
        code=jnp.zeros((), jnp.int32),
        step=jnp.zeros((), jnp.int32),
        loss=nan,
        terms=jnp.full((2, m), jnp.nan, dtype),
        first_loss=nan,
    )


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


@loop_jit(static_argnames=("config", "controlled", "num"))
def run_chunk(game, state, good, status, base_key, stop, *, config, controlled, num):
    """``num`` guarded training steps in one ``lax.scan`` (step keys ``fold_in(key, step)``).

    Steps with ``state.step >= stop`` (a traced bound) are skipped, so a shorter last chunk (or
    a stop after a resume) reuses the compiled chunk of length ``num = chunk_size``; their
    metrics are NaN and are dropped by the caller.

    ``good`` is the last state whose loss was seen finite and not exploded (the initial state
    at the start). Returns ``(state, good, status, metrics)``; after a divergence ``state`` is
    ``good``.
    """
    _, train_step = make_train_step(game, config, controlled=controlled)

    def skip(state, key):
        _, shapes = jax.eval_shape(train_step, state, key)
        return state, jax.tree.map(lambda a: jnp.full(a.shape, jnp.nan, a.dtype), shapes)

    def body(carry, _):
        state, status, good = carry
        active = (state.step < stop) & (status.code == 0)
        new, metrics = jax.lax.cond(
            active, train_step, skip, state, jax.random.fold_in(base_key, state.step)
        )
        loss = metrics["loss"]
        first = jnp.where(jnp.isnan(status.first_loss) & active, loss, status.first_loss)
        loss_ok = jnp.isfinite(loss) & ~(loss > DIVERGENCE_FACTOR * first)
        params_ok = _all_finite(new.params)
        code = jnp.where(
            ~jnp.isfinite(loss), 1, jnp.where(~loss_ok, 3, jnp.where(~params_ok, 2, 0))
        ).astype(jnp.int32)
        now = active & (code != 0)
        status = Status(
            code=jnp.where(now, code, status.code),
            step=jnp.where(now, state.step, status.step),
            loss=jnp.where(now, loss, status.loss),
            terms=jnp.where(now, metrics["residual"], status.terms),
            first_loss=first,
        )
        # `state`'s own loss is `loss`: once it is fine, `state` is the last good state.
        good = _select(active & loss_ok, state, good)
        # Healthy step: take the update. Bad update: stay. Bad loss: back to the last good.
        state = _select(active & (code == 0), new, state)
        state = _select(now & ~loss_ok, good, state)
        return (state, status, good), metrics

    (state, status, good), metrics = jax.lax.scan(body, (state, status, good), None, length=num)
    return state, good, status, metrics


def _select(condition, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)

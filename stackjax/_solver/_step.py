"""The training state, the collocation batch and the Adam training step.

Loss: the normalised residuals ``R_{k,i} T / S_{k,i}`` (`NetworkValue.residual_vector`),
squared and averaged over points, players and regimes (plus the weighted state-gradient rows).
The terminal condition is exact by construction (`_networks`), so there is no terminal term.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import struct

from .._sampling import sample_points
from .._sharding import make_data_mesh, shard_points
from .._validation import as_key
from ._config import SolverConfig
from ._defaults import (
    cast_game,
    default_learning_rate,
    detect_controlled,
    float_dtype,
    resolve_config,
)
from ._networks import Normalization, estimate_normalization
from ._value import NetworkValue, value_model

__all__ = ["TrainState", "make_train_step", "sample_batch"]


class TrainState(struct.PyTreeNode):
    """Resumable training state.

    Attributes:
      params: network parameters (leading ``[m]`` axis on every leaf).
      opt_state: optax state.
      step: [] int32 number of Adam steps taken.
      refine_step: [] int32 number of Gauss-Newton iterations taken.
      damping: [] Levenberg-Marquardt damping of the refinement.
      norm: `Normalization` of the networks (fixed at initialisation).
      pool_t: [P] times of the on-policy / adaptive pool (``P = 0`` when unused).
      pool_x: [P, d] states of the pool.
      best_params: the best Gauss-Newton iterate so far (by the loss on the refinement's
        fixed evaluation batch; equal to ``params`` before the refinement).
      best_loss: [] its evaluation loss (``inf`` before the refinement).
      best_step: [] int32 its iteration (``-1``: the parameters the refinement started from).
    """

    params: dict
    opt_state: optax.OptState
    step: jax.Array
    refine_step: jax.Array
    damping: jax.Array
    norm: Normalization
    pool_t: jax.Array
    pool_x: jax.Array
    best_params: dict
    best_loss: jax.Array
    best_step: jax.Array


def learning_rate(config: SolverConfig, state_dim: int) -> float:
    """Peak Adam learning rate (`AdamConfig.learning_rate`, or its default)."""
    if config.adam.learning_rate is not None:
        return float(config.adam.learning_rate)
    return default_learning_rate(state_dim)


def _optimizer(config: SolverConfig, state_dim: int) -> optax.GradientTransformation:
    lr = learning_rate(config, state_dim)
    settings = config.adam
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0 if settings.warmup_steps > 0 else lr,
        peak_value=lr,
        warmup_steps=settings.warmup_steps,
        decay_steps=max(settings.steps, settings.warmup_steps + 1),
        end_value=min(settings.final_learning_rate, lr),
    )
    # eps_root > 0 keeps d sqrt(v) finite at v = 0, so jax.grad can pass through training.
    adam = optax.adam(schedule, eps_root=1e-20)
    if settings.grad_clip is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(settings.grad_clip), adam)


def sample_batch(game, config: SolverConfig, point_key, operator_key, num: int, mesh=None):
    """``num`` collocation points grouped by time: ``(t [G], x [G, P, d], keys [G, P])``.

    ``G = num / P`` times, each shared by ``P = config.layout.points_per_time`` states, drawn
    from ``point_key`` (the operator keys from ``operator_key``), sharded over the ``"data"``
    mesh along ``G`` when ``mesh`` is given.
    """
    t, x = _sample(game, point_key, config, num)
    per = int(config.layout.points_per_time)
    t, x = t[: num // per], x.reshape(num // per, per, -1)
    keys = jax.random.split(operator_key, num).reshape(num // per, per)
    return shard_points((t, x, keys), mesh)


def _sample(game, key, config: SolverConfig, num: int):
    """``num`` points ``(t [num], x [num, d])`` of the configured sampling law."""
    sampler = config.sampler
    return sample_points(game, key, num, scale=sampler.scale, distribution=sampler.distribution)


def data_mesh(config: SolverConfig):
    """The ``"data"`` mesh of ``config.layout.num_devices`` devices (``None`` for one)."""
    devices = config.layout.num_devices
    return make_data_mesh(devices) if devices > 1 else None


def make_train_step(game, config: SolverConfig | None = None, *, controlled: bool | None = None):
    """Builds ``(init, train_step)`` for ``game``.

    ``init(key) -> TrainState`` (key consumed). ``train_step(state, key, game=None) -> (state,
    metrics)`` is pure and unjitted: it samples a batch from ``key`` (consumed), evaluates the
    normalised residuals of both players in every regime, and applies one optax update.
    ``game`` defaults to the one given here; passing a game with other values (same shapes and
    flags) reuses the compiled step. Metrics: ``loss []`` and ``residual [2, m]`` (mean
    squared normalised residual of each player and regime).

    Args:
      game: an `LQGame` or any `ControlQuadraticGame`.
      config: `SolverConfig` (default settings if ``None``).
      controlled: whether the diffusion is controlled (static); default from the game/config.
    """
    config = resolve_config(game, config)
    dtype = float_dtype(game, config)
    game = cast_game(game, dtype)
    controlled = detect_controlled(game, config) if controlled is None else controlled
    model = value_model(game, config)
    optimizer = _optimizer(config, game.state_dim)
    mesh = data_mesh(config)
    num_pool = config.num_pool_points
    batch_size = config.adam.batch_size

    def init(key: jax.Array) -> TrainState:
        sampler = config.sampler
        params, norm, pool_t, pool_x = _initial_arrays(
            game, as_key(key), model=model, scale=sampler.scale,
            distribution=sampler.distribution, time_basis=config.network.time_basis,
            pool=sampler.pool_size if num_pool > 0 else 0,
        )  # fmt: skip
        return TrainState(
            params=params,
            opt_state=optimizer.init(params),
            step=jnp.zeros((), jnp.int32),
            refine_step=jnp.zeros((), jnp.int32),
            damping=jnp.asarray(1e-3, dtype),
            norm=norm,
            pool_t=pool_t,
            pool_x=pool_x,
            best_params=params,
            best_loss=jnp.asarray(jnp.inf, dtype),
            best_step=jnp.asarray(-1, jnp.int32),
        )

    def network(params, norm, g) -> NetworkValue:
        return NetworkValue(
            params=params, norm=norm, game=g, model=model, config=config, controlled=controlled
        )

    def train_step(state: TrainState, key: jax.Array, game_values=None):
        key = as_key(key)
        g = game if game_values is None else cast_game(game_values, dtype)
        k_sample, k_pool, k_op = jax.random.split(key, 3)
        if config.layout.points_per_time > 1:  # (no pool then, see `points_per_time`)
            t, x, keys = sample_batch(g, config, k_sample, k_op, batch_size, mesh)
        else:
            t, x = _sample(g, k_sample, config, batch_size)
            if num_pool > 0:
                idx = jax.random.randint(k_pool, (num_pool,), 0, state.pool_t.shape[0])
                t = t.at[:num_pool].set(state.pool_t[idx])
                x = x.at[:num_pool].set(state.pool_x[idx])
            keys = jax.random.split(k_op, batch_size)
            t, x, keys = shard_points((t, x, keys), mesh)

        def loss_fn(params):
            r, vec = network(params, state.norm, g).residual_vector(t, x, keys)
            terms = jnp.mean(r**2, axis=0)  # [2, m]
            return jnp.sum(vec**2) / r.size, terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
        return new, {"loss": loss, "residual": terms}

    return init, train_step


@functools.partial(
    jax.jit, static_argnames=("model", "scale", "distribution", "time_basis", "pool")
)
def _initial_arrays(game, key, *, model, scale, distribution, time_basis, pool):
    """The networks' parameters and normalization and the pool's first points, as one program
    (not dozens of eager operations) that depends only on the settings it reads."""
    dtype = game.initial_state.dtype
    norm = estimate_normalization(game, scale, time_basis=time_basis)
    pool_t, pool_x = sample_points(
        game, jax.random.fold_in(key, 1), pool, scale=scale, distribution=distribution
    )
    return model.init(key, dtype), norm, pool_t, pool_x

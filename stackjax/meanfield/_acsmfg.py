r"""AC-SMFG: a single-loop actor-critic for Stackelberg mean-field games, and baselines.

One update (all inside one ``lax.scan``):

1. ``batch_size`` representative followers play one episode under the current follower
   policy :math:`\pi`, in the environment defined by the current mean-field estimate
   :math:`\hat L` and leader parameters :math:`\omega` (Markovian samples).
2. Mean field: :math:`\hat L \leftarrow \hat L + \xi (\tilde L - \hat L)`, :math:`\tilde L` the
   batch's empirical joint distribution.
3. Follower critic (soft expected-SARSA TD(0), per visited cell):
   :math:`Q_t(s, a) \leftarrow Q_t(s, a) + \beta\, \overline{\delta}`,
   :math:`\delta = r + \sum_{a'} \pi_{t+1}(a'|s') (Q_{t+1}(s', a') - \tau \log \pi_{t+1}(a'|s'))
   - Q_t(s, a)`.
4. Follower actor (entropy-regularized policy iteration step): logits
   :math:`\leftarrow (1 - \alpha_F)\,\mathrm{logits} + \alpha_F Q / \tau`.
5. Leader: :math:`\omega \leftarrow \Pi_{box}(\omega + \alpha_L g)` with ``leader_gradient``:

   - ``"partial"`` (AC-SMFG as published): :math:`g = \partial_\omega J(\hat L, \omega)`, the
     leader's gradient with the population held fixed — exact only under "gradient alignment".
   - ``"implicit"``: :math:`g` = the implicit-function gradient evaluated at the *current*
     follower policy (uses the model's Jacobians; single loop, no inner solve).
   - ``"independent"`` (baseline): the partial gradient at the exact MFE of the current
     :math:`\omega` (a leader that ignores the response but sees the true population).
   - ``"exact"`` (baseline): gradient ascent on :math:`\Phi` with the exact implicit gradient.
   - ``"nested"`` (baseline): nested loop — the followers' estimates are replaced by the exact
     MFE of the current :math:`\omega` before every leader step, which then uses the exact
     implicit gradient (the sample cost of a solved inner loop is not modelled).

Time scales: ``leader_lr <= follower_lr <= critic_lr`` and ``leader_lr <= mean_field_lr``
(the paper's ordering; checked by `ACSMFGConfig`). Every update also records the leader's
exact objective :math:`\Phi(\omega_k)` and the gradient-alignment ratio
:math:`\|\nabla\Phi - \partial_\omega J\| / \|\nabla\Phi\|` at the exact MFE of
:math:`\omega_k`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from .._validation import as_key, check_setting
from ..discrete._validation import is_concrete
from ._game import MeanFieldGame, _flow, exploitability, leader_objective, uniform_policy
from ._solvers import _newton, equilibrium_map, fictitious_play

__all__ = ["ACSMFGConfig", "ACSMFGState", "make_train"]

_GRADIENTS = ("partial", "implicit", "independent", "exact", "nested")


@dataclasses.dataclass(frozen=True)
class ACSMFGConfig:
    """Static settings of `make_train` (hashable; changing a field recompiles).

    Attributes:
      num_updates: updates (scan length).
      batch_size: followers' episodes per update (samples per update: ``batch_size *
        horizon``).
      leader_lr, follower_lr, critic_lr, mean_field_lr: step sizes (time-scale ordering in
        the module docstring).
      leader_gradient: one of ``"partial"``, ``"implicit"``, ``"independent"``, ``"exact"``,
        ``"nested"``.
      exact_newton_steps: Newton steps per update for the exact MFE behind the metrics
        (warm-started from the previous update).
    """

    num_updates: int = 500
    batch_size: int = 64
    leader_lr: float = 0.05
    follower_lr: float = 0.2
    critic_lr: float = 0.5
    mean_field_lr: float = 0.5
    leader_gradient: str = "partial"
    exact_newton_steps: int = 2

    def __post_init__(self):
        for name in ("num_updates", "batch_size", "exact_newton_steps"):
            check_setting(f"ACSMFGConfig.{name}", getattr(self, name), "int", 1)
        check_setting("ACSMFGConfig.leader_lr", self.leader_lr, "positive")
        for name in ("follower_lr", "critic_lr", "mean_field_lr"):  # mixing weights
            check_setting(f"ACSMFGConfig.{name}", getattr(self, name), "rate")
        if not (
            self.leader_lr <= self.follower_lr <= self.critic_lr
            and self.leader_lr <= self.mean_field_lr
        ):
            raise ValueError(
                "Step sizes must follow the time-scale ordering leader_lr <= follower_lr <= "
                f"critic_lr and leader_lr <= mean_field_lr; got leader {self.leader_lr}, "
                f"follower {self.follower_lr}, critic {self.critic_lr}, mean field "
                f"{self.mean_field_lr}. Slow the leader down."
            )
        if self.leader_gradient not in _GRADIENTS:
            raise ValueError(
                f"`leader_gradient` must be one of {_GRADIENTS}; got {self.leader_gradient!r}."
            )


class ACSMFGState(struct.PyTreeNode):
    """Learner state: leader parameters ``[K]``, follower logits and critic ``[H, S, A]``,
    mean-field estimate ``[H, S, A]``, the exact MFE policy of the current leader
    parameters (for the metrics), the key."""

    leader: jax.Array
    logits: jax.Array
    critic: jax.Array
    mean_field: jax.Array
    exact_policy: jax.Array
    key: jax.Array


def _implicit_gradient(game, policy, leader):
    """IFT gradient of ``J(L(pi*(w), w), w)`` with the Jacobians taken at ``policy``."""
    shape = policy.shape

    def objective(p, w):
        return leader_objective(game, _flow(game, p, w), w)

    d_pi, d_w = jax.grad(objective, argnums=(0, 1))(policy, leader)
    flat = policy.reshape(-1)
    g_pi = jax.jacfwd(lambda p: equilibrium_map(game, p.reshape(shape), leader).reshape(-1))(flat)
    eye = jnp.eye(flat.size, dtype=flat.dtype)
    u = jnp.linalg.solve((eye - g_pi).T, d_pi.reshape(-1))
    _, vjp = jax.vjp(lambda w: equilibrium_map(game, policy, w), leader)
    return d_w + vjp(u.reshape(shape))[0]


def _partial_gradient(game, joint, leader):
    return jax.grad(lambda w: leader_objective(game, joint, w))(leader)


def make_train(game: MeanFieldGame, config: ACSMFGConfig):
    """Returns ``train(key) -> (ACSMFGState, metrics)``, pure and jit/vmap-able.

    Args:
      game: a Stackelberg mean-field game with ``temperature > 0`` (soft followers).
      config: `ACSMFGConfig`.

    Metrics (leading ``[num_updates]`` axis): ``leader_objective`` (exact ``Phi`` at the
    current leader parameters), ``leader_params`` ``[K]``, ``alignment_ratio`` (undefined,
    i.e. huge, where ``grad Phi = 0``: see ``alignment_error`` ``||grad Phi - d_w J||`` and
    ``full_gradient_norm``),
    ``follower_exploitability`` (regularized exploitability of the follower policy against
    its own flow), ``mean_field_error`` (max abs error of the estimate vs. the exact MFE
    flow), ``samples`` (cumulative). ``key`` must be a PRNG key (checked at trace time only:
    no run-time work under ``jit``/``vmap``).
    """
    if game.leader_reward_fn is None or game.leader_dim == 0:
        raise ValueError(f"`game` ({game.name}) has no leader; got leader_dim = 0.")
    if is_concrete(game.temperature) and not float(game.temperature) > 0:
        raise ValueError(
            f"`game.temperature` must be > 0 (the follower's actor is softmax(Q / tau)); got "
            f"{float(game.temperature)}. Pass a positive temperature."
        )
    if not isinstance(config, ACSMFGConfig):
        raise TypeError(f"`config` must be an ACSMFGConfig; got {type(config).__name__}.")
    tau = game.temperature
    horizon, n_s = game.horizon, game.num_states
    m = config.batch_size

    def sample_episodes(key, policy, mean_field, leader):
        k0, k_steps = jax.random.split(key)
        s0 = jax.random.choice(k0, n_s, (m,), p=game.initial)

        def step(s, inputs):
            t, k = inputs
            ka, ks = jax.random.split(k)
            a = jax.random.categorical(ka, jnp.log(policy[t, s]))
            reward = game.reward_fn(game.params, t, mean_field[t], leader)[s, a]
            kernel = game.transition_fn(game.params, t, mean_field[t], leader)[s, a]
            s_next = jax.random.categorical(ks, jnp.log(jnp.maximum(kernel, 1e-300)))
            return s_next, (s, a, reward, s_next)

        keys = jax.random.split(k_steps, horizon)
        _, traj = jax.lax.scan(step, s0, (jnp.arange(horizon), keys))
        return traj  # each [H, M]

    def update(state: ACSMFGState, _):
        key, k_sample = jax.random.split(state.key)
        policy = jax.nn.softmax(state.logits, axis=-1)
        s, a, reward, s_next = sample_episodes(k_sample, policy, state.mean_field, state.leader)
        t = jnp.broadcast_to(jnp.arange(horizon)[:, None], s.shape)

        counts = jnp.zeros_like(state.critic).at[t, s, a].add(1.0)
        mean_field = state.mean_field + config.mean_field_lr * (counts / m - state.mean_field)

        log_pi = jnp.log(jnp.maximum(policy, 1e-300))
        soft_v = jnp.sum(policy * (state.critic - tau * log_pi), axis=-1)  # [H, S]
        v_next = jnp.where(t + 1 < horizon, soft_v[jnp.minimum(t + 1, horizon - 1), s_next], 0.0)
        td = reward + v_next - state.critic[t, s, a]
        td_sum = jnp.zeros_like(state.critic).at[t, s, a].add(td)
        critic = state.critic + config.critic_lr * td_sum / jnp.maximum(counts, 1.0)
        logits = (1 - config.follower_lr) * state.logits + config.follower_lr * critic / tau

        # Exact MFE of the current leader parameters (warm-started Newton): metrics/baselines.
        exact = _newton(game, state.leader, state.exact_policy, config.exact_newton_steps)
        exact_joint = _flow(game, exact, state.leader)
        full = _implicit_gradient(game, exact, state.leader)
        partial_exact = _partial_gradient(game, exact_joint, state.leader)
        alignment = jnp.linalg.norm(full - partial_exact) / jnp.linalg.norm(full)

        kind = config.leader_gradient
        if kind == "partial":
            grad = _partial_gradient(game, mean_field, state.leader)
        elif kind == "implicit":
            grad = _implicit_gradient(game, jax.nn.softmax(logits, axis=-1), state.leader)
        elif kind == "independent":
            grad = partial_exact
        else:  # "exact" and "nested"
            grad = full
        if kind == "nested":  # the inner loop solved: followers sit at the exact MFE
            logits = jnp.log(jnp.maximum(exact, 1e-300))
            mean_field = exact_joint
        leader = jnp.clip(
            state.leader + config.leader_lr * grad, game.leader_lower, game.leader_upper
        )

        follower_policy = jax.nn.softmax(logits, axis=-1)
        metrics = {
            "leader_objective": leader_objective(game, exact_joint, state.leader),
            "leader_params": state.leader,
            "alignment_ratio": alignment,
            "full_gradient_norm": jnp.linalg.norm(full),
            "alignment_error": jnp.linalg.norm(full - partial_exact),
            "follower_exploitability": exploitability(game, follower_policy, state.leader),
            "mean_field_error": jnp.max(jnp.abs(mean_field - exact_joint)),
        }
        new_state = ACSMFGState(
            leader=leader,
            logits=logits,
            critic=critic,
            mean_field=mean_field,
            exact_policy=exact,
            key=key,
        )
        return new_state, metrics

    samples_per_update = m * horizon

    def train(key):
        key = as_key(key)
        init_policy = uniform_policy(game)
        leader = game.leader_init
        exact = fictitious_play(game, leader, num_iterations=100, alpha=0.2).policy
        state = ACSMFGState(
            leader=leader,
            logits=jnp.zeros_like(init_policy),
            critic=jnp.zeros_like(init_policy),
            mean_field=_flow(game, init_policy, leader),
            exact_policy=exact,
            key=key,
        )
        state, metrics = jax.lax.scan(update, state, None, length=config.num_updates)
        metrics["samples"] = samples_per_update * jnp.arange(1, config.num_updates + 1)
        return state, metrics

    return train

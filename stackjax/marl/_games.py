"""Matrix games as `stackjax.discrete.Environment`s: one-shot, iterated with memory, random.

The iterated-game benchmark of Stackelberg multi-agent RL: the 12 canonical 2x2 games (payoffs
``[a_L, a_F, player]``, leader = row player = agent 0), played for ``episode_length`` rounds.
With memory each agent observes the previous round:

- full memory: both agents observe ``0`` in the first round, then ``1 + a_L + A_L a_F`` (for 2x2
  games ``1 + a_L + 2 a_F``);
- small memory: the leader observes ``1 + a_F``, the follower ``1 + a_L`` (``0`` first);
- no memory: both observe ``0``.

Every round pays ``payoffs[a_L, a_F] + reward_offset`` to the two agents.

The environment state is the round counter and the previous joint action (``0`` before the first
round, then ``1 + a_L + A_L a_F``). Its transition does not depend on the state, which is what the
exact oracle and the exact evaluation of `stackjax.marl` use.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from stackjax.discrete._env import Environment
from stackjax.discrete._validation import as_float_array, as_key, check_finite, check_shape

__all__ = [
    "GAME_NAMES",
    "MatrixGameParams",
    "MatrixGameState",
    "battle_of_the_sexes",
    "iterated_matrix_game",
    "matrix_game",
    "named_payoffs",
    "random_matrix_game",
]

# Payoffs [a_L][a_F] = (leader, follower); action 0 is "cooperate" in the dilemma games.
_PAYOFFS = {
    "prisoners_dilemma": [[[3, 3], [1, 4]], [[4, 1], [2, 2]]],
    "stag_hunt": [[[4, 4], [1, 3]], [[3, 1], [2, 2]]],
    "assurance": [[[4, 4], [1, 2]], [[2, 1], [3, 3]]],
    "coordination": [[[4, 4], [2, 1]], [[1, 2], [3, 3]]],
    "mixed_harmony": [[[4, 4], [3, 1]], [[1, 3], [2, 2]]],
    "harmony": [[[4, 4], [3, 2]], [[2, 3], [1, 1]]],
    "no_conflict": [[[4, 4], [2, 3]], [[3, 2], [1, 1]]],
    "deadlock": [[[2, 2], [1, 4]], [[4, 1], [3, 3]]],
    "prisoners_delight": [[[1, 1], [2, 4]], [[4, 2], [3, 3]]],
    "hero": [[[1, 1], [3, 4]], [[4, 3], [2, 2]]],
    "battle": [[[2, 2], [3, 4]], [[4, 3], [1, 1]]],
    "chicken": [[[3, 3], [2, 4]], [[4, 2], [1, 1]]],
}
# The reference implementation spells two of the names without an underscore.
_ALIASES = {"mixedharmony": "mixed_harmony", "noconflict": "no_conflict"}

GAME_NAMES: tuple[str, ...] = tuple(_PAYOFFS)

_MEMORY_MODES = ("none", "full", "small")


class MatrixGameState(struct.PyTreeNode):
    """State of a (repeated) matrix game.

    Attributes:
      round: [] int, rounds played so far.
      last: [] int, previous joint action ``1 + a_L + A_L a_F`` (``0`` before the first round).
    """

    round: jax.Array
    last: jax.Array


class MatrixGameParams(struct.PyTreeNode):
    """Parameters of a matrix-game environment (batch games by stacking them under ``vmap``).

    Attributes:
      payoffs: ``[A_L, A_F, 2]`` payoffs per round (leader, follower) before the offset.
      reward_offset: [] added to both agents' payoff every round.
      memory: static, ``"none"``, ``"full"`` or ``"small"`` (module docstring).
    """

    payoffs: jax.Array
    reward_offset: jax.Array
    memory: str = struct.field(pytree_node=False, default="full")

    @property
    def num_leader_actions(self) -> int:
        return self.payoffs.shape[-3]

    @property
    def num_follower_actions(self) -> int:
        return self.payoffs.shape[-2]

    @property
    def num_states(self) -> int:
        """Previous-joint-action states, ``1 + A_L A_F``."""
        return 1 + self.num_leader_actions * self.num_follower_actions

    @property
    def observation_counts(self) -> tuple[int, int]:
        """Distinct observations of (leader, follower)."""
        a_l, a_f = self.num_leader_actions, self.num_follower_actions
        return {"none": (1, 1), "full": (1 + a_l * a_f,) * 2, "small": (1 + a_f, 1 + a_l)}[
            self.memory
        ]

    def observation_table(self) -> np.ndarray:
        """``[S, 2]`` int observation of (leader, follower) in each state (static)."""
        a_l, a_f = self.num_leader_actions, self.num_follower_actions
        table = np.zeros((self.num_states, 2), dtype=np.int32)
        joint = np.arange(a_l * a_f)
        leader_action, follower_action = joint % a_l, joint // a_l
        if self.memory == "full":
            table[1:, 0] = table[1:, 1] = 1 + joint
        elif self.memory == "small":
            table[1:, 0] = 1 + follower_action
            table[1:, 1] = 1 + leader_action
        return table


def _observe(params: MatrixGameParams, last: jax.Array) -> jax.Array:
    return jnp.asarray(params.observation_table())[last]


def _make_environment(params: MatrixGameParams, episode_length: int) -> Environment:
    def reset(key, params):
        del key
        state = MatrixGameState(round=jnp.zeros((), jnp.int32), last=jnp.zeros((), jnp.int32))
        return state, _observe(params, state.last)

    def step(key, state, actions, params):
        del key
        a_l, a_f = actions[0], actions[1]
        rewards = params.payoffs[a_l, a_f] + params.reward_offset
        last = (1 + a_l + params.num_leader_actions * a_f).astype(jnp.int32)
        state = MatrixGameState(round=state.round + 1, last=last)
        done = state.round >= episode_length
        return state, _observe(params, last), rewards, done, {}

    return Environment(
        reset=reset,
        step=step,
        params=params,
        num_actions=(params.num_leader_actions, params.num_follower_actions),
        num_observations=max(params.observation_counts),
        horizon=episode_length,
    )


def _check_episode_length(episode_length) -> int:
    if isinstance(episode_length, bool) or not isinstance(episode_length, (int, np.integer)):
        raise TypeError(
            f"`episode_length` must be a positive int; got {type(episode_length).__name__}. "
            "Pass the number of rounds, e.g. episode_length=10."
        )
    if episode_length < 1:
        raise ValueError(
            f"`episode_length` must be a positive int; got {episode_length}. "
            "Pass at least one round."
        )
    return int(episode_length)


def matrix_game(
    payoffs,
    *,
    episode_length: int = 1,
    memory: bool = False,
    small_memory: bool = False,
    reward_offset: float = 0.0,
) -> Environment:
    """A (repeated) bimatrix game between a leader (agent 0) and a follower (agent 1).

    Args:
      payoffs: ``[A_L, A_F, 2]`` per-round payoffs ``(leader, follower)`` of each joint action.
      episode_length: rounds per episode.
      memory: whether agents observe the previous round (module docstring).
      small_memory: with ``memory``, each agent observes only the other agent's last action.
      reward_offset: added to both payoffs every round.

    Returns:
      An `Environment` with int observations ``[2]`` (leader, follower), rewards ``[2]`` and
      `MatrixGameParams` as ``params``.
    """
    episode_length = _check_episode_length(episode_length)
    if small_memory and not memory:
        raise ValueError(
            "`small_memory=True` needs `memory=True`; got memory=False. "
            "Pass memory=True, small_memory=True for the small-memory game."
        )
    payoffs = as_float_array(payoffs, "payoffs")
    check_shape(payoffs, "payoffs", ndim=3)
    if payoffs.shape[-1] != 2 or min(payoffs.shape[:2]) < 2:
        raise ValueError(
            f"`payoffs` must have shape [A_L, A_F, 2] with A_L, A_F >= 2; got "
            f"{tuple(payoffs.shape)}. Pass payoffs[a_L, a_F] = (leader payoff, follower payoff)."
        )
    check_finite(payoffs, "payoffs")
    offset = jnp.asarray(reward_offset, payoffs.dtype)
    if offset.ndim != 0:
        raise ValueError(
            f"`reward_offset` must be a scalar; got shape {tuple(offset.shape)}. "
            "Pass one number added to both payoffs."
        )
    check_finite(offset, "reward_offset")
    mode = "small" if small_memory else ("full" if memory else "none")
    params = MatrixGameParams(payoffs=payoffs, reward_offset=offset, memory=mode)
    return _make_environment(params, episode_length)


def named_payoffs(name: str) -> np.ndarray:
    """``[2, 2, 2]`` payoffs of one of the 12 canonical games (`GAME_NAMES`)."""
    key = _ALIASES.get(name, name)
    if key not in _PAYOFFS:
        raise ValueError(
            f"`name` must be one of {', '.join(GAME_NAMES)}; got {name!r}. "
            "Pick a canonical game name or pass payoffs to `matrix_game`."
        )
    return np.asarray(_PAYOFFS[key], dtype=np.float64)


def iterated_matrix_game(
    name: str,
    *,
    episode_length: int = 10,
    memory: bool = True,
    small_memory: bool = False,
    reward_offset: float = -2.5,
) -> Environment:
    """One of the 12 canonical 2x2 games, iterated (default: 10 rounds, full memory, -2.5).

    The small-memory variant of the benchmark is ``episode_length=5, small_memory=True``.
    """
    payoffs = jnp.asarray(named_payoffs(name), jnp.result_type(float))
    return matrix_game(
        payoffs,
        episode_length=episode_length,
        memory=memory,
        small_memory=small_memory,
        reward_offset=reward_offset,
    )


def battle_of_the_sexes(*, reward_offset: float = 0.0) -> Environment:
    """One-shot Battle of the Sexes: ``(2, 1)`` on (0, 0), ``(1, 2)`` on (1, 1), else 0.

    The leader's Stackelberg action is 0 (leader 2, follower 1) where the follower's preferred
    coordination is (1, 1).
    """
    payoffs = jnp.asarray([[[2, 1], [0, 0]], [[0, 0], [1, 2]]], jnp.result_type(float))
    return matrix_game(payoffs, episode_length=1, reward_offset=reward_offset)


def random_matrix_game(
    key: jax.Array,
    num_leader_actions: int = 2,
    num_follower_actions: int = 2,
    *,
    episode_length: int = 1,
    memory: bool = False,
    small_memory: bool = False,
    reward_offset: float = 0.0,
) -> Environment:
    """A matrix game with i.i.d. uniform ``[0, 1)`` payoffs (ties have probability zero).

    ``key``: a PRNG key (``jax.random.key(seed)``; legacy ``uint32[2]`` keys are wrapped).
    Inputs are validated when concrete; traced inputs are not.
    """
    for name, value in (
        ("num_leader_actions", num_leader_actions),
        ("num_follower_actions", num_follower_actions),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise ValueError(f"`{name}` must be an int >= 2; got {value!r}. Pass at least 2.")
    key = as_key(key)
    payoffs = jax.random.uniform(key, (num_leader_actions, num_follower_actions, 2))
    return matrix_game(
        payoffs,
        episode_length=episode_length,
        memory=memory,
        small_memory=small_memory,
        reward_offset=reward_offset,
    )


def enumeration_size(counts: tuple[int, ...], actions: tuple[int, ...]) -> int:
    """Number of deterministic tables ``obs -> action`` over several agents."""
    return math.prod(a**c for c, a in zip(counts, actions, strict=True))

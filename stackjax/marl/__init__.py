"""Stackelberg multi-agent RL with contextual followers on iterated matrix games.

The leader's problem is single-agent RL in an environment that embeds a follower oracle: the
leader is first *queried* on a fixed set of observations, a follower that conditions on these
answers (pretrained against random leaders, then frozen) plays the game against it. Exact
restricted-class Stackelberg values by enumeration are the references.
"""

from ._baselines import BaselineConfig, make_train_independent, make_train_inner_loop
from ._contextual import (
    ContextualConfig,
    ContextualResult,
    ContextualState,
    evaluate_leader,
    make_train,
    pretrain_follower,
    train_contextual,
)
from ._games import (
    GAME_NAMES,
    MatrixGameParams,
    MatrixGameState,
    battle_of_the_sexes,
    iterated_matrix_game,
    matrix_game,
    named_payoffs,
    random_matrix_game,
)
from ._oracle import (
    FOLLOWER_CLASSES,
    StackelbergValue,
    deterministic_tables,
    exact_stackelberg,
    policy_returns,
)

__all__ = [
    "BaselineConfig",
    "make_train_independent",
    "make_train_inner_loop",
    "ContextualConfig",
    "ContextualResult",
    "ContextualState",
    "evaluate_leader",
    "make_train",
    "pretrain_follower",
    "train_contextual",
    "FOLLOWER_CLASSES",
    "StackelbergValue",
    "deterministic_tables",
    "exact_stackelberg",
    "policy_returns",
    "GAME_NAMES",
    "MatrixGameParams",
    "MatrixGameState",
    "battle_of_the_sexes",
    "iterated_matrix_game",
    "matrix_game",
    "named_payoffs",
    "random_matrix_game",
]

"""Stackelberg mean-field games: finite MFGs (MFGLib's environments), MFE solvers, the exact
Stackelberg oracle by implicit differentiation, and learners.

Builds on the shared discrete-time pieces of `stackjax.discrete` (the soft response and the
soft backward induction).
"""

from ._acsmfg import ACSMFGConfig, ACSMFGState, make_train
from ._economics import equilibrium_pricing, market_entrance, shop_positioning
from ._environments import (
    beach_bar,
    building_evacuation,
    conservative_treasure_hunting,
    crowd_motion,
    equilibrium_price,
    left_right,
    linear_quadratic,
    random_linear,
    rock_paper_scissors,
    susceptible_infected,
)
from ._game import (
    MeanFieldGame,
    best_response,
    exploitability,
    leader_objective,
    make_mean_field_game,
    mean_field,
    policy_evaluation,
    population,
    rewards_and_kernels,
    uniform_policy,
)
from ._solvers import (
    MFESolution,
    fictitious_play,
    fixed_point,
    newton_equilibrium,
    online_mirror_descent,
)
from ._stackelberg import (
    StackelbergMFGResult,
    equilibrium_policy,
    left_right_toll,
    stackelberg_equilibrium,
    stackelberg_objective,
)

__all__ = [
    "equilibrium_pricing",
    "market_entrance",
    "shop_positioning",
    "ACSMFGConfig",
    "ACSMFGState",
    "make_train",
    "MFESolution",
    "StackelbergMFGResult",
    "equilibrium_policy",
    "fictitious_play",
    "fixed_point",
    "newton_equilibrium",
    "online_mirror_descent",
    "left_right_toll",
    "stackelberg_equilibrium",
    "stackelberg_objective",
    "MeanFieldGame",
    "beach_bar",
    "best_response",
    "building_evacuation",
    "conservative_treasure_hunting",
    "crowd_motion",
    "equilibrium_price",
    "exploitability",
    "leader_objective",
    "left_right",
    "linear_quadratic",
    "make_mean_field_game",
    "mean_field",
    "policy_evaluation",
    "population",
    "random_linear",
    "rewards_and_kernels",
    "rock_paper_scissors",
    "susceptible_infected",
    "uniform_policy",
]

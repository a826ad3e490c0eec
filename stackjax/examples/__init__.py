"""Example games, each with an exact reference.

LQ games (`scalar_game`, `random_game`, `controlled_diffusion_game`, `zero_sum_game`,
`cross_term_game`) are checked against `riccati_reference`; `cole_hopf_game` is a non-LQ game
whose values are known in closed form (docs/cole_hopf.md). `EXAMPLES` maps the command line's
names to zero-argument constructors.
"""

from ._cole_hopf import ColeHopfGame as ColeHopfGame
from ._cole_hopf import ExactSolution as ExactSolution
from ._cole_hopf import make_cole_hopf_game as make_cole_hopf_game
from ._lq import LQ_EXAMPLES
from ._lq import controlled_diffusion_game as controlled_diffusion_game
from ._lq import cross_term_game as cross_term_game
from ._lq import random_game as random_game
from ._lq import scalar_game as scalar_game
from ._lq import zero_sum_game as zero_sum_game

__all__ = [
    "EXAMPLES",
    "NON_LQ_EXAMPLES",
    "ColeHopfGame",
    "ExactSolution",
    "cole_hopf_game",
    "controlled_diffusion_game",
    "cross_term_game",
    "make_cole_hopf_game",
    "make_example",
    "random_game",
    "scalar_game",
    "zero_sum_game",
]


def cole_hopf_game(d: int = 10, lam=(0.2, 0.2)) -> ColeHopfGame:
    """Non-LQ game with an exact solution: soft-min (two-target) terminal costs, two regimes.

    Its exact values and policies are ``game.exact_value(t, x) -> [2, m]``,
    ``game.exact_policy(t, x)`` and ``game.exact_solution()`` (for `evaluate`); the
    derivation is in docs/cole_hopf.md.
    """
    return make_cole_hopf_game(d, lam=lam)


EXAMPLES = {**LQ_EXAMPLES, "cole-hopf": cole_hopf_game}
#: Examples without a Riccati reference (checked against their own exact solutions).
NON_LQ_EXAMPLES = ("cole-hopf",)


def make_example(name: str):
    """The example called ``name`` (one of `EXAMPLES`)."""
    if name not in EXAMPLES:
        raise ValueError(
            f"`name` must be one of {sorted(EXAMPLES)}; got {name!r}. Pick one of those."
        )
    return EXAMPLES[name]()

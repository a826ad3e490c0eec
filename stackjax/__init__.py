"""stackjax: entropy-regularized Stackelberg equilibria in JAX.

Continuous time: regime-switching linear-quadratic (and control-quadratic) Stackelberg
differential games with Gibbs policies — the exploratory HJB residuals, an exact Riccati
reference and a Monte Carlo simulator. Discrete time: `stackjax.discrete`.
"""

from importlib.metadata import PackageNotFoundError, version

from . import examples as examples
from ._evaluate import evaluate as evaluate
from ._game import Coefficients as Coefficients
from ._game import ControlQuadraticGame as ControlQuadraticGame
from ._game import LQGame as LQGame
from ._game import load_game as load_game
from ._game import make_lq_game as make_lq_game
from ._gibbs import GaussianPolicy as GaussianPolicy
from ._gibbs import gibbs_quadratic as gibbs_quadratic
from ._hamiltonian import HessianProducts as HessianProducts
from ._hamiltonian import PointEquilibrium as PointEquilibrium
from ._hamiltonian import PreHamiltonian as PreHamiltonian
from ._hamiltonian import hessian_products as hessian_products
from ._hamiltonian import pointwise_equilibrium as pointwise_equilibrium
from ._hamiltonian import pre_hamiltonian as pre_hamiltonian
from ._hamiltonian import well_posedness_margins as well_posedness_margins
from ._residual import equilibrium_from_values as equilibrium_from_values
from ._residual import hjbi_residual as hjbi_residual
from ._residual import policy_from_values as policy_from_values
from ._residual import terminal_residual as terminal_residual
from ._riccati import FeedbackGains as FeedbackGains
from ._riccati import RiccatiSolution as RiccatiSolution
from ._riccati import riccati_reference as riccati_reference
from ._riccati import riccati_rhs as riccati_rhs
from ._simulate import Trajectories as Trajectories
from ._simulate import monte_carlo_cost as monte_carlo_cost
from ._simulate import simulate as simulate

try:
    __version__ = version("stackjax")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Coefficients",
    "ControlQuadraticGame",
    "FeedbackGains",
    "GaussianPolicy",
    "HessianProducts",
    "LQGame",
    "PointEquilibrium",
    "PreHamiltonian",
    "RiccatiSolution",
    "Trajectories",
    "equilibrium_from_values",
    "evaluate",
    "examples",
    "gibbs_quadratic",
    "hessian_products",
    "hjbi_residual",
    "load_game",
    "make_lq_game",
    "monte_carlo_cost",
    "pointwise_equilibrium",
    "policy_from_values",
    "pre_hamiltonian",
    "riccati_reference",
    "riccati_rhs",
    "simulate",
    "terminal_residual",
    "well_posedness_margins",
]

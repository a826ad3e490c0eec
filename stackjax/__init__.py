"""stackjax: entropy-regularized Stackelberg equilibria in JAX.

Continuous time: regime-switching linear-quadratic (and control-quadratic) Stackelberg
differential games with Gibbs policies — the exploratory HJB residuals, an exact Riccati
reference and a Monte Carlo simulator. Discrete time: `stackjax.discrete`.
"""

from importlib.metadata import PackageNotFoundError, version

from . import _xla_flags

_xla_flags.apply()  # before any JAX computation: XLA:CPU bugs of jaxlib 0.10

from . import examples as examples
from ._evaluate import evaluate as evaluate
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
from ._hamiltonian import regime_equilibrium as regime_equilibrium
from ._hamiltonian import well_posedness_margins as well_posedness_margins
from ._operators import gradient_and_products as gradient_and_products
from ._operators import parabolicity_margin as parabolicity_margin
from ._operators import principal_symbol as principal_symbol
from ._operators import sketch_diffusion as sketch_diffusion
from ._protocol import Coefficients as Coefficients
from ._protocol import ControlQuadraticGame as ControlQuadraticGame
from ._protocol import FunctionalGame as FunctionalGame
from ._protocol import GameBase as GameBase
from ._protocol import make_game as make_game
from ._residual import RegimeDerivatives as RegimeDerivatives
from ._residual import coupled_residual as coupled_residual
from ._residual import equilibrium_from_values as equilibrium_from_values
from ._residual import hjbi_residual as hjbi_residual
from ._residual import policy_from_values as policy_from_values
from ._residual import terminal_residual as terminal_residual
from ._riccati import FeedbackGains as FeedbackGains
from ._riccati import RiccatiSolution as RiccatiSolution
from ._riccati import riccati_reference as riccati_reference
from ._riccati import riccati_rhs as riccati_rhs
from ._sampling import resample_by_residual as resample_by_residual
from ._sampling import sample_on_policy as sample_on_policy
from ._sampling import sample_points as sample_points
from ._simulate import Trajectories as Trajectories
from ._simulate import monte_carlo_cost as monte_carlo_cost
from ._simulate import simulate as simulate
from ._solver import AccuracyWarning as AccuracyWarning
from ._solver import AdamConfig as AdamConfig
from ._solver import GaussNewtonConfig as GaussNewtonConfig
from ._solver import LayoutConfig as LayoutConfig
from ._solver import NetworkConfig as NetworkConfig
from ._solver import NetworkValue as NetworkValue
from ._solver import OperatorConfig as OperatorConfig
from ._solver import SamplerConfig as SamplerConfig
from ._solver import Solution as Solution
from ._solver import SolverConfig as SolverConfig
from ._solver import TrainingDivergedWarning as TrainingDivergedWarning
from ._solver import TrainState as TrainState
from ._solver import make_train_step as make_train_step
from ._solver import network_value as network_value
from ._solver import print_progress as print_progress
from ._solver import resolve_config as resolve_config
from ._solver import solution_diagnostics as solution_diagnostics
from ._solver import solve as solve

try:
    __version__ = version("stackjax")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AccuracyWarning",
    "AdamConfig",
    "Coefficients",
    "ControlQuadraticGame",
    "FeedbackGains",
    "FunctionalGame",
    "GameBase",
    "GaussNewtonConfig",
    "GaussianPolicy",
    "HessianProducts",
    "LQGame",
    "LayoutConfig",
    "NetworkConfig",
    "NetworkValue",
    "OperatorConfig",
    "PointEquilibrium",
    "PreHamiltonian",
    "RegimeDerivatives",
    "RiccatiSolution",
    "SamplerConfig",
    "Solution",
    "SolverConfig",
    "TrainState",
    "TrainingDivergedWarning",
    "Trajectories",
    "coupled_residual",
    "equilibrium_from_values",
    "evaluate",
    "examples",
    "gibbs_quadratic",
    "gradient_and_products",
    "hessian_products",
    "hjbi_residual",
    "load_game",
    "make_game",
    "make_lq_game",
    "make_train_step",
    "monte_carlo_cost",
    "network_value",
    "parabolicity_margin",
    "pointwise_equilibrium",
    "policy_from_values",
    "pre_hamiltonian",
    "principal_symbol",
    "print_progress",
    "regime_equilibrium",
    "resample_by_residual",
    "resolve_config",
    "riccati_reference",
    "riccati_rhs",
    "sample_on_policy",
    "sample_points",
    "simulate",
    "sketch_diffusion",
    "solution_diagnostics",
    "solve",
    "terminal_residual",
    "well_posedness_margins",
]

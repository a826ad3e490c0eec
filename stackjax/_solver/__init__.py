"""The neural PDE solver of the coupled exploratory HJB(I) system (docs/math.md §5).

Layout: `_config` (settings), `_defaults` (every game- and dimension-dependent default),
`_networks` (value networks), `_value` (`NetworkValue`: fast derivatives and batched
residuals), `_step` (Adam training step), `_gauss_newton` (refinement), `_loop` (guarded
chunks, result codes), `_solution` (`Solution`, diagnostics), `_driver` (`solve`).
"""

from ._config import AccuracyWarning as AccuracyWarning
from ._config import AdamConfig as AdamConfig
from ._config import GaussNewtonConfig as GaussNewtonConfig
from ._config import LayoutConfig as LayoutConfig
from ._config import NetworkConfig as NetworkConfig
from ._config import OperatorConfig as OperatorConfig
from ._config import SamplerConfig as SamplerConfig
from ._config import SolverConfig as SolverConfig
from ._config import TrainingDivergedWarning as TrainingDivergedWarning
from ._defaults import resolve_config as resolve_config
from ._driver import print_progress as print_progress
from ._driver import solve as solve
from ._solution import Solution as Solution
from ._solution import solution_diagnostics as solution_diagnostics
from ._step import TrainState as TrainState
from ._step import make_train_step as make_train_step
from ._value import NetworkValue as NetworkValue
from ._value import network_value as network_value

__all__ = [
    "AccuracyWarning",
    "AdamConfig",
    "GaussNewtonConfig",
    "LayoutConfig",
    "NetworkConfig",
    "NetworkValue",
    "OperatorConfig",
    "SamplerConfig",
    "Solution",
    "SolverConfig",
    "TrainState",
    "TrainingDivergedWarning",
    "make_train_step",
    "network_value",
    "print_progress",
    "resolve_config",
    "solution_diagnostics",
    "solve",
]
